"""`gtm bench accesspoints`: two-tier AccessPoints from nothing to every object present.

Three simulated clusters, each its own process (`python -m chaos.kubesim`) with
latency on every request and a server-side request-rate limit (the peer whose
allowance the run is measured against). `--accesspoints` APs are created in the
home cluster (dc1), half of them applications (a LoadBalancer Service, a gtm
service) and half their gateways (a Service, a VirtualService routed to
`upstream:<its application>`; one WorkloadEntry per application VIP and one
ServiceEntry). Each region's AccessPoint controller (`gtm.service.accesspoints`,
as each region's leader runs it) renders them into its own cluster, pass after
pass, with the clients' rate set to the servers' limit; an L4 controller per
cluster (`chaos.estate.l4`, in this process too) gives each Service its VIP.

Reported: the time until a pass changes nothing and every AP is applied in every
cluster, the requests each server took and the share of its allowance they used
(the requests it served, not those it answered 429; the home cluster also takes
every region's status writes: it is the one that bounds the run), this process's
CPU and peak RSS (three controllers and three L4 controllers), the time and CPU of
one steady pass over every AP (what each resync costs once nothing changes), and
one region's controller alone in a process of its own (`accesspoint_pass`): its
peak RSS over one pass, what a member's controller costs in memory.

The controllers pass independently, each again as soon as its pass ends (as a
leader woken by its watches does while things change), until a pass of every
region changes nothing.
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
import psutil
import structlog
import yaml

from chaos.bench.failover import SimProcess, control, limit, simulated_cluster
from chaos.estate.clusters import write_kubeconfig
from chaos.estate.l4 import L4Controller
from chaos.kubesim import KubeSim
from chaos.kubesim.snapshot import save
from failover import WriteFence
from gtm.config import load
from gtm.service.accesspoint_apply import open_objects
from gtm.service.accesspoints import AccessPointController, HomeAccessPoints, Synced
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
    steady_requests: int
    rate_limit: float
    server_burst: int
    alone: dict[str, float]  # one region's controller in a process of its own: one pass

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
            "client_cpu_s": round(self.cpu_seconds, 1),
            "client_peak_rss_mb": round(self.rss_mb, 1),
            "steady_pass_s": round(self.steady_seconds, 2),
            "steady_pass_cpu_s": round(self.steady_cpu_seconds, 2),
            "steady_pass_requests": self.steady_requests,
            "controller_alone_peak_rss_mb": self.alone["rss_mb"],
            "controller_alone_pass_s": self.alone["seconds"],
            "controller_alone_pass_cpu_s": self.alone["cpu_s"],
        }


def _settled(passes: list[Synced], accesspoints: int) -> bool:
    """Every AP applied in every own cluster of every controller, and nothing changed."""
    results = [r for synced in passes for rs in synced.results.values() for r in rs]
    return (
        all(len(s.results) == accesspoints for s in passes)
        and all(r.applied and r.changed == 0 for r in results)
        and all(not s.unwritten for s in passes)
    )


async def _requests(http: aiohttp.ClientSession, sims: list[SimProcess]) -> dict[str, Any]:
    return {s.region: await control(http, s, "GET", "stats") for s in sims}


async def _controller_alone(config: Path, region: str) -> dict[str, float]:
    """One pass of `region`'s controller in a process of its own (`accesspoint_pass`)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chaos.bench.accesspoint_pass", str(config), region, NAMESPACE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the controller alone failed: {err.decode()[-2000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


async def run(spec: Spec) -> Figures:
    half = spec.accesspoints // 2
    process = psutil.Process()
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
            text = yaml.safe_dump(estate(kubeconfig, spec.rate_limit, spec.concurrency))
            await asyncio.to_thread(config.write_text, text)
            inventory = load(config)
            objects = await open_objects(inventory, stack)
            home = HomeAccessPoints(objects["dc1"].client, [NAMESPACE])
            create = objects["dc1"].client.custom_objects.create_namespaced_custom_object
            for i in range(half):  # the APs, before the servers are limited
                for doc in (
                    accesspoint(f"app{i:05d}", None),
                    accesspoint(f"gw{i:05d}", f"app{i:05d}"),
                ):
                    await objects["dc1"].client.request(
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
            fence = WriteFence(1, lambda: True)  # the benchmark's controllers are the leaders
            controllers = [
                AccessPointController(inventory, r, home, objects, fence) for r in REGIONS
            ]
            before = await _requests(http, sims)
            cpu0, t0 = time.process_time(), time.perf_counter()
            peak, passes, changed_at = 0.0, 0, t0
            last: dict[str, tuple[float, Synced]] = {}  # region: its last pass, when it began
            settled = asyncio.Event()

            async def leading(region: str, controller: AccessPointController) -> None:
                # pass after pass, as a leader woken by its watches does while things change;
                # the regions are not in step, the home server never waits for the slowest.
                # Done when every region's last pass changed nothing and began a grace (for
                # the L4 controllers' VIPs) after the last pass of any region that did.
                nonlocal peak, passes, changed_at
                while not settled.is_set():
                    began = time.perf_counter()
                    done = await controller.sync()
                    last[region] = (began, done)
                    passes += 1
                    peak = max(peak, process.memory_info().rss)
                    if not _settled([done], spec.accesspoints):
                        changed_at = time.perf_counter()
                    elif len(last) == len(REGIONS) and all(
                        b >= changed_at + 1.0 and _settled([d], spec.accesspoints)
                        for b, d in last.values()
                    ):
                        settled.set()

            async with asyncio.timeout(spec.deadline), asyncio.TaskGroup() as tasks:
                for r, c in zip(REGIONS, controllers, strict=True):
                    tasks.create_task(leading(r, c))
            seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            after = await _requests(http, sims)
            cpu1, t1 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(c.sync() for c in controllers))
            steady, steady_cpu = time.perf_counter() - t1, time.process_time() - cpu1
            counted = await _requests(http, sims)
            peak = max(peak, process.memory_info().rss)
            held = await control(http, sims[1], "GET", "objects")
            alone = await _controller_alone(config, "dc2")
    return Figures(
        accesspoints=spec.accesspoints,
        objects=len(held.get("items") or []),
        passes=passes,
        seconds=seconds,
        cpu_seconds=cpu,
        rss_mb=peak / 2**20,
        requests={r: after[r]["total"] - before[r]["total"] for r in after},
        throttled={
            r: after[r]["by_code"].get("429", 0) - before[r]["by_code"].get("429", 0) for r in after
        },
        steady_seconds=steady,
        steady_cpu_seconds=steady_cpu,
        steady_requests=sum(counted[r]["total"] - after[r]["total"] for r in counted),
        alone=alone,
        rate_limit=spec.rate_limit,
        server_burst=spec.server_burst,
    )


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
    rss = report["controller_alone_peak_rss_mb"]
    click.echo(
        f"goal: <= 400 MB: {'met' if rss <= 400 else 'NOT met'} ({rss} MB, one region's "
        f"controller alone; this process with three and their L4 controllers: "
        f"{report['client_peak_rss_mb']} MB)"
    )
