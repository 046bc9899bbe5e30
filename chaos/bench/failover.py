"""`gtm bench failover`: a region exit of a generated estate against simulated clusters.

Each simulated cluster is its own process (`python -m chaos.kubesim`), with
latency on every request and a server-side request-rate limit, so this
process is the client alone and its CPU time is the reconcilers'. The estate
has `--services` services with one VIP in each of three regions; the
clusters of the regions that stay (dc1, dc2) hold a WorkloadEntry for every
VIP (the local one at 98, the remote ones at 1). The run lists and watches
both clusters, checks that they already hold the baseline table, then exits
`--exit` and measures until every WLE holds the new table, as observed by
the watch: the remote WLEs of the exiting region flip to Healthy=False, and
the local ones go from 98 to 99 (the row's split stays exact).

Reported: time to converge, patches/s, the share of the allowed request rate
used (server-side counts: the client must not waste requests), and the
client's CPU per patch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import click
import structlog
from prometheus_client import CollectorRegistry

from chaos.kubesim import KubeSim
from chaos.kubesim.snapshot import save
from failover import ClusterSettings, Reconciler
from kube import Configuration
from policies import Estate, Health, Kind, Override, Policy, Service, Vip, evaluate

REGIONS = ("dc1", "dc2", "dc3")
LOCALITIES = {r: f"region0{i}/az01" for i, r in enumerate(REGIONS, start=1)}
NAMESPACE = "mesh"
T0 = 1_700_000_000.0


def make_estate(services: int) -> Estate:
    policy = Policy.uniform("default", REGIONS)
    out = []
    for i in range(services):
        name = f"svc{i:05d}"
        vips = {}
        for r, region in enumerate(REGIONS, start=1):
            address = f"10.{r}.{i // 250}.{i % 250 + 1}"
            vips[region] = (
                Vip(Vip.make_id(name, region, address, 443), name, region, address, 443),
            )
        out.append(Service(name, f"{name}.example.com", policy, vips))
    return Estate(REGIONS, tuple(out))


def workload_entry(vip: Vip, weight: int) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "WorkloadEntry",
        "metadata": {
            "name": f"{vip.service}-{vip.region}",
            "namespace": NAMESPACE,
            "labels": {"gtm.io/managed": "true", "gtm.io/service": vip.service},
            "annotations": {"proxy.istio.io/health-checks-enabled": "true"},
        },
        "spec": {
            "address": vip.address,
            "locality": LOCALITIES[vip.region],
            "ports": {"https": vip.port},
            "weight": weight,
        },
        "status": {
            "conditions": [
                {
                    "type": "Healthy",
                    "status": "True",
                    "lastProbeTime": "2026-01-01T00:00:00Z",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ]
        },
    }


def write_state(path: Path, estate: Estate, region: str, local: bool) -> int:
    """A kubesim state file holding the cluster's WLEs (no server started)."""
    sim = KubeSim()
    count = 0
    for s in estate.services:
        for target, vips in s.vips.items():
            if target == region and not local:
                continue
            for v in vips:
                sim.seed(workload_entry(v, 98 if target == region else 1))
                count += 1
    save(sim.store, path)
    return count


@dataclass
class SimProcess:
    region: str
    url: str
    process: asyncio.subprocess.Process


@contextlib.asynccontextmanager
async def simulated_cluster(region: str, state: Path, log: Path) -> AsyncIterator[SimProcess]:
    with log.open("w") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chaos.kubesim",
            "--listen",
            "127.0.0.1:0",
            "--state",
            str(state),
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            url = (await proc.stdout.readline()).decode().strip()
        if not url.startswith("http"):
            raise click.ClickException(f"the simulated cluster {region} did not start: see {log}")
        yield SimProcess(region, url, proc)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def control(
    http: aiohttp.ClientSession, sim: SimProcess, method: str, path: str, **kw: Any
) -> Any:
    async with http.request(method, f"{sim.url}/_sim/{path}", **kw) as resp:
        resp.raise_for_status()
        return await resp.json()


async def limit(
    http: aiohttp.ClientSession,
    sims: list[SimProcess],
    latency: float,
    rate_limit: float,
    burst: int,
) -> None:
    """Every simulated cluster adds `latency` to each request and serves `rate_limit`
    requests/s (a bucket of `burst`), answering 429 beyond."""
    faults = {"latency": latency, "rate_limit": rate_limit, "burst": burst}
    for sim in sims:
        await control(http, sim, "POST", "faults", json=faults)


@dataclass(frozen=True)
class Figures:
    services: int
    clusters: int
    wles: int
    patches: int
    status_patches: int
    requests: int
    by_code: dict[str, int]
    seconds: float
    out_seconds: float
    cpu_seconds: float
    rate_limit: float
    server_burst: int

    def report(self) -> dict[str, Any]:
        # what the servers' limit allowed in the window: its rate, plus the bucket it starts with
        allowed = self.clusters * (self.rate_limit * self.seconds + self.server_burst)
        accepted = sum(n for code, n in self.by_code.items() if code.startswith("2"))
        return {
            "services": self.services,
            "clusters": self.clusters,
            "workload_entries": self.wles,
            "patches": self.patches,
            "status_patches": self.status_patches,
            "requests_at_servers": self.requests,
            "responses_by_code": self.by_code,
            "time_to_last_status_patch_s": round(self.out_seconds, 2),
            "time_to_converge_s": round(self.seconds, 2),
            "patches_per_s": round(self.patches / self.seconds, 1),
            "server_limit_per_cluster": f"{self.rate_limit:g}/s, burst {self.server_burst}",
            "requests_allowed_in_window": round(allowed),
            "share_of_allowed_used_by_patches": round(self.patches / allowed, 3),
            "share_of_allowed_accepted": round(accepted / allowed, 3),
            "client_cpu_s": round(self.cpu_seconds, 2),
            "client_cpu_ms_per_patch": round(1000 * self.cpu_seconds / max(1, self.patches), 3),
        }


@dataclass(frozen=True)
class Spec:
    services: int = 4000
    exit_region: str = "dc3"
    latency: float = 0.005  # seconds added to every request by the servers
    rate_limit: float = 100.0  # the servers' requests/s, per cluster ...
    server_burst: int = 100  # ... and their bucket
    qps: float = 100.0  # the client's requests/s, per cluster ...
    burst: int = 100  # ... and its bucket
    concurrency: int = 8
    local: bool = True  # also the local WLEs (98 -> 99 on an exit)
    deadline: float = 900.0


async def run(spec: Spec) -> Figures:
    services, exit_region, deadline = spec.services, spec.exit_region, spec.deadline
    estate = make_estate(services)
    clusters = [r for r in REGIONS if r != exit_region][:2]
    baseline = evaluate(estate, Health(), [], None, T0).table
    leave = Override("bench", Kind.EXIT, exit_region, "bench", "benchmark", T0)
    exited = evaluate(estate, Health(), [leave], baseline, T0 + 1).table
    registry = CollectorRegistry()
    with tempfile.TemporaryDirectory(prefix="gtm-bench-failover-") as tmp:
        wles = 0
        for region in clusters:
            wles += write_state(Path(tmp, f"{region}.json"), estate, region, spec.local)
        async with contextlib.AsyncExitStack() as stack:
            sims = [
                await stack.enter_async_context(
                    simulated_cluster(r, Path(tmp, f"{r}.json"), Path(tmp, f"{r}.log"))
                )
                for r in clusters
            ]
            http = await stack.enter_async_context(aiohttp.ClientSession())
            await limit(http, sims, spec.latency, spec.rate_limit, spec.server_burst)
            reconcilers = []
            for sim in sims:
                settings = ClusterSettings(
                    name=sim.region,
                    region=sim.region,
                    namespace=NAMESPACE,
                    qps=spec.qps,
                    burst=spec.burst,
                    concurrency=spec.concurrency,
                    timeout=10.0,
                    max_unhealthy_share=0.5,
                )
                r = Reconciler(
                    settings, Configuration(host=sim.url), estate, LOCALITIES, registry=registry
                )
                await stack.enter_async_context(r)
                await stack.enter_async_context(r.running())
                r.set_table(baseline, epoch=1, may_write=_leader)
                reconcilers.append(r)
            async with asyncio.timeout(deadline):
                for r in reconcilers:
                    await r.until_converged(baseline.generation)
            if _patches(registry):
                raise click.ClickException("the seeded clusters did not hold the baseline table")
            before = [await control(http, s, "GET", "stats") for s in sims]

            cpu0, t0 = time.process_time(), time.perf_counter()
            out_at: float | None = None
            expected_status = services * len(clusters)
            for r in reconcilers:
                r.set_table(exited, epoch=1, may_write=_leader)
            async with asyncio.timeout(deadline):
                waiting = [
                    asyncio.ensure_future(r.until_converged(exited.generation)) for r in reconcilers
                ]
                try:
                    while not all(w.done() for w in waiting):
                        if out_at is None and _patches(registry, "status") >= expected_status:
                            out_at = time.perf_counter() - t0
                        await asyncio.wait(waiting, timeout=0.05)
                finally:
                    for w in waiting:
                        w.cancel()
                    await asyncio.gather(*waiting, return_exceptions=True)
            seconds = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            after = [await control(http, s, "GET", "stats") for s in sims]
    by_code: dict[str, int] = {}
    for b, a in zip(before, after, strict=True):
        for code, n in a["by_code"].items():
            by_code[code] = by_code.get(code, 0) + n - b["by_code"].get(code, 0)
    return Figures(
        services=services,
        clusters=len(clusters),
        wles=wles,
        patches=int(_patches(registry)),
        status_patches=int(_patches(registry, "status")),
        requests=sum(a["total"] - b["total"] for b, a in zip(before, after, strict=True)),
        by_code={c: n for c, n in sorted(by_code.items()) if n},
        seconds=seconds,
        out_seconds=out_at if out_at is not None else seconds,
        cpu_seconds=cpu,
        rate_limit=spec.rate_limit,
        server_burst=spec.server_burst,
    )


def _leader() -> bool:
    return True  # the benchmark is the only writer


def _patches(registry: CollectorRegistry, subresource: str | None = None) -> float:
    total = 0.0
    for metric in registry.collect():
        if metric.name != "gtm_wle_patches":
            continue
        for sample in metric.samples:
            labels = sample.labels
            if (
                sample.name.endswith("_total")
                and labels.get("result") == "ok"
                and subresource in (None, labels.get("subresource"))
            ):
                total += sample.value
    return total


@click.command()
@click.option("--services", default=Spec.services, show_default=True, help="services in the estate")
@click.option(
    "--exit", "exit_region", default=Spec.exit_region, show_default=True, type=click.Choice(REGIONS)
)
@click.option("--latency", default=Spec.latency, show_default=True, help="seconds per request")
@click.option("--rate-limit", default=Spec.rate_limit, show_default=True, help="server requests/s")
@click.option("--server-burst", default=Spec.server_burst, show_default=True)
@click.option("--qps", default=Spec.qps, show_default=True, help="client requests/s per cluster")
@click.option("--burst", default=Spec.burst, show_default=True, help="client bucket size")
@click.option("--concurrency", default=Spec.concurrency, show_default=True)
@click.option("--local/--no-local", default=Spec.local, show_default=True, help="local WLEs too")
@click.option("--deadline", default=Spec.deadline, show_default=True, help="seconds")
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
@click.option("--uvloop/--no-uvloop", "use_uvloop", default=False, show_default=True)
@click.option("-v", "--verbose", is_flag=True, help="show the reconcilers' events")
def command(as_json: bool, use_uvloop: bool, verbose: bool, **spec: Any) -> None:
    """Region exit of a generated estate against simulated clusters (one process each).

    Quick run: `gtm bench failover --services 300`.
    """
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.INFO if verbose else logging.WARNING
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    main = run(Spec(**spec))
    if use_uvloop:
        import uvloop  # the `fast` extra

        figures = uvloop.run(main)
    else:
        figures = asyncio.run(main)
    report = figures.report()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    width = max(len(k) for k in report)
    for key, value in report.items():
        click.echo(f"{key.replace('_', ' '):<{width}}  {value}")
    share = report["share_of_allowed_used_by_patches"]
    met = "met" if share >= 0.9 else "NOT met"
    click.echo(f"goal: >= 90% of the allowed requests used by patches: {met}")
