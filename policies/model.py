"""The estate as the policy engine sees it: regions, services, VIPs and policies.

Plain frozen values built by the config layer (gtm.config) or by tests; the
engine never reads files. A policy's split and bounds are full matrices
(source region -> target region), already resolved from the config's
`local`/`remote` shorthand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property


class Redistribute(StrEnum):
    """Where the share of a target that is out goes."""

    LOCAL = "local"  # to the source region when it is available, else proportionally
    PROPORTIONAL = "proportional"  # to the available targets in proportion to their split
    PRIORITY = "priority"  # to the first available region of the policy's priority order


@dataclass(frozen=True, slots=True)
class Bounds:
    """Inclusive limits of one cell while its target is available."""

    lo: int
    hi: int

    def __post_init__(self) -> None:
        if self.lo < 0 or self.hi < self.lo:
            raise ValueError(f"bounds {self.lo}..{self.hi} are not a valid range")


@dataclass(frozen=True, slots=True)
class Guardrails:
    min_active_regions: int = 1
    max_concurrent_exits: int = 1


@dataclass(frozen=True)
class Policy:
    """The split and its bounds for the services that name this policy.

    `split[source][target]` is the target weight of a cell; every source row
    sums to `total`. `bounds` hold while the target is available, and
    `rollout` replaces them for cells whose target region is in a rollout.
    `max_step` limits a cell's move per evaluation (None: no limit); `ramp`
    is the time in seconds a returning target takes to reach its split.
    """

    name: str
    total: int
    split: Mapping[str, Mapping[str, int]]
    bounds: Mapping[str, Mapping[str, Bounds]]
    rollout: Mapping[str, Mapping[str, Bounds]]
    max_step: int | None = None
    ramp: float = 0.0
    redistribute: Redistribute = Redistribute.LOCAL
    priority: tuple[str, ...] = ()
    guardrails: Guardrails = field(default_factory=Guardrails)

    @classmethod
    def uniform(
        cls,
        name: str,
        regions: tuple[str, ...],
        *,
        local: int = 98,
        remote: int = 1,
        local_bounds: Bounds | None = None,
        remote_bounds: Bounds | None = None,
        rollout_local: Bounds | None = None,
        rollout_remote: Bounds | None = None,
        max_step: int | None = None,
        ramp: float = 0.0,
        redistribute: Redistribute = Redistribute.LOCAL,
        priority: tuple[str, ...] = (),
        guardrails: Guardrails | None = None,
    ) -> Policy:
        """The common shape: `local` to the source region, `remote` to each other one."""
        total = local + remote * (len(regions) - 1)
        full = Bounds(0, total)
        lb, rb = local_bounds or full, remote_bounds or full

        def matrix(on_local: object, on_remote: object) -> dict[str, dict[str, object]]:
            return {s: {t: on_local if s == t else on_remote for t in regions} for s in regions}

        return cls(
            name=name,
            total=total,
            split=matrix(local, remote),  # type: ignore[arg-type]
            bounds=matrix(lb, rb),  # type: ignore[arg-type]
            rollout=matrix(rollout_local or lb, rollout_remote or rb),  # type: ignore[arg-type]
            max_step=max_step,
            ramp=ramp,
            redistribute=redistribute,
            priority=priority or regions,
            guardrails=guardrails or Guardrails(),
        )


@dataclass(frozen=True, slots=True)
class Vip:
    """One gateway address of a service in a region.

    `id` is stable and unique across the estate ("foo/dc1/10.0.0.1:443"): the
    probes' target id and the key of the VIP's weight in the table. `weight`
    is the VIP's relative share within its region.
    """

    id: str
    service: str
    region: str
    address: str
    port: int
    weight: int = 1

    @staticmethod
    def make_id(service: str, region: str, address: str, port: int) -> str:
        return f"{service}/{region}/{address}:{port}"


@dataclass(frozen=True)
class Service:
    name: str
    fqdn: str
    policy: Policy
    vips: Mapping[str, tuple[Vip, ...]]  # region -> its VIPs (regions without VIPs absent)


@dataclass(frozen=True)
class Estate:
    regions: tuple[str, ...]
    services: tuple[Service, ...]

    def service(self, name: str) -> Service:
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"no service named {name!r}") from None

    @cached_property
    def by_name(self) -> Mapping[str, Service]:
        return {s.name: s for s in self.services}

    @cached_property
    def vip_shares(self) -> Mapping[str, tuple[Mapping[str, int], ...]]:
        """Per service, per region (estate order): each VIP's configured share.

        Built once per estate; evaluations reuse these very objects while no
        VIP of the service is down, which lets them see "nothing changed"
        by identity.
        """
        return {
            s.name: tuple({v.id: v.weight for v in s.vips.get(r, ())} for r in self.regions)
            for s in self.services
        }
