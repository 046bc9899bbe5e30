"""HealthMonitor: logs state changes only, keeps the health gauges, moves time on; and the
whole chain (scheduler, network prober, monitor) against a real server."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from probe_servers import HttpServer
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from probes import (
    DOWN,
    UP,
    HealthMonitor,
    HealthSettings,
    HealthTracker,
    HttpProbe,
    ManualClock,
    NetworkProber,
    Observation,
    ProbeMetrics,
    Scheduler,
    Target,
)

pytestmark = pytest.mark.filterwarnings("error")

SETTINGS = HealthSettings(flap_penalty=0, impaired_min_targets=2)


def target(name: str, port: int = 80, path: str = "/ok", interval: float = 5.0) -> Target:
    spec = HttpProbe(path=path, interval=interval, timeout=min(1.0, interval), rise=1, fall=2)
    return Target(f"foo/dc1/{name}", "127.0.0.1", port, spec, "foo", "dc1")


def make_monitor() -> tuple[HealthMonitor, ManualClock, CollectorRegistry]:
    clock = ManualClock()
    registry = CollectorRegistry()
    monitor = HealthMonitor(
        HealthTracker(SETTINGS), clock=clock, metrics=ProbeMetrics(registry), tick=1.0
    )
    return monitor, clock, registry


def result(t: Target, clock: ManualClock, ok: bool, vantage: str = "dc1") -> Observation:
    return Observation(
        t.id, vantage, ok, 0.01, clock.monotonic(), clock.time(), "http 200" if ok else "timeout"
    )


async def test_only_state_changes_are_logged() -> None:
    monitor, clock, registry = make_monitor()
    a = target("a")
    monitor.update([a])
    labels = {"target": a.id, "service": "foo", "region": "dc1"}
    assert registry.get_sample_value("gtm_vip_state", labels) == -1.0
    with capture_logs() as logs:
        for _ in range(50):
            await clock.advance(5.0)
            monitor.observe(result(a, clock, True))
        for _ in range(50):
            await clock.advance(5.0)
            monitor.observe(result(a, clock, False))
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("vip.up", "info"),
        ("region.up", "info"),
        ("vip.down", "warning"),
        ("region.down", "warning"),
    ]
    down = logs[2]
    assert down["target"] == a.id and down["reason"] == "timeout (1/1 vantages)"
    assert registry.get_sample_value("gtm_vip_state", labels) == 0.0
    assert registry.get_sample_value("gtm_region_state", {"service": "foo", "region": "dc1"}) == 0
    assert monitor.view().vips[a.id].state == DOWN
    monitor.update([])
    assert registry.get_sample_value("gtm_vip_state", labels) is None


async def test_peer_observations_and_impaired_flag() -> None:
    monitor, clock, registry = make_monitor()
    a, b = target("a"), target("b")
    monitor.update([a, b])
    with capture_logs() as logs:
        for _ in range(2):
            await clock.advance(5.0)
            for t in (a, b):
                monitor.observe(result(t, clock, True, "dc1"))
                monitor.observe(result(t, clock, False, "dc2"))
    assert "vantage.impaired" in [e["event"] for e in logs]
    assert registry.get_sample_value("gtm_vantage_impaired", {"vantage": "dc2"}) == 1.0
    assert monitor.view().impaired == frozenset({"dc2"})
    assert {v.state for v in monitor.view().vips.values()} == {UP}


async def test_on_change_is_told_of_every_change_of_health_and_nothing_else() -> None:
    changes: list[object] = []
    clock = ManualClock()
    monitor = HealthMonitor(
        HealthTracker(SETTINGS), clock=clock, on_change=lambda: changes.append(monitor.view())
    )
    a = target("a")
    monitor.update([a])
    assert len(changes) == 1  # a new target: unknown, no data
    await clock.advance(5.0)
    monitor.observe(result(a, clock, True))
    assert len(changes) == 2 and monitor.view().vips[a.id].state == UP
    for _ in range(3):  # up already: nothing changes, nothing is told
        await clock.advance(5.0)
        monitor.observe(result(a, clock, True))
    assert len(changes) == 2
    await clock.advance(5.0)
    monitor.observe(result(a, clock, False))  # one failure of fall=2: still up, same reason
    assert len(changes) == 2
    await clock.advance(5.0)
    monitor.observe(result(a, clock, False))
    assert len(changes) == 3 and monitor.view().vips[a.id].state == DOWN
    monitor.observe(result(a, clock, False, "dc2"))  # a second vantage: pending (fall=2)
    assert len(changes) == 3
    await clock.advance(5.0)
    monitor.observe(result(a, clock, False, "dc2"))  # it agrees: down still, a new reason
    assert len(changes) == 4 and monitor.view().vips[a.id].reason == "timeout (2/2 vantages)"
    await clock.advance(60.0)
    monitor.advance()  # both vantages' results went stale
    assert len(changes) == 5 and monitor.view().vips[a.id].state != DOWN


async def test_run_moves_time_on() -> None:
    monitor, clock, _ = make_monitor()
    a = target("a", interval=1.0)  # stale after 3 * 1 + 1 s
    monitor.update([a])
    monitor.observe(result(a, clock, True))
    task = asyncio.get_running_loop().create_task(monitor.run())
    with capture_logs() as logs:
        await clock.advance(10.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [e["event"] for e in logs] == ["vip.unknown", "region.unknown"]
    assert clock.pending == 0


async def test_end_to_end_against_a_real_server(http_server: HttpServer) -> None:
    registry = CollectorRegistry()
    metrics = ProbeMetrics(registry)
    monitor = HealthMonitor(HealthTracker(SETTINGS), metrics=metrics, tick=0.05)
    vip = target("switch", port=http_server.port, path="/switch", interval=0.05)
    seen = asyncio.Event()

    def observe(obs: Observation) -> None:
        monitor.observe(obs)
        seen.set()

    async def wait_for_state(state: str) -> None:
        async with asyncio.timeout(5.0):
            while monitor.view().vips[vip.id].state != state:
                seen.clear()
                await seen.wait()

    before = asyncio.all_tasks()
    with capture_logs() as logs, warnings.catch_warnings():
        warnings.simplefilter("error")
        async with NetworkProber() as prober:
            scheduler = Scheduler(prober, vantage="dc1", on_observation=observe, metrics=metrics)
            monitor.update([vip])
            scheduler.update([vip])
            runner = asyncio.gather(scheduler.run(), monitor.run())
            try:
                await wait_for_state(UP)
                http_server.state.switch_status = 503
                await wait_for_state(DOWN)
                http_server.state.switch_status = 200
                await wait_for_state(UP)
            finally:
                runner.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await runner
    assert asyncio.all_tasks() == before
    events = [e["event"] for e in logs if e["event"].startswith("vip.")]
    assert events == ["vip.up", "vip.down", "vip.up"]
    assert (
        registry.get_sample_value("gtm_probe_results_total", {"kind": "http", "result": "http"})
        or 0
    ) >= 2
