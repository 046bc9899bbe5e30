"""`gtm bench probes`: gtm's prober beside Prometheus blackbox_exporter on the same targets.

N targets are paths on local HTTP servers (a separate process, several ports).
Phase 1 runs gtm's whole probe pipeline (Scheduler, NetworkProber, HealthMonitor)
in a process of its own; phase 2 runs blackbox_exporter, driven at the same
rate and spread by a separate process that plays Prometheus (one /probe request
per target per interval). Each prober's CPU is measured on its own process over
the same measured window, so the servers and the driver do not count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import click
import psutil
import structlog
from prometheus_client import CollectorRegistry

from probes import (
    HealthMonitor,
    HealthSettings,
    HealthTracker,
    HttpProbe,
    NetworkProber,
    Observation,
    ProbeMetrics,
    ProbeResult,
    Scheduler,
    Target,
)

_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\nok"
)
_T = TypeVar("_T")
_DURATION = re.compile(rb"^probe_duration_seconds ([0-9.e+-]+)$", re.MULTILINE)


@dataclass(frozen=True)
class _Config:
    targets: int
    interval: float
    timeout: float
    duration: float
    warmup: float
    concurrency: int
    uvloop: bool
    ports: tuple[int, ...]

    def target_list(self) -> list[Target]:
        """Target i is path /t/i on one of the server ports, as its own service."""
        targets = []
        for i in range(self.targets):
            port = self.ports[i % len(self.ports)]
            spec = HttpProbe(
                path=f"/t/{i}", interval=self.interval, timeout=self.timeout, expect_status=(200,)
            )
            targets.append(
                Target(
                    f"bench{i}/dc1/127.0.0.1:{port}", "127.0.0.1", port, spec, f"bench{i}", "dc1"
                )
            )
        return targets


@dataclass(frozen=True)
class _Figures:
    name: str
    probes: int
    failed: int
    probes_per_s: float
    cpu_ms_per_probe: float
    cores: float
    latency_p50_ms: float
    latency_p99_ms: float
    lag_p50_ms: float
    lag_p99_ms: float
    rss_mb: float
    note: str


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _run(main: Coroutine[object, object, _T], use_uvloop: bool) -> _T:
    if use_uvloop:
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


class _Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            self.transport.write(_RESPONSE)  # type: ignore[attr-defined]
            self.transport.close()


def _serve(conn: Connection, count: int, use_uvloop: bool) -> None:
    """Child: HTTP servers on `count` loopback ports; sends the ports, serves until killed."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = [
            await loop.create_server(_Answer, "127.0.0.1", 0, backlog=4096) for _ in range(count)
        ]
        conn.send([server.sockets[0].getsockname()[1] for server in servers])
        await asyncio.Event().wait()

    _run(main(), use_uvloop)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _figures(
    name: str,
    observations: list[Observation],
    latencies: list[float],
    cpu: float,
    seconds: float,
    rss_mb: float,
    note: str,
) -> _Figures:
    count = len(observations)
    return _Figures(
        name=name,
        probes=count,
        failed=sum(1 for o in observations if not o.ok),
        probes_per_s=count / seconds,
        cpu_ms_per_probe=cpu * 1000.0 / count if count else float("nan"),
        cores=cpu / seconds,
        latency_p50_ms=_quantile(latencies, 0.5) * 1000.0,
        latency_p99_ms=_quantile(latencies, 0.99) * 1000.0,
        lag_p50_ms=_quantile([o.lag for o in observations], 0.5) * 1000.0,
        lag_p99_ms=_quantile([o.lag for o in observations], 0.99) * 1000.0,
        rss_mb=rss_mb,
        note=note,
    )


async def _measure(
    scheduler: Scheduler, config: _Config, window: list[Observation], recording: list[bool]
) -> tuple[float, float]:
    """Runs the scheduler through warm-up and the measured window; returns (cpu, seconds)."""
    async with asyncio.TaskGroup() as group:
        task = group.create_task(scheduler.run())
        await asyncio.sleep(config.warmup)
        window.clear()
        recording[0] = True
        cpu, start = _cpu_seconds(), time.monotonic()
        await asyncio.sleep(config.duration)
        recording[0] = False
        cpu, seconds = _cpu_seconds() - cpu, time.monotonic() - start
        task.cancel()
    return cpu, seconds


def _gtm(conn: Connection, config: _Config) -> None:
    """Child: gtm's probe pipeline on all targets; sends its figures."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))

    async def main() -> _Figures:
        targets = config.target_list()
        window: list[Observation] = []
        recording = [False]
        metrics = ProbeMetrics(CollectorRegistry())
        monitor = HealthMonitor(HealthTracker(HealthSettings()), metrics=metrics)

        def observe(obs: Observation) -> None:
            monitor.observe(obs)
            if recording[0]:
                window.append(obs)

        async with NetworkProber() as prober:
            scheduler = Scheduler(
                prober,
                vantage="bench",
                on_observation=observe,
                concurrency=config.concurrency,
                metrics=metrics,
            )
            monitor.update(targets)
            scheduler.update(targets)
            ticker = asyncio.get_running_loop().create_task(monitor.run())
            cpu, seconds = await _measure(scheduler, config, window, recording)
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        stats = scheduler.stats()
        up = sum(1 for vip in monitor.view().vips.values() if vip.state == "up")
        reasons = Counter(o.reason for o in window if not o.ok).most_common(3)
        note = f"lagging={stats.lagging} skipped={stats.skipped} vips_up={up} failures={reasons}"
        rss = psutil.Process().memory_info().rss / 2**20
        return _figures("gtm", window, [o.latency for o in window], cpu, seconds, rss, note)

    conn.send(asdict(_run(main(), config.uvloop)))


class _BlackboxProber:
    """Plays Prometheus: one /probe request to blackbox_exporter per probe of a target."""

    def __init__(self, session: aiohttp.ClientSession, base: str, durations: dict[str, float]):
        self._session = session
        self._base = base
        self._durations = durations

    async def probe(self, target: Target) -> ProbeResult:
        url = f"http://{target.address}:{target.port}{target.spec.path}"  # type: ignore[union-attr]
        async with self._session.get(self._base, params={"module": "http_2xx", "target": url}) as r:
            body = await r.read()
        match = _DURATION.search(body)
        if match:
            self._durations[target.id] = float(match.group(1))
        ok = b"\nprobe_success 1" in body
        return ProbeResult(ok, "ok" if ok else "blackbox: probe_success 0")

    def forget(self, target_id: str) -> None:
        pass


def _drive(conn: Connection, config: _Config, base: str, pid: int) -> None:
    """Child: drives blackbox_exporter at gtm's schedule; measures blackbox's CPU."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    exporter = psutil.Process(pid)

    async def main() -> _Figures:
        targets = config.target_list()
        window: list[Observation] = []
        latencies: list[float] = []
        recording = [False]
        durations: dict[str, float] = {}

        def observe(obs: Observation) -> None:
            if recording[0]:
                window.append(obs)
                latencies.append(durations.get(obs.target_id, float("nan")))

        timeout = aiohttp.ClientTimeout(total=config.timeout + 2.0)
        connector = aiohttp.TCPConnector(limit=config.concurrency)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            prober = _BlackboxProber(session, base, durations)
            scheduler = Scheduler(
                prober, vantage="driver", on_observation=observe, concurrency=config.concurrency
            )
            scheduler.update(targets)
            before = exporter.cpu_times()
            cpu_driver, seconds = await _measure(scheduler, config, window, recording)
            after = exporter.cpu_times()
        cpu = (after.user - before.user) + (after.system - before.system)
        stats = scheduler.stats()
        note = (
            f"driver cpu {cpu_driver / seconds:.2f} cores, lagging={stats.lagging} "
            f"skipped={stats.skipped} (lag is the driver's, as Prometheus' would be)"
        )
        rss = exporter.memory_info().rss / 2**20
        return _figures("blackbox_exporter", window, latencies, cpu, seconds, rss, note)

    conn.send(asdict(_run(main(), config.uvloop)))


def _child(target: object, *args: object) -> _Figures:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=target, args=(child, *args), daemon=True)  # type: ignore[arg-type]
    process.start()
    child.close()  # the child's end is the child's: if it dies, recv() ends instead of waiting
    try:
        return _Figures(**_receive(parent, process))
    finally:
        process.join(timeout=10)


def _receive(conn: Connection, process: BaseProcess) -> Any:
    """What the child process sends, or a clear error when it died without sending."""
    try:
        return conn.recv()
    except EOFError:
        process.join(timeout=10)
        raise click.ClickException(
            f"the bench's {process.name} process ended (exit code {process.exitcode}) "
            "without sending its figures; its traceback is above"
        ) from None


def _blackbox(binary: str, config: _Config, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config_file = directory / "blackbox.yml"
    config_file.write_text(
        "modules:\n  http_2xx:\n    prober: http\n"
        f"    timeout: {config.timeout}s\n"
        "    http:\n      method: GET\n      valid_status_codes: [200]\n"
        "      preferred_ip_protocol: ip4\n      ip_protocol_fallback: false\n"
    )
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config_file}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise click.ClickException(f"blackbox_exporter did not start ({binary})") from None
            time.sleep(0.1)
    return process, f"http://127.0.0.1:{port}/probe"


def _report(config: _Config, results: list[_Figures], as_json: bool) -> None:
    rate = config.targets / config.interval
    if as_json:
        click.echo(
            json.dumps(
                {
                    "config": asdict(config) | {"ports": len(config.ports)},
                    "results": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
        return
    click.echo(
        f"gtm bench probes: {config.targets} HTTP targets on {len(config.ports)} ports, "
        f"interval {config.interval:g}s ({rate:.0f} probes/s wanted), warm-up {config.warmup:g}s, "
        f"measured {config.duration:g}s each, {'uvloop' if config.uvloop else 'asyncio'}, "
        f"{os.cpu_count()} CPUs"
    )
    rows = [
        ("probes/s", "probes_per_s", "{:.1f}"),
        ("failed probes", "failed", "{:d}"),
        ("CPU ms per probe", "cpu_ms_per_probe", "{:.3f}"),
        ("CPU cores used", "cores", "{:.3f}"),
        ("latency p50 ms", "latency_p50_ms", "{:.2f}"),
        ("latency p99 ms", "latency_p99_ms", "{:.2f}"),
        ("scheduler lag p50 ms", "lag_p50_ms", "{:.2f}"),
        ("scheduler lag p99 ms", "lag_p99_ms", "{:.2f}"),
        ("RSS MB", "rss_mb", "{:.0f}"),
    ]
    header = f"{'':24}" + "".join(f"{r.name:>20}" for r in results)
    click.echo(header + ("         ratio gtm/bb" if len(results) == 2 else ""))
    for label, key, fmt in rows:
        values = [getattr(r, key) for r in results]
        line = f"{label:24}" + "".join(f"{fmt.format(v):>20}" for v in values)
        if len(results) == 2 and key in ("cpu_ms_per_probe", "latency_p50_ms", "latency_p99_ms"):
            line += f"{values[0] / values[1]:>21.2f}" if values[1] else ""
        click.echo(line)
    for r in results:
        click.echo(f"{r.name}: {r.note}")
    gtm = results[0]
    click.echo(
        f"gtm: {gtm.cores:.2f} cores at {gtm.probes_per_s:.0f} probes/s; this CPU per probe at "
        f"2000 probes/s (10,000 targets / 5 s) is {gtm.cpu_ms_per_probe * 2:.2f} cores, goal <= 0.5 "
        "(fixed costs weigh more at low rates: measure with --targets 10000 --interval 5)"
    )
    if gtm.probes_per_s < 0.98 * rate:
        click.echo("gtm did not keep up with the schedule: see its lag (is the machine busy?)")
    if len(results) == 2:
        verdict = "yes" if gtm.cpu_ms_per_probe <= results[1].cpu_ms_per_probe else "NO"
        click.echo(f"gtm CPU per probe <= blackbox_exporter's: {verdict}")


@click.command()
@click.option("--targets", default=2000, show_default=True, help="Number of HTTP targets.")
@click.option(
    "--interval", default=5.0, show_default=True, help="Seconds between probes of a target."
)
@click.option("--timeout", default=2.0, show_default=True, help="Probe timeout, seconds.")
@click.option("--duration", default=20.0, show_default=True, help="Measured seconds per prober.")
@click.option("--warmup", default=5.0, show_default=True, help="Seconds before measuring.")
@click.option("--ports", default=0, help="Server ports [default: one per 50 targets, 8-256].")
@click.option("--concurrency", default=1024, show_default=True, help="Probes in flight at most.")
@click.option("--uvloop/--no-uvloop", default=True, show_default=True, help="Event loop.")
@click.option("--blackbox/--no-blackbox", default=True, show_default=True, help="Run the peer.")
@click.option(
    "--blackbox-bin",
    default=lambda: shutil.which("prometheus-blackbox-exporter") or "blackbox_exporter",
    help="blackbox_exporter binary.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def command(
    targets: int,
    interval: float,
    timeout: float,
    duration: float,
    warmup: float,
    ports: int,
    concurrency: int,
    uvloop: bool,
    blackbox: bool,
    blackbox_bin: str,
    as_json: bool,
) -> None:
    """gtm's HTTP prober vs blackbox_exporter: probes/s, CPU per probe, latency, lag."""
    if targets < 1 or interval <= 0 or duration <= 0 or warmup < 0:
        raise click.BadParameter("targets, interval and duration must be positive")
    if uvloop:
        try:
            import uvloop as _  # noqa: F401
        except ImportError:
            uvloop = False
    count = ports or max(8, min(256, targets // 50))
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=_serve, args=(child, count, uvloop), daemon=True)
    server.start()
    child.close()
    try:
        config = _Config(
            targets,
            interval,
            min(timeout, interval),
            duration,
            warmup,
            concurrency,
            uvloop,
            tuple(_receive(parent, server)),
        )
        results = [_child(_gtm, config)]
        if blackbox:
            with tempfile.TemporaryDirectory() as directory:
                exporter, base = _blackbox(blackbox_bin, config, Path(directory))
                try:
                    results.append(_child(_drive, config, base, exporter.pid))
                finally:
                    exporter.terminate()
                    exporter.wait(timeout=10)
    finally:
        server.terminate()
        server.join(timeout=10)
    _report(config, results, as_json)
