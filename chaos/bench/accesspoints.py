"""`gtm bench accesspoints`: two-tier AccessPoints from nothing to every object present.

Three simulated clusters, each its own process (`python -m chaos.kubesim`) with
latency on every request and a server-side request-rate limit (the peer whose
allowance the run is measured against). `--accesspoints` APs are created in the
home cluster (dc1), half of them applications (a LoadBalancer Service, a gtm
service) and half their gateways (a Service, a VirtualService routed to
`upstream:<its application>`; one WorkloadEntry per application VIP and one
ServiceEntry). Each region's AccessPoint controller (`gtm.service.accesspoints`)
runs in a process of its own, as each region's leader does
(`chaos.bench.accesspoint_pass`), passing again as soon as a pass ends (as a leader
woken by its watches does while things change); the three share each server's
limit (each client at a third of it). An L4 controller per cluster
(`chaos.estate.l4`, in this process) gives each Service its VIP.

Reported: the time until every region's pass changes nothing and every AP is
applied in every cluster, the requests each server took and the share of its
allowance they used (the requests it served, not those it answered 429; the home
cluster takes every region's status writes: it is the one that bounds the run),
the controllers' CPU, the peak RSS of the largest controller process (what a
member's controller costs in memory), and the time and CPU of the last pass of
each (one that changed nothing: what each resync costs once nothing changes).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import click
import structlog
import yaml

from chaos.bench.failover import SimProcess, control, limit, simulated_cluster
from chaos.estate.clusters import write_kubeconfig
from chaos.estate.l4 import L4Controller
from chaos.kubesim import KubeSim
from chaos.kubesim.snapshot import save
from gtm.config import load
from kube import Client, load_configuration

REGIONS = ("dc1", "dc2", "dc3")
NAMESPACE = "bench"


@dataclass(frozen=True)
class Spec:
    accesspoints: int = 4000
    latency: float = 0.002  # seconds added to every request by the servers
    rate_limit: float = 200.0  # the servers' requests/s, per cluster ...
    server_burst: int = 200  # ... and their bucket
    concurrency: int = 32  # APs a controller works on at once
    deadline: float = 1800.0


def accesspoint(name: str, upstream: str | None) -> dict[str, Any]:
    template: dict[str, Any] = {
        "service": {
            "spec": {
                "type": "LoadBalancer",
                "loadBalancerClass": "gtm.io/ipvs",
                "ports": [{"name": "tls", "port": 8443, "protocol": "TCP"}],
            }
        }
    }
    spec: dict[str, Any] = {"scope": {"clusters": list(REGIONS)}, "trafficTemplate": template}
    if upstream is None:
        spec["gtm"] = {"fqdn": f"{name}.example.com"}
    else:
        template["virtualService"] = {
            "spec": {
                "hosts": [f"{name}.example.com"],
                "http": [{"route": [{"destination": {"host": f"upstream:{upstream}"}}]}],
            }
        }
        spec["upstreams"] = [
            {"accessPoint": upstream, "port": {"number": 8443, "name": "tls", "protocol": "TLS"}}
        ]
    return {
        "apiVersion": "gtm.io/v1alpha1",
        "kind": "AccessPoint",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def estate(kubeconfig: Path, qps: float, concurrency: int) -> dict[str, Any]:
    return {
        "regions": [
            {"name": r, "locality": f"region0{i}/az01", "client_cidrs": [f"10.{i}.0.0/16"]}
            for i, r in enumerate(REGIONS, start=1)
        ],
        "services": [
            {
                "name": "anchor",
                "fqdn": "anchor.example.com",
                "vips": {r: [{"address": f"127.9.{i}.1"}] for i, r in enumerate(REGIONS, 1)},
            }
        ],
        "kubernetes": {
            "clusters": [
                {
                    "name": r,
                    "region": r,
                    "kubeconfig": str(kubeconfig),
                    "context": r,
                    "namespace": NAMESPACE,
                    "qps": qps,
                    "burst": int(qps),
                    "concurrency": 16,
                    "timeout": 30,
                }
                for r in REGIONS
            ]
        },
        "accesspoints": {"cluster": "dc1", "namespaces": [NAMESPACE], "concurrency": concurrency},
    }


def pool(index: int, size: int) -> list[str]:
    """A pool of `size` loopback VIPs for region `index` (none of them listens)."""
    network = ipaddress.IPv4Network(f"127.{20 + index}.0.0/16")
    return [str(a) for a, _ in zip(network.hosts(), range(size), strict=False)]


@dataclass
class Figures:
    accesspoints: int
    objects: int  # in every cluster, once every AP is applied
    passes: int
    seconds: float
    cpu_seconds: float
    rss_mb: float
    requests: dict[str, int]  # per cluster, at the server
    throttled: dict[str, int]  # per cluster: answered 429
    steady_seconds: float
    steady_cpu_seconds: float
    rate_limit: float
    server_burst: int

    def report(self) -> dict[str, Any]:
        # what a server's limit allowed in the window: its rate, plus the bucket it starts with;
        # the share is of the requests it took (a 429 is not served)
        allowed = self.rate_limit * self.seconds + self.server_burst
        share = {
            c: round((n - self.throttled.get(c, 0)) / allowed, 3) for c, n in self.requests.items()
        }
        return {
            "accesspoints": self.accesspoints,
            "clusters": len(REGIONS),
            "objects_in_clusters": self.objects,
            "passes": self.passes,
            "time_to_all_present_s": round(self.seconds, 1),
            "server_limit_per_cluster": f"{self.rate_limit:g}/s, burst {self.server_burst}",
            "requests_at_servers": self.requests,
            "answered_429": self.throttled,
            "share_of_allowed_served": share,
            "share_of_allowed_served_home": share["dc1"],
            "controllers_cpu_s": round(self.cpu_seconds, 1),
            "controller_peak_rss_mb": round(self.rss_mb, 1),
            "steady_pass_s": round(self.steady_seconds, 2),
            "steady_pass_cpu_s": round(self.steady_cpu_seconds, 2),
        }


async def _requests(http: aiohttp.ClientSession, sims: list[SimProcess]) -> dict[str, Any]:
    return {s.region: await control(http, s, "GET", "stats") for s in sims}


async def run(spec: Spec) -> Figures:
    half = spec.accesspoints // 2
    with tempfile.TemporaryDirectory(prefix="gtm-bench-accesspoints-") as tmp:
        for r in REGIONS:
            save(KubeSim().store, Path(tmp, f"{r}.json"))
        async with contextlib.AsyncExitStack() as stack:
            sims = [
                await stack.enter_async_context(
                    simulated_cluster(r, Path(tmp, f"{r}.json"), Path(tmp, f"{r}.log"))
                )
                for r in REGIONS
            ]
            kubeconfig = write_kubeconfig(
                Path(tmp, "kubeconfig"), {s.region: s.url for s in sims}, NAMESPACE
            )
            config = Path(tmp, "estate.yaml")
            # three controllers share each server: each client at a third of its limit
            text = yaml.safe_dump(
                estate(kubeconfig, spec.rate_limit / len(REGIONS), spec.concurrency)
            )
            await asyncio.to_thread(config.write_text, text)
            inventory = load(config)
            home = await stack.enter_async_context(  # creates the APs, unlimited
                Client(
                    await load_configuration(inventory.config.kubernetes.clusters[0]),
                    timeout=30.0,
                )
            )
            create = home.custom_objects.create_namespaced_custom_object
            for i in range(half):  # the APs, before the servers are limited
                for doc in (
                    accesspoint(f"app{i:05d}", None),
                    accesspoint(f"gw{i:05d}", f"app{i:05d}"),
                ):
                    await home.request(
                        "create",
                        partial(create, "gtm.io", "v1alpha1", NAMESPACE, "accesspoints", doc),
                        what=doc["metadata"]["name"],
                    )
            for i, s in enumerate(sims):
                client = await stack.enter_async_context(
                    Client(
                        await load_configuration(inventory.config.kubernetes.clusters[i]),
                        timeout=30.0,
                        qps=spec.rate_limit,
                        burst=int(spec.rate_limit),
                    )
                )
                l4 = L4Controller(client, region=s.region, pool=pool(i, spec.accesspoints))
                await l4.start(60.0)
                stack.push_async_callback(l4.stop)
            http = await stack.enter_async_context(aiohttp.ClientSession())
            await limit(http, sims, spec.latency, spec.rate_limit, spec.server_burst)
            before = await _requests(http, sims)
            run = await _leaders(config, spec)
            after = await _requests(http, sims)
            held = await control(http, sims[1], "GET", "objects")
    return Figures(
        accesspoints=spec.accesspoints,
        objects=len(held.get("items") or []),
        passes=run.passes,
        seconds=run.seconds,
        cpu_seconds=run.cpu,
        rss_mb=run.rss,
        requests={r: after[r]["total"] - before[r]["total"] for r in after},
        throttled={
            r: after[r]["by_code"].get("429", 0) - before[r]["by_code"].get("429", 0) for r in after
        },
        steady_seconds=run.steady,
        steady_cpu_seconds=run.steady_cpu,
        rate_limit=spec.rate_limit,
        server_burst=spec.server_burst,
    )


@dataclass
class _Run:
    passes: int = 0
    seconds: float = 0.0
    cpu: float = 0.0  # every region's passes
    rss: float = 0.0  # the largest region's peak, MB
    steady: float = 0.0  # the slowest region's last pass (one that changed nothing)
    steady_cpu: float = 0.0


async def _leaders(config: Path, spec: Spec) -> _Run:
    """Each region's controller in a process of its own (`accesspoint_pass`), passing until
    every region's last pass changed nothing and began a grace (for the L4 controllers'
    VIPs) after the last pass of any region that did."""
    procs = {}
    for r in REGIONS:
        procs[r] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chaos.bench.accesspoint_pass", str(config), r, NAMESPACE,
            str(spec.accesspoints), stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
    out = _Run()
    last: dict[str, dict[str, Any]] = {}
    changed_at = t0 = time.time()
    done = asyncio.Event()

    async def read(region: str, proc: asyncio.subprocess.Process) -> None:
        nonlocal changed_at
        assert proc.stdout is not None
        while not done.is_set():
            raw = await proc.stdout.readline()
            if not raw:
                raise RuntimeError(f"the controller of {region} ended (code {proc.returncode})")
            line = json.loads(raw)
            last[region] = line
            out.passes += 1
            out.cpu += line["cpu_s"]
            out.rss = max(out.rss, line["rss_mb"])
            if not line["settled"]:
                changed_at = max(changed_at, line["ended"])
            elif len(last) == len(REGIONS) and all(
                p["settled"] and p["began"] >= changed_at + 1.0 for p in last.values()
            ):
                out.seconds = time.time() - t0
                done.set()

    try:
        async with asyncio.timeout(spec.deadline), asyncio.TaskGroup() as tasks:
            for r, proc in procs.items():
                tasks.create_task(read(r, proc))
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()
    out.steady = max(p["seconds"] for p in last.values())
    out.steady_cpu = max(p["cpu_s"] for p in last.values())
    return out


@click.command()
@click.option(
    "--accesspoints",
    default=Spec.accesspoints,
    show_default=True,
    help="APs (half applications, half gateways)",
)
@click.option("--latency", default=Spec.latency, show_default=True, help="seconds per request")
@click.option(
    "--rate-limit",
    default=Spec.rate_limit,
    show_default=True,
    help="server requests/s (clients set to match)",
)
@click.option("--server-burst", default=Spec.server_burst, show_default=True)
@click.option(
    "--concurrency", default=Spec.concurrency, show_default=True, help="APs worked on at once"
)
@click.option("--deadline", default=Spec.deadline, show_default=True, help="seconds")
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
@click.option("-v", "--verbose", is_flag=True, help="show the controllers' events")
def command(as_json: bool, verbose: bool, **spec: Any) -> None:
    """Two-tier AccessPoints rendered into three simulated clusters, from nothing.

    Quick run: `gtm bench accesspoints --accesspoints 200`.
    """
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.INFO if verbose else logging.WARNING
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    report = asyncio.run(run(Spec(**spec))).report()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    width = max(len(k) for k in report)
    for key, value in report.items():
        click.echo(f"{key.replace('_', ' '):<{width}}  {value}")
    home = report["share_of_allowed_served_home"]
    click.echo(
        f"goal: >= 90% of the home server's allowance used: {'met' if home >= 0.9 else 'NOT met'}"
    )
    rss = report["controller_peak_rss_mb"]
    click.echo(
        f"goal: <= 400 MB: {'met' if rss <= 400 else 'NOT met'} ({rss} MB, the largest "
        "region's controller process)"
    )
