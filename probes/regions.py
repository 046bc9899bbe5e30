"""Per-(service, region) health: counts of VIP states, kept as VIPs change, and the verdict.

A region is up when enough of its VIPs are up (`HealthSettings.region_needs`),
unknown while the unknown ones could still make it so, and down otherwise.
Counts move by one per VIP change, so a change costs the same for 10 VIPs or
10,000. Pure state.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from probes.health import (
    DOWN,
    UNKNOWN,
    UP,
    HealthEvent,
    HealthSettings,
    RegionHealth,
    State,
    VipHealth,
)

RegionKey = tuple[str, str]


class _Region:
    __slots__ = ("counts", "health")

    def __init__(self, service: str, region: str, now: float) -> None:
        self.counts: dict[State, int] = {UP: 0, DOWN: 0, UNKNOWN: 0}
        self.health = RegionHealth(service, region, UNKNOWN, now, "no VIPs", 0, 0, 0)


class RegionTally:
    """The health of every (service, region), updated as its VIPs come, go and change state."""

    def __init__(self, settings: HealthSettings) -> None:
        self._settings = settings
        self._regions: dict[RegionKey, _Region] = {}
        self._proxy: Mapping[RegionKey, RegionHealth] | None = None

    def add(self, vip: VipHealth, now: float, events: list[HealthEvent]) -> None:
        key = (vip.service, vip.region)
        region = self._regions.get(key)
        if region is None:
            region = self._regions[key] = _Region(vip.service, vip.region, now)
        region.counts[vip.state] += 1
        self._decide(region, now, events)

    def remove(self, vip: VipHealth, now: float, events: list[HealthEvent]) -> None:
        key = (vip.service, vip.region)
        region = self._regions[key]
        region.counts[vip.state] -= 1
        if sum(region.counts.values()) == 0:
            del self._regions[key]
            self._proxy = None
            return
        self._decide(region, now, events)

    def moved(self, old: VipHealth, new: VipHealth, now: float, events: list[HealthEvent]) -> None:
        """A VIP of the region changed state from `old.state` to `new.state`."""
        region = self._regions[(new.service, new.region)]
        region.counts[old.state] -= 1
        region.counts[new.state] += 1
        self._decide(region, now, events)

    def snapshot(self) -> Mapping[RegionKey, RegionHealth]:
        if self._proxy is None:
            self._proxy = MappingProxyType(
                {key: region.health for key, region in self._regions.items()}
            )
        return self._proxy

    def _decide(self, region: _Region, now: float, events: list[HealthEvent]) -> None:
        counts = region.counts
        up, unknown = counts[UP], counts[UNKNOWN]
        total = up + unknown + counts[DOWN]
        needed = self._settings.region_needs(total)
        if up >= needed:
            state: State = UP
        elif up + unknown >= needed:
            state = UNKNOWN
        else:
            state = DOWN
        reason = f"{up}/{total} VIPs up, {needed} needed"
        if unknown:
            reason += f", {unknown} unknown"
        old = region.health
        if (old.state, old.reason) == (state, reason):
            return
        since = old.since if old.state == state else now
        region.health = RegionHealth(
            old.service, old.region, state, since, reason, up, total, needed
        )
        self._proxy = None
        if state != old.state:
            events.append(
                HealthEvent(f"region.{state}", now, reason, service=old.service, region=old.region)
            )
