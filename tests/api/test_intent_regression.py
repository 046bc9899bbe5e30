"""A real member whose newest intent file is deleted while a dc2 exit is in force.

The file store falls back to the version before without a word. The member
notices (its high-water mark in the state directory), keeps the lease but
does not lead from the regressed store — DNS keeps the last table, dc2 stays
out — and says why in `/readyz`, `/v1/status` and `/metrics`; once a peer
region's copy of the exit arrives through anti-entropy, the exit is merged
back above the mark and the member leads again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from api_members import VIEWER, Members

from chaos.estate.mesh import mesh_objects
from chaos.kubesim import KubeSim
from gtm.member import MemberRuntime
from gtm.service.actions import Exit
from intent import FileIntentStore, IntentState
from policies import WeightTable

NS = "gtm"
INTENT = "gtm-intent"


class PeerRegion:
    """dc2's member as the peer exchange sees it: no observations, and its intent
    (503 until `holds` is given: the peer is not reachable yet)."""

    def __init__(self) -> None:
        self.holds: IntentState | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> PeerRegion:
        app = web.Application()
        app.router.add_get("/v1/observations", self._observations)
        app.router.add_get("/v1/overrides", self._overrides)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _observations(self, request: web.Request) -> web.Response:
        return web.json_response({"observations": [], "next": 0})

    async def _overrides(self, request: web.Request) -> web.Response:
        if self.holds is None:
            raise web.HTTPServiceUnavailable()
        return web.json_response(self.holds.to_dict())


@asynccontextmanager
async def running(config: Path) -> AsyncIterator[MemberRuntime]:
    member = MemberRuntime(str(config))
    stop = asyncio.Event()
    task = asyncio.create_task(member.run(stop))
    try:
        await until(lambda: member.role() == "leader", what="leading", task=task)
        yield member
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def until(
    done: Callable[[], bool],
    *,
    within: float = 15.0,
    what: str = "it",
    task: asyncio.Task[None] | None = None,
) -> None:
    deadline = time.monotonic() + within
    while not done():
        if task is not None and task.done():
            task.result()
            raise AssertionError("the member stopped")
        assert time.monotonic() < deadline, f"{what} did not happen in {within:g}s"
        await asyncio.sleep(0.05)


def dc2_out(table: WeightTable | None) -> bool:
    """No client of dc1 is sent to dc2, for either service."""
    if table is None:
        return False
    return all(table.row(s, "dc1").weights()["dc2"] == 0 for s in ("foo", "bar"))  # type: ignore[union-attr]


def evaluated(member: MemberRuntime) -> float:
    """When the member's controller last evaluated (0: never)."""
    layers = member.status().layers
    return 0.0 if layers is None or layers.evaluated_at is None else layers.evaluated_at


async def get(url: str, path: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {VIEWER}"}
    async with aiohttp.ClientSession() as session, session.get(url + path, headers=headers) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body


def intent_files(state: Path) -> list[Path]:
    return sorted(p for p in state.iterdir() if p.name.startswith("intent.json."))


class FileBackend:
    """The embedded store: numbered files in the state directory, shared by the pair."""

    name = "file"

    def __init__(self, work: Path, sim: KubeSim) -> None:
        self.state = work / "state"
        self.lost: Path | None = None

    def config(self) -> dict[str, Any]:
        return {"backend": "file"}

    async def lose_newest(self) -> None:
        self.lost = intent_files(self.state)[-1]
        self.lost.unlink()

    async def load(self) -> IntentState:
        return await FileIntentStore(self.state / "intent.json").load()

    def nothing_written(self) -> bool:
        return self.lost not in intent_files(self.state)


class FileBackendMarkToo(FileBackend):
    """The newest intent file and the member's high-water file deleted together: the
    head of the table DNS serves still names the exit that was in force."""

    async def lose_newest(self) -> None:
        await super().lose_newest()
        for mark in self.state.glob("intent-seen.*.json"):
            mark.unlink()


class ConfigMapBackend:
    """The kubernetes store: a ConfigMap, deleted (and created again, empty) by someone."""

    name = "kubernetes"
    PATH = f"/api/v1/namespaces/{NS}/configmaps/{INTENT}"

    def __init__(self, work: Path, sim: KubeSim) -> None:
        self.sim = sim

    def config(self) -> dict[str, Any]:
        return {"backend": "kubernetes", "namespace": NS, "intent": INTENT, "timeout": 2.0}

    async def lose_newest(self) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.delete(self.sim.url + self.PATH) as r:
                assert r.status == 200, await r.text()
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": INTENT}}
            async with session.post(self.sim.url + self.PATH.rsplit("/", 1)[0], json=body) as r:
                assert r.status == 201, await r.text()  # recreated: its history starts again

    async def load(self) -> IntentState:
        async with aiohttp.ClientSession() as session, session.get(self.sim.url + self.PATH) as r:
            if r.status == 404:
                return IntentState()
            raw = (await r.json()).get("data", {}).get("intent.json")
        return IntentState() if raw is None else IntentState.from_json(raw)

    def nothing_written(self) -> bool:
        (cm,) = [
            o
            for o in self.sim.objects("", "v1", "configmaps", NS)
            if o["metadata"]["name"] == INTENT
        ]
        return "intent.json" not in cm.get("data", {})


@pytest.mark.parametrize(
    "backend",
    [FileBackend, FileBackendMarkToo, ConfigMapBackend],
    ids=["file", "file-and-mark", "configmap"],
)
async def test_lost_intent_is_noticed_and_merged_back(
    tmp_path: Path, backend: type[FileBackend | ConfigMapBackend]
) -> None:
    """file: the newest intent.json.N deleted (file-and-mark: with the member's high-water
    file); configmap: the ConfigMap deleted and created again. Either way the store answers
    a lower version without a word."""
    members = Members(tmp_path)  # its config for one member of dc1; the member runs here
    async with KubeSim(host="127.0.0.1", port=0) as sim, PeerRegion() as dc2:
        store = backend(tmp_path, sim)
        sim.write_kubeconfig(tmp_path / "kubeconfig", context="dc1")
        config = members.write_config("dc1-a", sim.url)
        doc = yaml.safe_load(config.read_text())
        doc["api"]["peers"].append({"region": "dc2", "url": dc2.url})
        doc["ha"]["store"] = store.config()
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        url = members.url("dc1-a")

        # 1. dc2 is exited; the member has seen the intent at its version
        async with running(config) as member:
            objects = mesh_objects(member.inventory, "dc1")
            for obj in (*objects.service_entries, *objects.workload_entries):
                sim.seed(obj)
            await member.act(Exit("dc2", "maintenance"), who="alice", dry_run=False)
            await until(lambda: dc2_out(member.table()), what="dc2 out of DNS")
            exited = member.intent()
            assert exited.version >= 1 and member.status().intent.seen == exited.version
        generation = member.table().generation  # type: ignore[union-attr]

        # 2. the newest intent is lost: the store falls back without a word
        await store.lose_newest()
        fallen = await store.load()
        assert fallen.version < exited.version and not fallen.overrides

        async with running(config) as member:
            await until(lambda: member.status().intent.regressed, what="the regression seen")
            status, body = await get(url, "/readyz")
            assert status == 503, body
            assert f"holds intent version {fallen.version}" in body["error"]
            assert f"version {exited.version} was seen" in body["error"]
            status, body = await get(url, "/v1/status")
            intent = body["intent"]
            assert (intent["stored"], intent["seen"], intent["regressed"]) == (
                fallen.version,
                exited.version,
                True,
            )
            _, metrics = await get(url, "/metrics")
            assert "gtm_intent_regressed 1.0" in metrics
            assert f"gtm_intent_version_seen {float(exited.version)}" in metrics
            # it holds the lease but does not lead from the regressed intent: the last
            # table is served (dc2 out), nothing lower is written over the store
            refusing = time.time()
            await asyncio.sleep(1.5)  # several evaluation periods (evaluate_every 0.2)
            assert evaluated(member) < refusing
            assert member.role() == "leader" and not member.ready()
            assert dc2_out(member.table()) and member.table().generation == generation  # type: ignore[union-attr]
            assert store.nothing_written()
            assert (await store.load()) == fallen

            # 3. dc2's member answers with its copy of the intent (it merged the exit)
            dc2.holds = IntentState().merge(exited)
            await until(lambda: member.ready(), what="restored and ready")
            restored = await store.load()
            assert restored.same_intent(exited) and restored.version == exited.version
            status, body = await get(url, "/v1/status")
            assert body["intent"]["regressed"] is False and body["intent"]["cause"] is None
            _, metrics = await get(url, "/metrics")
            assert "gtm_intent_regressed 0.0" in metrics
            # it leads again: it evaluates (the exit in force), dc2 stays out of DNS
            since = time.time()
            await until(lambda: evaluated(member) > since, what="an evaluation")
            assert dc2_out(member.table())
            assert member.intent().same_intent(exited)
