"""The shell around the health tracker: time, logs and metrics.

It stamps every observation (this vantage's or a peer's) with the clock's
wall time, feeds the pure tracker, logs each resulting `HealthEvent` once
(`vip.down`, `region.up`, `vantage.impaired`, ...) and keeps the health
gauges, and tells `on_change` when health changed (a state, a reason, a vote
count, the impaired vantages: anything the tracker's view shows); `run()` moves the tracker's time on so stale data and damping
release take effect without new observations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog

from probes.clock import Clock, SystemClock, sleep_until
from probes.health import HealthEvent, HealthView
from probes.metrics import ProbeMetrics
from probes.observation import Observation
from probes.spec import Target
from probes.tracker import HealthTracker

_WARNINGS = frozenset({"vip.down", "vip.damped", "region.down", "vantage.impaired"})


class HealthMonitor:
    """Feeds a `HealthTracker` and reports its changes. `observe` is the scheduler's
    `on_observation` and also takes peers' observations."""

    def __init__(
        self,
        tracker: HealthTracker | None = None,
        *,
        clock: Clock | None = None,
        metrics: ProbeMetrics | None = None,
        logger: structlog.typing.FilteringBoundLogger | None = None,
        tick: float = 1.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        if tick <= 0:
            raise ValueError(f"tick must be > 0 (got {tick})")
        self._tracker = tracker or HealthTracker()
        self._clock = clock or SystemClock()
        self._metrics = metrics
        self._log = logger or structlog.get_logger("probes")
        self._tick = tick
        self._on_change = on_change
        self._revision = self._tracker.revision

    @property
    def tracker(self) -> HealthTracker:
        return self._tracker

    def update(self, targets: Iterable[Target]) -> None:
        """Makes `targets` the tracked set (call with the same list as `Scheduler.update`)."""
        targets = list(targets)
        before = {target.id: self._tracker.health(target.id) for target in self._tracker.targets()}
        events = self._tracker.set_targets(targets, self._clock.time())
        if self._metrics is not None:
            wanted = {target.id for target in targets}
            for target_id, health in before.items():
                if health is not None and target_id not in wanted:
                    self._metrics.vip_removed(health)
            for target in targets:
                health = self._tracker.health(target.id)
                if health is not None and before.get(target.id) != health:
                    self._metrics.vip(health)
        self._report(events)

    def observe(self, obs: Observation) -> None:
        self._report(self._tracker.observe(obs, self._clock.time()))

    def advance(self) -> None:
        """Applies what time alone changes, as of now."""
        self._report(self._tracker.advance(self._clock.time()))

    def view(self) -> HealthView:
        return self._tracker.view()

    async def run(self) -> None:
        """Advances the tracker every `tick` seconds until cancelled."""
        deadline = self._clock.monotonic()
        while True:
            deadline += self._tick
            await sleep_until(self._clock, deadline)
            self.advance()

    def _report(self, events: list[HealthEvent]) -> None:
        if self._tracker.revision != self._revision:
            self._revision = self._tracker.revision
            if self._on_change is not None:
                self._on_change()
        for event in events:
            if event.name in _WARNINGS:
                self._log.warning(event.name, **event.fields())
            else:
                self._log.info(event.name, **event.fields())
            if self._metrics is None:
                continue
            if event.name.startswith("vip.") and event.target is not None:
                health = self._tracker.health(event.target)
                if health is not None:
                    self._metrics.vip(health)
            elif event.name.startswith("region."):
                self._metrics.region(event)
            elif event.name.startswith("vantage."):
                self._metrics.vantage(event)
