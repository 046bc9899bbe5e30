"""A checker that stops must not look healthy: the scheduler says when its own probing
has stopped (run ended, prober wedged), in `stalled()`, its stats, a metric and one event
each way, within `stall_intervals` of the shortest interval (plus its timeout)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from probes import ManualClock, Observation, ProbeMetrics, ProbeResult, Scheduler, Target, TcpProbe

pytestmark = pytest.mark.filterwarnings("error")

INTERVAL, TIMEOUT = 5.0, 1.0
STALL = 3 * INTERVAL + TIMEOUT  # the age after which peers' trackers stop counting a vote


def target(name: str, interval: float = INTERVAL) -> Target:
    return Target(name, "10.0.0.1", 80, TcpProbe(interval=interval, timeout=TIMEOUT), "foo", "dc1")


class SwitchProber:
    """Answers at once, until `wedge()`: from then on every probe hangs for ever."""

    def __init__(self) -> None:
        self.wedged = asyncio.Event()
        self.hang = asyncio.Event()  # never set

    def wedge(self) -> None:
        self.wedged.set()

    async def probe(self, target: Target) -> ProbeResult:
        if self.wedged.is_set():
            await self.hang.wait()
        return ProbeResult(True, "connected")

    def forget(self, target_id: str) -> None:
        pass


class Rig:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.prober = SwitchProber()
        self.registry = CollectorRegistry()
        self.seen: list[Observation] = []
        self.scheduler = Scheduler(
            self.prober,
            vantage="dc1",
            on_observation=self.seen.append,
            clock=self.clock,
            metrics=ProbeMetrics(self.registry),
        )
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tasks = [
            loop.create_task(self.scheduler.run(), name="scheduler"),
            loop.create_task(self.scheduler.watch(1.0), name="watch"),
        ]

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def metric(self, name: str) -> float | None:
        return self.registry.get_sample_value(name)


async def test_nothing_is_stalled_while_results_come_or_before_probing_starts() -> None:
    rig = Rig()
    rig.scheduler.update([target(f"t{i}") for i in range(20)])
    assert rig.scheduler.stalled() is None  # not started: nothing expected yet
    assert rig.metric("gtm_probe_newest_age_seconds") == -1.0
    rig.start()
    with capture_logs() as logs:
        await rig.clock.advance(120.0)
    assert rig.scheduler.stalled() is None
    assert rig.scheduler.stats().stalled is None
    age = rig.scheduler.newest_age()
    assert age is not None and age < INTERVAL
    assert rig.metric("gtm_probes_stalled") == 0.0
    assert not [e for e in logs if e["event"].startswith("probes.")]
    await rig.close()


async def test_a_wedged_prober_is_stalled_within_three_intervals_and_resumes() -> None:
    rig = Rig()
    rig.scheduler.update([target(f"t{i}") for i in range(20)])
    rig.start()
    await rig.clock.advance(30.0)
    with capture_logs() as logs:
        rig.prober.wedge()
        await rig.clock.advance(STALL - INTERVAL)  # the newest result is at most 5 s old here
        assert rig.scheduler.stalled() is None
        await rig.clock.advance(INTERVAL + 1.0)  # at most STALL + 1 s after the last result
        cause = rig.scheduler.stalled()
        assert cause is not None and "no own probe result" in cause
        assert "in flight" in cause
        stats = rig.scheduler.stats()
        assert stats.stalled == cause and stats.newest_age is not None
        assert stats.newest_age > STALL
        assert rig.metric("gtm_probes_stalled") == 1.0
        assert (rig.metric("gtm_probe_newest_age_seconds") or 0) > STALL
        # the prober comes back: the next results clear it
        rig.prober.hang.set()
        rig.prober.wedged.clear()
        await rig.clock.advance(2 * INTERVAL)
        assert rig.scheduler.stalled() is None
        assert rig.metric("gtm_probes_stalled") == 0.0
    events = [(e["event"], e["log_level"]) for e in logs if e["event"].startswith("probes.")]
    assert events == [("probes.stalled", "error"), ("probes.resumed", "info")]
    await rig.close()


async def test_a_scheduler_that_ended_says_so_at_once() -> None:
    rig = Rig()
    rig.scheduler.update([target(f"t{i}") for i in range(5)])
    rig.start()
    await rig.clock.advance(10.0)
    rig.tasks[0].cancel()  # someone cancelled the dispatcher; the member runs on
    await asyncio.gather(rig.tasks[0], return_exceptions=True)
    assert rig.scheduler.stalled() == "scheduler stopped (cancelled)"
    assert rig.metric("gtm_probes_stalled") == 1.0
    with capture_logs() as logs:
        await rig.clock.advance(1.0)
    assert [e["event"] for e in logs] == ["probes.stalled"]
    await rig.close()


async def test_a_crashed_scheduler_names_the_error() -> None:
    def boom(obs: Observation) -> None:
        raise RuntimeError("bug in a callback")

    clock = ManualClock()
    scheduler = Scheduler(SwitchProber(), vantage="dc1", on_observation=boom, clock=clock)
    scheduler.update([target("t0", interval=1.0)])
    task = asyncio.get_running_loop().create_task(scheduler.run())
    await clock.advance(2.0)
    with pytest.raises(ExceptionGroup):
        await task
    assert scheduler.stalled() == "scheduler stopped (crashed: RuntimeError: bug in a callback)"


async def test_a_crashed_scheduler_is_restarted_with_back_off_and_says_so_until_it_delivers() -> (
    None
):
    failing = [2]  # the callback's bug strikes twice

    def callback(obs: Observation) -> None:
        if failing[0]:
            failing[0] -= 1
            raise RuntimeError("bug in a callback")
        seen.append(obs)

    seen: list[Observation] = []
    clock = ManualClock()
    scheduler = Scheduler(SwitchProber(), vantage="dc1", on_observation=callback, clock=clock)
    scheduler.update([target("t0", interval=1.0)])
    with capture_logs() as logs:
        task = asyncio.get_running_loop().create_task(scheduler.keep_running())
        await clock.advance(1.5)  # the first result: a crash, a restart due in 1 s
        assert scheduler.stalled() == "scheduler stopped (crashed: RuntimeError: bug in a callback)"
        await clock.advance(1.0)  # restarted, and its first result crashes it again: 2 s
        assert not task.done() and not seen
        await clock.advance(4.0)  # restarted once more, with results delivered
        cause = scheduler.stalled()
        assert seen and cause is None, cause
    restarts = [e for e in logs if e["event"] == "probes.scheduler_restarting"]
    assert [e["restart_in"] for e in restarts] == [1.0, 2.0]
    assert restarts[0]["why"] == "crashed: RuntimeError: bug in a callback"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert scheduler.stalled() == "scheduler stopped (cancelled)"


async def test_a_restarted_scheduler_that_delivers_nothing_stays_stalled() -> None:
    def boom(obs: Observation) -> None:
        raise RuntimeError("bug in a callback")

    clock = ManualClock()
    prober = SwitchProber()
    scheduler = Scheduler(prober, vantage="dc1", on_observation=boom, clock=clock)
    scheduler.update([target("t0", interval=1.0)])
    task = asyncio.get_running_loop().create_task(scheduler.keep_running())
    await clock.advance(1.5)
    prober.wedge()  # after the restart no probe returns: nothing is delivered
    await clock.advance(1.0)
    cause = scheduler.stalled()
    assert cause is not None and cause.startswith("restarted after it crashed: RuntimeError")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_no_targets_is_not_a_stall_and_new_targets_get_a_grace() -> None:
    rig = Rig()
    rig.start()
    await rig.clock.advance(300.0)
    assert rig.scheduler.stalled() is None  # nothing to probe: nothing missing
    rig.prober.wedge()
    rig.scheduler.update([target("late")])
    await rig.clock.advance(STALL - 1.0)
    assert rig.scheduler.stalled() is None  # counted from when there was something to probe
    await rig.clock.advance(2.0)
    assert rig.scheduler.stalled() is not None
    await rig.close()


def test_stall_intervals_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stall_intervals"):
        Scheduler(SwitchProber(), vantage="dc1", on_observation=print, stall_intervals=0)
