"""Health as values: the settings that decide it, the states per VIP and per (service, region),
the snapshot the policy engine reads, and the events that mark each change."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from probes.spec import ProbeConfigError

State = Literal["up", "down", "unknown"]
UP: State = "up"
DOWN: State = "down"
UNKNOWN: State = "unknown"


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """How observations become health. Times are seconds.

    Quorum: a VIP is down when more than `quorum` of the voting vantages (fresh,
    not impaired, past their rise/fall) say down, and at least `min_down_vantages`
    do. A vantage's data is fresh for `stale_intervals` probe intervals (plus the
    timeout) after it was taken.

    Impaired vantage: one whose latest results fail for more than
    `impaired_fraction` of the targets it probes (at least
    `impaired_min_targets` of them) is impaired until that share falls to
    `impaired_clear_fraction`; its observations do not count meanwhile.

    Damping (BGP route-flap damping): each up->down change adds `flap_penalty`;
    the penalty halves every `half_life`; above `suppress_threshold` the VIP is
    held down until the penalty decays below `reuse_threshold`, and never longer
    than `max_suppress` after its last flap. `flap_penalty=0` turns damping off.

    Region: a (service, region) is up when at least `region_min_up` of its VIPs
    and at least `region_min_up_fraction` of them are up.
    """

    quorum: float = 0.5
    min_down_vantages: int = 1
    stale_intervals: float = 3.0
    impaired_fraction: float = 0.8
    impaired_clear_fraction: float = 0.5
    impaired_min_targets: int = 10
    half_life: float = 300.0
    flap_penalty: float = 1000.0
    suppress_threshold: float = 2000.0
    reuse_threshold: float = 750.0
    max_suppress: float = 1800.0
    region_min_up: int = 1
    region_min_up_fraction: float = 0.0

    def __post_init__(self) -> None:
        problems: list[str] = []

        def check(name: str, rule: Callable[[float], bool], need: str) -> None:
            value = getattr(self, name)
            number = not isinstance(value, bool) and isinstance(value, int | float)
            if not number or not rule(value):
                problems.append(f"{name}: must be {need} (got {value!r})")

        def whole(name: str, minimum: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                problems.append(f"{name}: must be an integer >= {minimum} (got {value!r})")

        def number(name: str) -> float:
            value = getattr(self, name)
            return value if isinstance(value, int | float) else math.nan

        check("quorum", lambda v: 0.0 <= v < 1.0, "a fraction in [0, 1)")
        whole("min_down_vantages", 1)
        check("stale_intervals", lambda v: v > 0, "> 0")
        check("impaired_fraction", lambda v: 0.0 < v <= 1.0, "a fraction in (0, 1]")
        check(
            "impaired_clear_fraction",
            lambda v: 0.0 <= v < number("impaired_fraction"),
            "a fraction below impaired_fraction",
        )
        whole("impaired_min_targets", 1)
        check("half_life", lambda v: v > 0, "> 0")
        check("flap_penalty", lambda v: v >= 0, ">= 0")
        check("reuse_threshold", lambda v: v > 0, "> 0")
        check(
            "suppress_threshold",
            lambda v: v > number("reuse_threshold"),
            "above reuse_threshold",
        )
        check("max_suppress", lambda v: v > 0, "> 0")
        whole("region_min_up", 0)
        check("region_min_up_fraction", lambda v: 0.0 <= v <= 1.0, "a fraction in [0, 1]")
        if problems:
            raise ProbeConfigError("health settings", problems)

    @property
    def max_penalty(self) -> float:
        """The ceiling that bounds suppression to `max_suppress` after the last flap."""
        return self.reuse_threshold * math.pow(2.0, self.max_suppress / self.half_life)

    def region_needs(self, total: int) -> int:
        """How many VIPs of a (service, region) with `total` VIPs must be up."""
        return min(total, max(self.region_min_up, math.ceil(self.region_min_up_fraction * total)))


@dataclass(frozen=True, slots=True)
class VipHealth:
    """One target's health for traffic, combined over vantages and damped.

    `since` is the epoch time of the last change of `state`; `reason` says why it
    is so now; `up_votes`/`down_votes` count the fresh, unimpaired vantages behind
    it; `damped_until` is when a damped VIP is released if it flaps no more.
    """

    target_id: str
    service: str
    region: str
    state: State
    since: float
    reason: str
    damped: bool = False
    damped_until: float | None = None
    up_votes: int = 0
    down_votes: int = 0


@dataclass(frozen=True, slots=True)
class RegionHealth:
    """A service's health in one region: `up` of its `total` VIPs are up, `needed` must be."""

    service: str
    region: str
    state: State
    since: float
    reason: str
    up: int
    total: int
    needed: int


@dataclass(frozen=True, slots=True)
class VantageVote:
    """What one vantage says of one VIP, and whether it counts: for `gtm explain`.

    `ok_run`/`fail_run` are its consecutive results (a VIP rises after `rise`
    successes and falls after `fall` failures); `at` is when its latest result
    was taken; a stale or impaired vantage's vote does not count."""

    vantage: str
    state: State
    reason: str
    at: float | None
    ok_run: int
    fail_run: int
    stale: bool
    impaired: bool


@dataclass(frozen=True, slots=True)
class HealthView:
    """A snapshot for the policy engine: every VIP, every (service, region), impaired vantages.

    `at` is the tracker's time (epoch seconds) when it was taken; the mappings are
    read-only and are not touched after the snapshot.
    """

    at: float
    vips: Mapping[str, VipHealth] = field(default_factory=lambda: MappingProxyType({}))
    regions: Mapping[tuple[str, str], RegionHealth] = field(
        default_factory=lambda: MappingProxyType({})
    )
    impaired: frozenset[str] = frozenset()

    def service_regions(self, service: str) -> dict[str, RegionHealth]:
        """The regions of one service, by region name."""
        return {region: health for (svc, region), health in self.regions.items() if svc == service}


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """A change worth a log line: `vip.up|down|unknown`, `vip.damped|released`,
    `region.up|down|unknown`, `vantage.impaired|recovered`."""

    name: str
    at: float
    reason: str
    target: str | None = None
    service: str | None = None
    region: str | None = None
    vantage: str | None = None

    def fields(self) -> dict[str, str | float]:
        """Key/values for a structured log line, without the empty ones."""
        out: dict[str, str | float] = {"at": self.at, "reason": self.reason}
        for key in ("target", "service", "region", "vantage"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out
