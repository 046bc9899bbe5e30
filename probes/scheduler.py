"""The scheduler: every target probed on its own interval, on the monotonic clock.

Each target's slots sit on a fixed grid, `epoch + phase(id) + k * interval`,
where the phase is a hash of the target id: deterministic jitter that spreads
10,000 targets over the interval and never drifts, however long the probes
take. One dispatcher walks the slots in order and starts each probe as a task
of its own TaskGroup, within a global concurrency bound. When it cannot keep
up it says so (lag metric and a `probes.lagging` event) and skips whole slots
rather than stretching intervals. `update()` reconciles the targets while
running; cancelling `run()` cancels and awaits every probe.

A checker that stops must not look healthy: `stalled()` says why this
vantage's own probing has stopped — `run()` ended, or no result came back
for `stall_intervals` of the shortest interval plus its timeout (a wedged
prober, a dispatcher stuck) — the same age after which peers' trackers stop
counting a vantage's votes. `watch()` logs `probes.stalled` and
`probes.resumed`; the metrics read it at scrape time. `keep_running()` is
`run()` restarted after a crash (a bug in a callback), with back-off: the
member, and the DNS it answers, stay up meanwhile, and `stalled()` names
the crash until a result is delivered again.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import heapq
import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from probes.clock import Clock, SystemClock, Timer, sleep_until
from probes.metrics import ProbeMetrics
from probes.observation import Observation, ProbeResult
from probes.prober import Prober
from probes.spec import Target

_EARLY = 0.0005  # timers may fire this much early (uvloop's clock has millisecond steps)
RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds before each restart after a crash
STABLE_AFTER = 60.0  # a run this long starts the back-off over


def phase(target_id: str, interval: float) -> float:
    """The target's offset in [0, interval): the same for the same id, everywhere."""
    digest = hashlib.blake2b(target_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 * interval


@dataclass(frozen=True, slots=True)
class ScheduleChange:
    """What `Scheduler.update` did."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    targets: int
    in_flight: int
    dispatched: int
    skipped: int
    lag: float
    max_lag: float
    lagging: bool
    newest_age: float | None = None  # seconds since the newest own probe result (None: none yet)
    stalled: str | None = None  # why own probing has stopped; None while it runs


class _Entry:
    __slots__ = ("target", "task")

    def __init__(self, target: Target) -> None:
        self.target = target
        self.task: asyncio.Task[None] | None = None


class Scheduler:
    """Probes targets through `prober` and hands each `Observation` to `on_observation`.

    `on_observation` runs in the event loop for every probe: keep it quick (feed a
    tracker, put on a queue); an exception from it is a bug and ends `run()`.
    `lag_tolerance` is how late (seconds) a probe may
    start before the scheduler reports itself lagging.
    """

    def __init__(
        self,
        prober: Prober,
        *,
        vantage: str,
        on_observation: Callable[[Observation], None],
        clock: Clock | None = None,
        concurrency: int = 512,
        lag_tolerance: float = 1.0,
        stall_intervals: float = 3.0,
        metrics: ProbeMetrics | None = None,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1 (got {concurrency})")
        if stall_intervals <= 0:
            raise ValueError(f"stall_intervals must be > 0 (got {stall_intervals})")
        self._prober = prober
        self._vantage = vantage
        self._on_observation = on_observation
        self._clock = clock or SystemClock()
        self._concurrency = concurrency
        self._lag_tolerance = lag_tolerance
        self._metrics = metrics
        self._log = logger or structlog.get_logger("probes")
        self._epoch = self._clock.monotonic()
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self._slot_freed: asyncio.Future[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        self._in_flight = 0
        self._dispatched = 0
        self._skipped = 0
        self._lag = 0.0
        self._max_lag = 0.0
        self._lagging = False
        self._stall_intervals = stall_intervals
        self._stall_after = math.inf  # no result for this long: stalled (set by `update`)
        self._expected_every = math.inf  # the shortest interval
        self._started: float | None = None  # monotonic: when `run()` began
        self._since: float | None = None  # monotonic: when there were targets again
        self._newest: float | None = None  # monotonic: the newest own result
        self._stopped: str | None = None  # why `run()` ended, as `stalled()` says it
        self._ended = ""  # why the last `run()` ended: "cancelled", "crashed: …"
        self._crashed: str | None = None  # `keep_running()` restarted it; cleared by a result
        self._reported: str | None = None  # the stall `watch()` last logged
        if metrics is not None:
            metrics.bind_scheduler(
                lambda: self._in_flight,
                lambda: len(self._entries),
                newest_age=lambda: -1.0 if (age := self.newest_age()) is None else age,
                stalled=lambda: 0.0 if self.stalled() is None else 1.0,
            )

    def update(self, targets: Iterable[Target]) -> ScheduleChange:
        """Makes `targets` the scheduled set: new ones start at their next slot, changed
        ones restart (their running probe is cancelled), the rest run on untouched."""
        wanted = {target.id: target for target in targets}
        if wanted and not self._entries:
            self._since = self._clock.monotonic()  # something to probe again: a fresh grace
        removed = [tid for tid in self._entries if tid not in wanted]
        for target_id in removed:
            self._drop(target_id)
        added: list[str] = []
        changed: list[str] = []
        now = self._clock.monotonic()
        for target_id, target in wanted.items():
            entry = self._entries.get(target_id)
            if entry is not None and entry.target == target:
                continue
            if entry is not None:
                changed.append(target_id)
                self._drop(target_id)
            else:
                added.append(target_id)
            entry = self._entries[target_id] = _Entry(target)
            heapq.heappush(self._heap, (self._first_slot(target, now), next(self._seq), entry))
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        timings = {(e.target.spec.interval, e.target.spec.timeout) for e in self._entries.values()}
        self._expected_every = min((interval for interval, _ in timings), default=math.inf)
        self._stall_after = min(
            (self._stall_intervals * interval + timeout for interval, timeout in timings),
            default=math.inf,
        )
        return ScheduleChange(
            tuple(added), tuple(changed), tuple(removed), len(wanted) - len(added) - len(changed)
        )

    def stats(self) -> SchedulerStats:
        return SchedulerStats(
            targets=len(self._entries),
            in_flight=self._in_flight,
            dispatched=self._dispatched,
            skipped=self._skipped,
            lag=self._lag,
            max_lag=self._max_lag,
            lagging=self._lagging,
            newest_age=None if (age := self.newest_age()) is None else round(age, 3),
            stalled=self.stalled(),
        )

    def newest_age(self) -> float | None:
        """Seconds since the newest of this vantage's own probe results; None before the first."""
        return None if self._newest is None else self._clock.monotonic() - self._newest

    def stalled(self) -> str | None:
        """Why this vantage's own probing has stopped, or None while results keep coming.

        Stopped: `run()` ended (cancelled or crashed), or there are targets and no
        result came back for `stall_intervals` x the shortest interval + its timeout
        since the newest one (or since probing began): the prober is wedged or the
        dispatcher stuck. Before `run()` starts nothing is expected yet.
        """
        if self._stopped is not None:
            return self._stopped
        if self._crashed is not None and self._entries:
            return f"restarted after it {self._crashed}; no result delivered since"
        if self._started is None or not self._entries:
            return None
        since = max(self._started, self._since or self._started, self._newest or self._started)
        silent = self._clock.monotonic() - since
        if silent <= self._stall_after:
            return None
        return (
            f"no own probe result for {silent:.1f}s (one is due every "
            f"{self._expected_every:g}s; {self._in_flight} probes in flight)"
        )

    async def watch(self, tick: float = 1.0) -> None:
        """Logs `probes.stalled` when own probing stops and `probes.resumed` when it
        is back, checking every `tick` seconds, until cancelled."""
        deadline = self._clock.monotonic()
        while True:
            deadline += tick
            await sleep_until(self._clock, deadline)
            self.check()

    def check(self) -> str | None:
        """`stalled()`, logged when it changes."""
        cause = self.stalled()
        if (cause is None) != (self._reported is None):
            if cause is not None:
                self._log.error("probes.stalled", vantage=self._vantage, cause=cause)
            else:
                self._log.info("probes.resumed", vantage=self._vantage)
        self._reported = cause
        return cause

    async def keep_running(self) -> None:
        """`run()` until cancelled, restarted after each crash: 1, 2, 5, 10, then every 30
        seconds (from 1 again once a run lasted a minute)."""
        failures = 0
        while True:
            began = self._clock.monotonic()
            try:
                await self.run()
            except Exception:  # a crash (an ExceptionGroup of the probes' TaskGroup)
                if self._clock.monotonic() - began >= STABLE_AFTER:
                    failures = 0
                delay = RESTART_BACKOFF[min(failures, len(RESTART_BACKOFF) - 1)]
                failures += 1
                self._crashed = self._ended
                self._log.error(
                    "probes.scheduler_restarting",
                    vantage=self._vantage,
                    why=self._ended,
                    restart_in=delay,
                    failures=failures,
                )
                await sleep_until(self._clock, self._clock.monotonic() + delay)

    async def run(self) -> None:
        """Probes until cancelled; then cancels and awaits every running probe."""
        if self._group is not None:
            raise RuntimeError("scheduler is already running")
        self._started = self._clock.monotonic()
        self._stopped = None
        why = "cancelled"
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                await self._dispatch()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
                    exc = exc.exceptions[0]  # the probes' TaskGroup: name what went wrong
                why = f"crashed: {type(exc).__name__}: {exc}"
            raise
        finally:
            self._group = None
            self._ended = why
            self._stopped = f"scheduler stopped ({why})"

    def _first_slot(self, target: Target, now: float) -> float:
        interval = target.spec.interval
        slot = self._epoch + phase(target.id, interval)
        if slot < now:
            slot += math.ceil((now - slot) / interval) * interval
        return slot

    def _drop(self, target_id: str) -> None:
        entry = self._entries.pop(target_id)
        if entry.task is not None:
            entry.task.cancel()
        self._prober.forget(target_id)

    async def _dispatch(self) -> None:
        heap = self._heap
        clock = self._clock
        while True:
            if not heap:
                await self._sleep(None)
                continue
            slot, _, entry = heap[0]
            now = clock.monotonic()
            if slot > now + _EARLY:
                await self._sleep(slot)
                continue
            heapq.heappop(heap)
            if self._entries.get(entry.target.id) is not entry:
                continue  # removed or replaced
            interval = entry.target.spec.interval
            following = slot + interval
            if following <= now:  # late by more than an interval: skip the missed slots
                missed = math.floor((now - slot) / interval)
                following = slot + (missed + 1) * interval
                self._skip("behind", missed)
            heapq.heappush(heap, (following, next(self._seq), entry))
            if entry.task is not None:
                self._skip("overrun", 1)
                continue
            if self._in_flight >= self._concurrency:
                await self._wait_for_slot()
                if self._entries.get(entry.target.id) is not entry or entry.task is not None:
                    continue
            self._in_flight += 1
            self._dispatched += 1
            assert self._group is not None
            task = entry.task = self._group.create_task(self._probe(entry, slot))
            task.add_done_callback(functools.partial(self._finished, entry))

    async def _sleep(self, deadline: float | None) -> None:
        loop = asyncio.get_running_loop()
        wakeup: asyncio.Future[None] = loop.create_future()
        self._wakeup = wakeup
        timer: Timer | None = None
        if deadline is not None:
            timer = self._clock.call_at(deadline, lambda: wakeup.done() or wakeup.set_result(None))
        try:
            await wakeup
        finally:
            self._wakeup = None
            if timer is not None:
                timer.cancel()

    async def _wait_for_slot(self) -> None:
        while self._in_flight >= self._concurrency:
            self._slot_freed = asyncio.get_running_loop().create_future()
            try:
                await self._slot_freed
            finally:
                self._slot_freed = None

    async def _probe(self, entry: _Entry, slot: float) -> None:
        target = entry.target
        clock = self._clock
        start = clock.monotonic()
        wall = clock.time()
        lag = max(0.0, start - slot)
        self._note_lag(lag)
        try:
            result = await self._prober.probe(target)
        except Exception as exc:  # a prober must not raise; report it as a failed probe
            result = ProbeResult(False, f"error: {type(exc).__name__}: {exc}")
            self._log.error("probe.crashed", target=target.id, error=repr(exc))
        latency = clock.monotonic() - start
        entry.task = None
        if self._entries.get(target.id) is not entry:
            return  # removed or changed while probing: the result is of the old target
        obs = Observation(
            target.id,
            self._vantage,
            result.ok,
            latency,
            start,
            wall,
            result.reason,
            lag,
            result.days_to_expiry,
        )
        self._newest = clock.monotonic()
        if self._metrics is not None:
            self._metrics.observed(target.kind, obs)
        self._on_observation(obs)
        self._crashed = None  # delivered: a restart after a crash worked

    def _finished(self, entry: _Entry, task: asyncio.Task[None]) -> None:
        """Runs when a probe task ends in any way, even cancelled before it started."""
        if entry.task is task:
            entry.task = None
        self._in_flight -= 1
        freed = self._slot_freed
        if freed is not None and not freed.done():
            freed.set_result(None)

    def _skip(self, reason: str, count: int) -> None:
        self._skipped += count
        if self._metrics is not None:
            self._metrics.skipped.labels(reason).inc(count)

    def _note_lag(self, lag: float) -> None:
        self._lag = lag
        if lag > self._max_lag:
            self._max_lag = lag
        if lag > self._lag_tolerance:
            if not self._lagging:
                self._set_lagging(True, reason="late")
        elif self._lagging and lag < self._lag_tolerance / 2:
            self._set_lagging(False, reason="caught up")

    def _set_lagging(self, lagging: bool, *, reason: str) -> None:
        self._lagging = lagging
        if self._metrics is not None:
            self._metrics.lagging.set(1.0 if lagging else 0.0)
        fields = {
            "vantage": self._vantage,
            "reason": reason,
            "lag": round(self._lag, 4),
            "in_flight": self._in_flight,
            "concurrency": self._concurrency,
            "targets": len(self._entries),
            "skipped": self._skipped,
        }
        if lagging:
            self._log.warning("probes.lagging", **fields)
        else:
            self._log.info("probes.caught_up", **fields)
