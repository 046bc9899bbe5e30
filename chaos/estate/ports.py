"""Which loopback ports the simulated estate and its gtm members use.

The demo's plan puts the first member (`dc1-a`) on DNS `127.0.0.1:5353` and
API `127.0.0.1:8080`, each next member one port up, and the VIPs keep the
addresses and ports of the estate file. A demo moved with `--base-port`, and
tests and drills that run beside a demo, take a block of their own:
`PortPlan.from_base(base)`, VIPs included (each keeps its 127.x address; the
estate's lowest VIP port moves to `vips` and the others keep their distance).

`in_use` says which of a list of endpoints another socket holds, so a caller
can name the port before it starts anything; `ephemeral_range` is the
kernel's range of ports it hands out to outgoing connections.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
STRIDE = 25  # ports per kind in a `from_base` block: room for 25 members / clusters
BLOCK = 3 * STRIDE + 2  # ports of a `from_base` block: DNS, API, clusters, VIP control, VIPs
EPHEMERAL = (32768, 60999)  # Linux's default net.ipv4.ip_local_port_range


@dataclass(frozen=True)
class PortPlan:
    dns: int = 5353  # the first member's DNS port (UDP and TCP); member i gets dns + i
    api: int = 8080  # the first member's API port; member i gets api + i
    clusters: int = 17443  # the first region's simulated API server; region j gets clusters + j
    vip_control: int = 17400  # the VIP farm's control API
    vips: int | None = None  # where the estate's lowest VIP port moves (None: the estate's)

    def __post_init__(self) -> None:
        for name in ("dns", "api", "clusters", "vip_control", "vips"):
            port = getattr(self, name)
            if port is not None and not 1 <= port <= 65535:
                raise ValueError(f"{name} port {port} is not in 1..65535")

    @classmethod
    def from_base(cls, base: int) -> PortPlan:
        """A block of `BLOCK` ports from `base`: DNS, API, clusters, VIP control, VIPs."""
        if not 1024 <= base <= 65536 - BLOCK:
            raise ValueError(f"base port {base} must be in 1024..{65536 - BLOCK}")
        return cls(
            dns=base,
            api=base + STRIDE,
            clusters=base + 2 * STRIDE,
            vip_control=base + 3 * STRIDE,
            vips=base + 3 * STRIDE + 1,
        )

    def vip_offset(self, vip_ports: Iterable[int]) -> int:
        """How far the estate's VIP ports move so the lowest lands on `vips` (0: they stay)."""
        ports = list(vip_ports)
        return self.vips - min(ports) if self.vips is not None and ports else 0

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
        if self.vips is not None:
            ranges["vips"] = range(self.vips, self.vips + 1)
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


@dataclass(frozen=True)
class Endpoint:
    """One address and port the estate will listen on, for what (`dc1-a DNS`)."""

    what: str
    host: str
    port: int
    udp: bool = False  # UDP as well as TCP (DNS)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}{' (TCP and UDP)' if self.udp else ''}"


def _taken(host: str, port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            # as the servers bind: a port in TIME_WAIT is free, one listening is not
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def in_use(endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    """The endpoints some other socket holds now (TCP, and UDP where `udp`)."""
    return [
        e
        for e in endpoints
        if _taken(e.host, e.port, socket.SOCK_STREAM)
        or (e.udp and _taken(e.host, e.port, socket.SOCK_DGRAM))
    ]


def ephemeral_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> range:
    """The kernel's ports for outgoing connections (Linux's default when it cannot say)."""
    try:
        low, high = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        low, high = EPHEMERAL
    return range(low, high + 1)
