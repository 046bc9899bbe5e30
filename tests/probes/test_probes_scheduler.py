"""The scheduler on a manual clock with a fake prober: spread, no drift, the concurrency
bound, overload reporting, reconciliation while running, and clean cancellation."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from probes import (
    HttpProbe,
    ManualClock,
    Observation,
    ProbeMetrics,
    ProbeResult,
    Scheduler,
    Target,
    TcpProbe,
    phase,
    sleep_until,
)

pytestmark = pytest.mark.filterwarnings("error")


def target(name: str, interval: float = 10.0, timeout: float = 1.0, **kw: object) -> Target:
    spec = TcpProbe(interval=interval, timeout=timeout) if not kw else HttpProbe(**kw)  # type: ignore[arg-type]
    return Target(name, "10.0.0.1", 80, spec, "foo", "dc1")


class FakeProber:
    """Records when each probe starts; takes `latency` seconds of the manual clock."""

    def __init__(self, clock: ManualClock, latency: float = 0.0) -> None:
        self.clock = clock
        self.latency = latency
        self.starts: list[tuple[str, float]] = []
        self.running = 0
        self.max_running = 0
        self.cancelled: list[str] = []
        self.forgotten: list[str] = []
        self.result: Callable[[Target], ProbeResult] = lambda t: ProbeResult(True, "connected")

    async def probe(self, target: Target) -> ProbeResult:
        self.starts.append((target.id, self.clock.monotonic()))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.latency:
                await sleep_until(self.clock, self.clock.monotonic() + self.latency)
            return self.result(target)
        except asyncio.CancelledError:
            self.cancelled.append(target.id)
            raise
        finally:
            self.running -= 1

    def forget(self, target_id: str) -> None:
        self.forgotten.append(target_id)

    def times(self, target_id: str) -> list[float]:
        return [at for tid, at in self.starts if tid == target_id]


class Harness:
    def __init__(self, latency: float = 0.0, concurrency: int = 512) -> None:
        self.clock = ManualClock()
        self.prober = FakeProber(self.clock, latency)
        self.observations: list[Observation] = []
        self.registry = CollectorRegistry()
        self.metrics = ProbeMetrics(self.registry)
        self.scheduler = Scheduler(
            self.prober,
            vantage="dc1",
            on_observation=self.observations.append,
            clock=self.clock,
            concurrency=concurrency,
            metrics=self.metrics,
        )
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.scheduler.run())

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    if h.task is not None and not h.task.done():
        await h.stop()


def test_phase_is_deterministic_and_within_the_interval() -> None:
    assert phase("foo/dc1/10.0.0.1:443", 5.0) == phase("foo/dc1/10.0.0.1:443", 5.0)
    assert phase("a", 5.0) != phase("b", 5.0)
    phases = [phase(f"svc{i}/dc1/10.0.{i // 250}.{i % 250}:443", 5.0) for i in range(10_000)]
    assert all(0.0 <= p < 5.0 for p in phases)
    per_100ms = Counter(int(p * 10) for p in phases)
    assert len(per_100ms) == 50
    assert max(per_100ms.values()) < 2 * 10_000 / 50  # evenly spread: no burst


async def test_first_round_is_spread_over_the_interval(harness: Harness) -> None:
    targets = [target(f"t{i}", interval=10.0) for i in range(1000)]
    harness.scheduler.update(targets)
    harness.start()
    await harness.clock.advance(10.0)
    epoch = 1000.0
    starts = {tid: at for tid, at in harness.prober.starts}
    assert len(starts) == 1000
    for t in targets:
        assert starts[t.id] == pytest.approx(epoch + phase(t.id, 10.0))
    per_second = Counter(int(at - epoch) for at in starts.values())
    assert sorted(per_second) == list(range(10))
    assert max(per_second.values()) < 150


async def test_no_drift_over_many_intervals() -> None:
    h = Harness(latency=0.3)
    t = target("steady", interval=1.0, timeout=0.5)
    h.scheduler.update([t])
    h.start()
    await h.clock.advance(2000.0)
    await h.stop()
    times = h.prober.times("steady")
    first = 1000.0 + phase("steady", 1.0)
    assert len(times) == 2000
    assert all(at == pytest.approx(first + k, abs=1e-6) for k, at in enumerate(times))
    obs = h.observations[-1]
    assert obs.latency == pytest.approx(0.3)
    assert obs.lag == pytest.approx(0.0, abs=1e-6)
    assert obs.vantage == "dc1" and obs.target_id == "steady"
    assert obs.wall == pytest.approx(h.clock.time() - (h.clock.monotonic() - obs.mono))


async def test_concurrency_bound_is_respected_and_overload_reported() -> None:
    h = Harness(latency=0.9, concurrency=5)
    targets = [target(f"t{i}", interval=1.0) for i in range(50)]
    h.scheduler.update(targets)
    with capture_logs() as logs:
        h.start()
        await h.clock.advance(30.0)
        await h.stop()
    assert h.prober.max_running == 5
    stats = h.scheduler.stats()
    assert stats.lagging and stats.max_lag > 1.0 and stats.skipped > 0
    assert h.sample("gtm_probe_scheduler_lagging") == 1.0
    assert (h.sample("gtm_probe_skipped_total", reason="behind") or 0) > 0
    lagging = [entry for entry in logs if entry["event"] == "probes.lagging"]
    assert len(lagging) == 1  # reported once, as a state change, not per probe
    assert lagging[0]["concurrency"] == 5 and lagging[0]["log_level"] == "warning"
    # about 5 probes per 0.9 s: the bound holds, and the shortfall is visible
    assert 150 <= len(h.prober.starts) <= 5 * 30 / 0.9 + 5


async def test_lagging_clears_when_the_load_goes() -> None:
    h = Harness(latency=0.9, concurrency=2)
    h.scheduler.update([target(f"t{i}", interval=1.0) for i in range(10)])
    with capture_logs() as logs:
        h.start()
        await h.clock.advance(5.0)
        h.scheduler.update([target("t0", interval=1.0)])
        await h.clock.advance(5.0)
        await h.stop()
    assert not h.scheduler.stats().lagging
    assert [e["event"] for e in logs] == ["probes.lagging", "probes.caught_up"]


async def test_overrunning_probe_skips_its_slot() -> None:
    h = Harness(latency=1.0)
    h.scheduler.update([target("slow", interval=1.0, timeout=1.0)])
    h.start()
    await h.clock.advance(10.0)
    await h.stop()
    assert 4 <= len(h.prober.starts) <= 6
    assert (h.sample("gtm_probe_skipped_total", reason="overrun") or 0) >= 4


async def test_update_adds_changes_and_removes_without_touching_the_rest(
    harness: Harness,
) -> None:
    keep, change, drop = target("keep"), target("change"), target("drop")
    first = harness.scheduler.update([keep, change, drop])
    assert first.added == ("keep", "change", "drop")
    harness.start()
    await harness.clock.advance(30.0)
    keep_before = harness.prober.times("keep")
    assert len(keep_before) == 3
    new = target("new", interval=5.0)
    changed = target("change", interval=2.0)
    result = harness.scheduler.update([keep, changed, new])
    assert (result.added, result.changed, result.removed, result.unchanged) == (
        ("new",),
        ("change",),
        ("drop",),
        1,
    )
    assert set(harness.prober.forgotten) == {"drop", "change"}
    mark = harness.clock.monotonic()
    await harness.clock.advance(30.0)
    keep_times = harness.prober.times("keep")
    first_keep = 1000.0 + phase("keep", 10.0)
    assert keep_times == pytest.approx([first_keep + 10.0 * k for k in range(6)])
    assert not [at for at in harness.prober.times("drop") if at > mark]
    assert len([at for at in harness.prober.times("change") if at > mark]) == 15
    assert len(harness.prober.times("new")) == 6
    assert harness.scheduler.stats().targets == 3


async def test_removed_target_in_flight_is_cancelled_and_not_reported() -> None:
    h = Harness(latency=0.8)
    h.scheduler.update([target("a", interval=1.0), target("b", interval=1.0)])
    h.start()
    await h.clock.advance(1.0)
    running = h.prober.running
    assert running >= 1
    in_flight = {tid for tid, at in h.prober.starts if at > h.clock.monotonic() - 0.8}
    h.scheduler.update([])
    await h.clock.advance(2.0)
    assert set(h.prober.cancelled) == in_flight
    assert h.prober.running == 0
    reported = {o.target_id for o in h.observations if o.mono + o.latency > 1001.0}
    assert not reported & in_flight
    await h.stop()


async def test_cancellation_leaves_no_task_behind() -> None:
    h = Harness(latency=5.0)
    h.scheduler.update([target(f"t{i}", interval=10.0, timeout=6.0) for i in range(20)])
    before = asyncio.all_tasks()
    h.start()
    await h.clock.advance(9.0)
    assert h.prober.running > 0
    await h.stop()
    assert h.prober.running == 0
    assert len(h.prober.cancelled) > 0
    assert asyncio.all_tasks() == before
    assert h.clock.pending == 0
    assert h.scheduler.stats().in_flight == 0
    # and it can run again afterwards
    h.start()
    await h.clock.advance(10.0)
    await h.stop()


async def test_observations_carry_results_and_metrics(harness: Harness) -> None:
    harness.prober.result = lambda t: (
        ProbeResult(True, "http 200") if t.id == "good" else ProbeResult(False, "http 503")
    )
    harness.scheduler.update([target("good", path="/ok"), target("bad", path="/ok")])
    harness.start()
    await harness.clock.advance(5.0)  # HttpProbe's default interval: one probe each
    assert {(o.target_id, o.ok, o.reason) for o in harness.observations} == {
        ("good", True, "http 200"),
        ("bad", False, "http 503"),
    }
    assert harness.sample("gtm_probe_results_total", kind="http", result="ok") == 1
    assert harness.sample("gtm_probe_results_total", kind="http", result="http") == 1
    assert harness.sample("gtm_probe_latency_seconds_count", kind="http") == 2
    assert harness.sample("gtm_probe_targets") == 2


async def test_a_crashing_prober_becomes_a_failed_observation(harness: Harness) -> None:
    def boom(t: Target) -> ProbeResult:
        raise RuntimeError("bug")

    harness.prober.result = boom
    harness.scheduler.update([target("a")])
    with capture_logs() as logs:
        harness.start()
        await harness.clock.advance(10.0)
    assert [(o.ok, o.reason) for o in harness.observations] == [(False, "error: RuntimeError: bug")]
    assert [e["event"] for e in logs] == ["probe.crashed"]


async def test_bad_arguments(harness: Harness) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        Scheduler(harness.prober, vantage="dc1", on_observation=print, concurrency=0)
    harness.start()
    await harness.clock.advance(0.0)
    with pytest.raises(RuntimeError, match="already running"):
        await harness.scheduler.run()


@pytest.mark.parametrize("rounds", [1, 2, 3])
async def test_removing_a_probe_about_to_start_frees_its_slot(rounds: int) -> None:
    h = Harness(latency=0.5, concurrency=1)
    t = target("a", interval=1.0)
    h.scheduler.update([t])
    h.start()
    await asyncio.sleep(0)  # the dispatcher arms its timer
    await h.clock.advance(phase("a", 1.0), settle=0)
    for _ in range(rounds):  # 1: task created, not started; 2: started; 3: probing
        await asyncio.sleep(0)
    assert h.scheduler.stats().dispatched == 1
    assert len(h.prober.starts) == (0 if rounds == 1 else 1)
    h.scheduler.update([])
    await h.clock.advance(0.0)
    assert h.scheduler.stats().in_flight == 0
    h.scheduler.update([t])
    await h.clock.advance(2.0)
    assert h.scheduler.stats().in_flight in (0, 1)
    assert len(h.prober.starts) >= 2
    await h.stop()
    assert h.scheduler.stats().in_flight == 0
