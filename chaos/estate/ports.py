"""Which loopback ports the simulated estate and its gtm members use.

The demo's plan puts the first member (`dc1-a`) on DNS `127.0.0.1:5353` and
API `127.0.0.1:8080`, each next member one port up. Tests and drills that run
beside a demo take a block of their own: `PortPlan.from_base(base)`. The VIPs
keep the addresses and ports of the estate file.
"""

from __future__ import annotations

from dataclasses import dataclass

HOST = "127.0.0.1"
STRIDE = 25  # ports per kind in a `from_base` block: room for 25 members / clusters


@dataclass(frozen=True)
class PortPlan:
    dns: int = 5353  # the first member's DNS port (UDP and TCP); member i gets dns + i
    api: int = 8080  # the first member's API port; member i gets api + i
    clusters: int = 17443  # the first region's simulated API server; region j gets clusters + j
    vip_control: int = 17400  # the VIP farm's control API

    def __post_init__(self) -> None:
        for name in ("dns", "api", "clusters", "vip_control"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise ValueError(f"{name} port {port} is not in 1..65535")

    @classmethod
    def from_base(cls, base: int) -> PortPlan:
        """A block of `3 * STRIDE + 1` ports from `base`: DNS, API, clusters, VIP control."""
        if not 1024 <= base <= 65535 - 3 * STRIDE:
            raise ValueError(f"base port {base} must be in 1024..{65535 - 3 * STRIDE}")
        return cls(
            dns=base, api=base + STRIDE, clusters=base + 2 * STRIDE, vip_control=base + 3 * STRIDE
        )

    def member_dns(self, index: int) -> int:
        return self.dns + index

    def member_api(self, index: int) -> int:
        return self.api + index

    def cluster(self, index: int) -> int:
        return self.clusters + index

    def check(self, members: int, regions: int) -> None:
        """ValueError when the plan's ranges overlap or run past 65535 for this estate."""
        ranges = {
            "dns": range(self.dns, self.dns + members),
            "api": range(self.api, self.api + members),
            "clusters": range(self.clusters, self.clusters + regions),
            "vip_control": range(self.vip_control, self.vip_control + 1),
        }
        problems = [f"{k} runs past 65535" for k, r in ranges.items() if r.stop - 1 > 65535]
        names = list(ranges)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if set(ranges[a]) & set(ranges[b]):
                    problems.append(f"{a} ports {_span(ranges[a])} overlap {b} {_span(ranges[b])}")
        if problems:
            raise ValueError("; ".join(problems))


def _span(r: range) -> str:
    return f"{r.start}..{r.stop - 1}"
