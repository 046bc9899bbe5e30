"""One simulated Kubernetes cluster per region: a `python -m chaos.kubesim` process each.

    clusters = Clusters(inventory, work_dir, launcher, ports=PortPlan())
    await clusters.start()         # processes up, kubeconfig written, mesh seeded
    clusters.urls["dc2"]           # http://127.0.0.1:17444
    await clusters.stop()

Beside each cluster runs its L4 controller (`chaos.estate.l4`, in this
process, through the same kubeconfig): a `gtm.io/ipvs` LoadBalancer Service
gets a VIP from the region's pool (`l4_pool`, 127.1.<n>.x) in its
`status.loadBalancer`; `clusters.l4["dc1"].withdraw(ns, name)` takes one
away for a drill.

The kubeconfig (`<work>/kubeconfig`) has one context per region, named after
it, which is what the members' `kubernetes.clusters` point at. Each cluster
keeps its objects in `<work>/clusters/<region>.json` across restarts.

Seeding goes through the real API with `kube.Client` (kubernetes-asyncio),
through that kubeconfig, so the objects are exactly what an apiserver holds: a create
(which drops `status`), then the Healthy condition through the `status`
subresource. An object that already exists (a restart from the state file)
is left as it is: the seed never undoes what gtm did.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import structlog
import yaml

from chaos.estate.l4 import L4Controller, l4_pool
from chaos.estate.launcher import Launcher
from chaos.estate.mesh import (
    GROUP,
    SE_PLURAL,
    VERSION,
    WLE_PLURAL,
    MeshObjects,
    MeshSeed,
    healthy_status,
    mesh_objects,
)
from chaos.estate.ports import HOST, PortPlan
from gtm.config import Inventory
from kube import MERGE_PATCH, Client, Configuration, Conflict, load_configuration

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SeedResult:
    region: str
    created: int
    kept: int  # already there (restarted from a state file)


def write_kubeconfig(path: Path, servers: Mapping[str, str], namespace: str) -> Path:
    """A kubeconfig with one context per entry (context name -> server URL), no auth."""
    names = list(servers)
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": n, "cluster": {"server": servers[n]}} for n in names],
        "users": [{"name": n, "user": {}} for n in names],
        "contexts": [
            {"name": n, "context": {"cluster": n, "user": n, "namespace": namespace}} for n in names
        ],
        "current-context": names[0] if names else "",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass(frozen=True)
class _Context:
    """A kubeconfig context, as `kube.load_configuration` reads it."""

    kubeconfig: str
    context: str
    in_cluster: bool = False


async def client_configuration(kubeconfig: Path, context: str) -> Configuration:
    return await load_configuration(_Context(str(kubeconfig), context))


async def seed_cluster(
    client: Client, objects: MeshObjects, now: datetime | None = None
) -> SeedResult:
    """Create the objects that are missing; a created WLE then gets Healthy True via `/status`."""
    status = healthy_status(now or datetime.now(UTC))
    api = client.custom_objects
    created = kept = 0
    plurals = [(SE_PLURAL, o) for o in objects.service_entries]
    plurals += [(WLE_PLURAL, o) for o in objects.workload_entries]
    for plural, body in plurals:
        meta = body["metadata"]
        where = f"{meta['namespace']}/{meta['name']}"
        try:
            await client.request(
                "create",
                partial(
                    api.create_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    meta["namespace"],
                    plural,
                    body,
                ),
                what=where,
            )
        except Conflict:
            kept += 1
            continue
        created += 1
        if plural == WLE_PLURAL:
            patch = partial(
                api.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                meta["namespace"],
                plural,
                meta["name"],
                {"status": status},
                _content_type=MERGE_PATCH,
            )
            await client.request("patch", patch, what=where)
    return SeedResult(objects.region, created, kept)


class Clusters:
    """The simulated clusters of an estate, one process per region, started by `launcher`."""

    def __init__(
        self,
        inventory: Inventory,
        work_dir: Path,
        launcher: Launcher,
        *,
        ports: PortPlan = PortPlan(),
        seed: MeshSeed = MeshSeed(),
        python: str = sys.executable,
    ) -> None:
        self.inventory = inventory
        self.work_dir = work_dir
        self.launcher = launcher
        self.seed = seed
        self.python = python
        self.kubeconfig = work_dir / "kubeconfig"
        regions = inventory.region_names
        self.urls: dict[str, str] = {
            r: f"http://{HOST}:{ports.cluster(i)}" for i, r in enumerate(regions)
        }
        self.seeded: dict[str, SeedResult] = {}
        self.l4: dict[str, L4Controller] = {}
        self._l4_clients: list[Client] = []

    @staticmethod
    def process_name(region: str) -> str:
        return f"cluster-{region}"

    def state_file(self, region: str) -> Path:
        return self.work_dir / "clusters" / f"{region}.json"

    def argv(self, region: str) -> list[str]:
        port = self.urls[region].rsplit(":", 1)[1]
        listen = f"{HOST}:{port}"
        state = str(self.state_file(region))
        return [self.python, "-m", "chaos.kubesim", "--listen", listen, "--state", state]

    def start_processes(self) -> None:
        for region in self.urls:
            self.launcher.start(
                self.process_name(region),
                self.argv(region),
                log_path=self.work_dir / "logs" / f"{self.process_name(region)}.log",
            )

    async def wait_ready(self, within: float = 20.0) -> None:
        await asyncio.gather(
            *(
                self.launcher.wait_http(
                    f"{url}/_sim/healthz", within, name=self.process_name(region)
                )
                for region, url in self.urls.items()
            )
        )

    async def seed_all(self) -> dict[str, SeedResult]:
        async def one(region: str) -> SeedResult:
            config = await client_configuration(self.kubeconfig, region)
            async with Client(config) as client:
                objects = mesh_objects(self.inventory, region, self.seed)
                return await seed_cluster(client, objects)

        results = await asyncio.gather(*(one(r) for r in self.urls))
        self.seeded = {r.region: r for r in results}
        for r in results:
            log.info("cluster.seeded", region=r.region, created=r.created, kept=r.kept)
        return self.seeded

    async def start_l4(self, within: float = 10.0) -> None:
        """An L4 controller per cluster, each with the pool of its region."""
        for index, region in enumerate(self.urls):
            client = Client(await client_configuration(self.kubeconfig, region))
            self._l4_clients.append(client)
            self.l4[region] = L4Controller(client, region=region, pool=l4_pool(index), answer=True)
        await asyncio.gather(*(c.start(within) for c in self.l4.values()))

    async def stop_l4(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.l4.values()))
        self.l4.clear()
        clients, self._l4_clients = self._l4_clients, []
        await asyncio.gather(*(c.aclose() for c in clients))

    async def start(self, within: float = 20.0) -> None:
        """Start every cluster, wait until each answers, write the kubeconfig, seed the mesh,
        start the L4 controllers."""
        write_kubeconfig(self.kubeconfig, self.urls, self.seed.namespace)
        self.start_processes()
        await self.wait_ready(within)
        await self.seed_all()
        await self.start_l4(within)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop the L4 controllers, then SIGTERM each cluster (it saves its state file),
        SIGKILL after `grace` seconds."""
        await self.stop_l4()
        names = [self.process_name(r) for r in self.urls]
        await asyncio.gather(
            *(self.launcher.terminate(n, grace) for n in names if n in self.launcher.names)
        )
