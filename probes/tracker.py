"""The health tracker: observations from every vantage in, health per VIP and region out.

Pure core: fed observations and an explicit `now` (epoch seconds, the same
timeline as `Observation.wall`), it reads no clock, does no I/O and logs
nothing; each call returns the `HealthEvent`s of the changes it made. Per VIP:

1. each vantage's results go through rise/fall hysteresis (`RiseFall`);
2. the fresh opinions of unimpaired vantages vote (`HealthSettings.quorum`); a
   vantage that fell silent (stale) votes no more, but still counts among those
   a down verdict needs more than `quorum` of, unless it is in the VIP's own
   region (it may have died with it): silence never tips a VIP down, and a
   region that died whole, prober and VIPs together, is still taken out;
3. the vote's up->down changes feed flap damping, which can hold it down.

Time-driven changes (data going stale, damping released) happen in `advance`,
which visits only the VIPs whose deadline passed (a heap), so the cost of a
call does not grow with the number of VIPs.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from types import MappingProxyType

from probes.damping import FlapDamper
from probes.health import (
    DOWN,
    UNKNOWN,
    UP,
    HealthEvent,
    HealthSettings,
    HealthView,
    State,
    VantageVote,
    VipHealth,
)
from probes.hysteresis import RiseFall
from probes.impairment import VantageRecord
from probes.observation import Observation
from probes.regions import RegionTally
from probes.spec import Target

_RELEASE_MARGIN = 1e-3
_INF = float("inf")


class _Vip:
    __slots__ = ("check_at", "damper", "health", "last_known", "stale_after", "target", "votes")

    def __init__(self, target: Target, settings: HealthSettings, now: float) -> None:
        self.target = target
        self.stale_after = _stale_after(target, settings)
        self.votes: dict[str, RiseFall] = {}
        self.last_known: State = UNKNOWN
        self.damper = FlapDamper()
        self.check_at: float | None = None
        self.health = VipHealth(target.id, target.service, target.region, UNKNOWN, now, "no data")


def _stale_after(target: Target, settings: HealthSettings) -> float:
    return settings.stale_intervals * target.spec.interval + target.spec.timeout


class HealthTracker:
    """Decides health from observations of all vantages; see the module text for the rules."""

    def __init__(self, settings: HealthSettings | None = None) -> None:
        self._settings = settings or HealthSettings()
        self._vips: dict[str, _Vip] = {}
        self._health: dict[str, VipHealth] = {}
        self._vantages: dict[str, VantageRecord] = {}
        self._regions = RegionTally(self._settings)
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._now = float("-inf")
        self._vips_proxy: MappingProxyType[str, VipHealth] | None = None
        self._revision = 0

    @property
    def settings(self) -> HealthSettings:
        return self._settings

    @property
    def now(self) -> float:
        """The latest time the tracker was given."""
        return self._now

    @property
    def revision(self) -> int:
        """Rises with every change of health: a VIP's, a region's, the impaired vantages."""
        return self._revision

    def targets(self) -> list[Target]:
        return [vip.target for vip in self._vips.values()]

    def health(self, target_id: str) -> VipHealth | None:
        vip = self._vips.get(target_id)
        return vip.health if vip is not None else None

    def votes(self, target_id: str) -> tuple[VantageVote, ...]:
        """Every vantage's vote on one target, by vantage name; () for an unknown target."""
        vip = self._vips.get(target_id)
        if vip is None:
            return ()
        out = []
        for name, vote in sorted(vip.votes.items()):
            seen = vote.wall != float("-inf")
            out.append(
                VantageVote(
                    name,
                    vote.state,
                    vote.reason,
                    vote.wall if seen else None,
                    vote.ok_run,
                    vote.fail_run,
                    seen and self._now - vote.wall >= vip.stale_after,
                    self._vantages[name].impaired,
                )
            )
        return tuple(out)

    def damping(self, target_id: str) -> float:
        """The flap penalty of one target as of the tracker's time (0: never flapped)."""
        vip = self._vips.get(target_id)
        return 0.0 if vip is None else vip.damper.current(self._settings, self._now)

    def impaired(self) -> frozenset[str]:
        return frozenset(name for name, record in self._vantages.items() if record.impaired)

    def set_targets(self, targets: Iterable[Target], now: float) -> list[HealthEvent]:
        """Reconciles the tracked targets: new ones start unknown, removed ones are
        forgotten, changed ones keep their votes and damping under the new settings."""
        now = self._advance_time(now)
        events: list[HealthEvent] = []
        wanted = {target.id: target for target in targets}
        for target_id in [tid for tid in self._vips if tid not in wanted]:
            vip = self._vips.pop(target_id)
            del self._health[target_id]
            self._regions.remove(vip.health, now, events)
            for record in self._vantages.values():
                record.forget(target_id)
        for target_id, target in wanted.items():
            vip = self._vips.get(target_id)
            if vip is None:
                vip = self._vips[target_id] = _Vip(target, self._settings, now)
                self._health[target_id] = vip.health
                self._regions.add(vip.health, now, events)
            elif vip.target != target:
                old = vip.health
                vip.target = target
                vip.stale_after = _stale_after(target, self._settings)
                if (old.service, old.region) != (target.service, target.region):
                    self._regions.remove(old, now, events)
                    vip.health = VipHealth(
                        target_id, target.service, target.region, old.state, old.since, old.reason
                    )
                    self._health[target_id] = vip.health
                    self._regions.add(vip.health, now, events)
                self._evaluate(vip, now, events)
        self._vips_proxy = None
        self._revision += 1
        return events

    def observe(self, obs: Observation, now: float) -> list[HealthEvent]:
        """Takes one observation from any vantage (this one or a peer)."""
        now = self._advance_time(now)
        vip = self._vips.get(obs.target_id)
        if vip is None:
            return []
        wall = min(obs.wall, now)
        if now - wall >= vip.stale_after:
            return []
        vote = vip.votes.get(obs.vantage)
        if vote is None:
            vote = vip.votes[obs.vantage] = RiseFall()
        elif wall < vote.wall:
            return []  # older than what this vantage already said
        record = self._vantages.get(obs.vantage)
        if record is None:
            record = self._vantages[obs.vantage] = VantageRecord(obs.vantage)
        events: list[HealthEvent] = []
        record.record(obs.target_id, obs.ok)
        if record.update(self._settings, now):
            self._vantage_changed(record, now, events)
        if record.impaired:
            vote.wall = wall
        else:
            spec = vip.target.spec
            vote.record(obs.ok, obs.reason, wall, spec.rise, spec.fall)
        self._evaluate(vip, now, events)
        return events

    def advance(self, now: float) -> list[HealthEvent]:
        """Applies what time alone changes: stale data stops voting, damped VIPs are released."""
        now = self._advance_time(now)
        events: list[HealthEvent] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, target_id = heapq.heappop(heap)
            vip = self._vips.get(target_id)
            if vip is None or vip.check_at != deadline:
                continue
            vip.check_at = None
            self._evaluate(vip, now, events)
        return events

    def view(self) -> HealthView:
        """A read-only snapshot; cheap when little changed since the last one."""
        if self._vips_proxy is None:
            self._vips_proxy = MappingProxyType(dict(self._health))
        return HealthView(
            at=self._now,
            vips=self._vips_proxy,
            regions=self._regions.snapshot(),
            impaired=self.impaired(),
        )

    def _advance_time(self, now: float) -> float:
        if now > self._now:
            self._now = now
        return self._now

    def _vantage_changed(
        self, record: VantageRecord, now: float, events: list[HealthEvent]
    ) -> None:
        self._revision += 1
        if record.impaired:
            events.append(
                HealthEvent("vantage.impaired", now, record.describe(), vantage=record.name)
            )
        else:
            events.append(
                HealthEvent("vantage.recovered", now, record.describe(), vantage=record.name)
            )
        for vip in self._vips.values():
            vote = vip.votes.get(record.name)
            if vote is None:
                continue
            if record.impaired:
                vote.reset()
            self._evaluate(vip, now, events)

    def _evaluate(self, vip: _Vip, now: float, events: list[HealthEvent]) -> None:
        settings = self._settings
        up = down = pending = stale = impaired = witnesses = 0
        down_reason = ""
        down_name: str | None = None
        deadline = _INF
        for name, vote in vip.votes.items():
            if self._vantages[name].impaired:
                impaired += 1
            elif vote.state == UNKNOWN:
                pending += 1
            elif now - vote.wall >= vip.stale_after:
                stale += 1
                if name != vip.target.region:  # silent, yet no reason to think it died with the VIP
                    witnesses += 1
            else:
                deadline = min(deadline, vote.wall + vip.stale_after)
                if vote.state == UP:
                    up += 1
                else:
                    down += 1
                    if down_name is None or name < down_name:
                        down_name, down_reason = name, vote.reason
        voters = up + down
        needed = settings.quorum * (voters + witnesses)
        if voters and down >= settings.min_down_vantages and down > needed:
            raw: State = DOWN
        elif up:
            raw = UP
        else:
            raw = UNKNOWN
        if raw == DOWN and vip.last_known == UP:
            vip.damper.flap(settings, now)
        if raw != UNKNOWN:
            vip.last_known = raw
        damped = vip.damper.check(settings, now)
        damped_until = vip.damper.release_at(settings)
        if damped_until is not None:
            deadline = min(deadline, damped_until + _RELEASE_MARGIN)
        if raw == DOWN:
            state: State = DOWN
            reason = f"{down_reason} ({down}/{voters} vantages)"
            if witnesses:
                reason += f"; {witnesses} silent counted"
        elif damped:
            state = DOWN
            penalty = vip.damper.penalty
            reason = f"flapping: held down (penalty {penalty:.0f} > {settings.reuse_threshold:g})"
        elif raw == UP:
            state = UP
            reason = f"up ({up}/{voters} vantages)"
            if down and witnesses:
                reason += f"; {down} down, not more than {settings.quorum:g} of {voters + witnesses} with the silent"
        elif not vip.votes:
            state, reason = UNKNOWN, "no data"
        else:
            state = UNKNOWN
            reason = (
                f"no verdict: {down} down of {voters} voting, {pending} pending, "
                f"{stale} stale ({witnesses} counted), {impaired} impaired"
            )
        self._update(vip, state, reason, damped, damped_until, up, down, now, events)
        if deadline != _INF and (vip.check_at is None or deadline < vip.check_at):
            vip.check_at = deadline
            heapq.heappush(self._heap, (deadline, next(self._seq), vip.target.id))

    def _update(
        self,
        vip: _Vip,
        state: State,
        reason: str,
        damped: bool,
        damped_until: float | None,
        up: int,
        down: int,
        now: float,
        events: list[HealthEvent],
    ) -> None:
        old = vip.health
        if (
            old.state == state
            and old.reason == reason
            and old.damped == damped
            and old.damped_until == damped_until
            and old.up_votes == up
            and old.down_votes == down
        ):
            return
        since = old.since if old.state == state else now
        new = VipHealth(
            old.target_id,
            old.service,
            old.region,
            state,
            since,
            reason,
            damped,
            damped_until,
            up,
            down,
        )
        vip.health = new
        self._health[old.target_id] = new
        self._vips_proxy = None
        self._revision += 1
        ids = {"target": old.target_id, "service": old.service, "region": old.region}
        if damped != old.damped:
            events.append(
                HealthEvent("vip.damped" if damped else "vip.released", now, reason, **ids)
            )
        if state != old.state:
            events.append(HealthEvent(f"vip.{state}", now, reason, **ids))
            self._regions.moved(old, new, now, events)
