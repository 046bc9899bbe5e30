"""Real members for the API and runbook tests: `MemberRuntime` over a simulated cluster.

`Members` runs one or more real members of region dc1 (what `gtm serve`
runs: elector on a shared file lease, intent and tables in a shared file
store, the embedded DNS, the API) and one simulated cluster (`KubeSim`)
seeded with the mesh a real cluster holds, on a loop in a thread of its own,
so the runbook CLI can run as a real subprocess against them. Probes run
once a day: health stays `unknown`, as before a member's first probe round,
unless `probe_interval` asks for more.

    with Members(tmp_path, ["dc1-a", "dc1-b"]) as pair:   # dc1-a leads
        pair.url("dc1-a"); pair.intent("dc1-a"); pair.history("dc1-a")
"""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import yaml
from multidict import CIMultiDictProxy

from chaos.estate.mesh import NAMESPACE, SELECTOR, SERVICE_LABEL, mesh_objects
from chaos.kubesim import KubeSim
from gtm.config import Inventory, loads
from gtm.config.model import TlsConfig
from gtm.ha import ElectionSettings, Elector, FileLease
from gtm.member import MemberRuntime
from gtm.status import MemberStatus
from intent import AuditEntry, FileAudit, FileIntentStore, IntentState

T = TypeVar("T")
Gtm = Callable[..., subprocess.CompletedProcess[str]]  # the `gtm` fixture: runs `python -m gtm`

OPERATOR = "operator-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"
PEER = "peer-token-0123456789abcdef"
TOKENS_YAML = f"""
tokens:
  - {{name: alice, token: {OPERATOR}, role: operator}}
  - {{name: grafana, token: {VIEWER}, role: viewer}}
  - {{name: peer-dc2, token: {PEER}, role: peer}}
"""
CLUSTER = "cluster-dc1"


def estate(probe_interval: float = 86400.0) -> dict[str, Any]:
    """Three regions, two services with one VIP in each, guardrails 2 active / 1 exit."""
    probe = {"kind": "tcp", "interval": probe_interval, "timeout": min(0.2, probe_interval / 2)}

    def service(name: str, n: int) -> dict[str, Any]:
        return {
            "name": name,
            "fqdn": f"{name}.example.com",
            "probe": probe,
            "vips": {f"dc{r}": [{"address": f"127.0.{r}.{n}", "port": 443}] for r in (1, 2, 3)},
        }

    return {
        "regions": [
            {"name": f"dc{r}", "locality": f"region0{r}/az01", "client_cidrs": [f"127.0.{r}.0/24"]}
            for r in (1, 2, 3)
        ],
        "policies": [
            {"name": "default", "guardrails": {"min_active_regions": 2, "max_concurrent_exits": 1}}
        ],
        "services": [service("foo", 1), service("bar", 2)],
        "dns": {"zones": ["example.com"], "ttl": 1, "default_region": "dc1", "exit_margin": 0.2},
    }


ESTATE = yaml.safe_dump(estate())


def inventory() -> Inventory:
    return loads(ESTATE, "api-estate.yaml")


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free for TCP and UDP on 127.0.0.1, below the ephemeral range, and never one
    handed out before in this process (two random picks for one member's API and DNS met:
    the member could not bind its API)."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(30000, 32700)
        if port in _HANDED_OUT:
            continue
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port")


def until(done: Callable[[], bool], within: float = 10.0, what: str = "it") -> None:
    """Wait (blocking: the members run in a thread of their own) until `done()`."""
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, f"{what} did not happen in {within:g}s"
        time.sleep(0.05)


class Members:
    """Real members of dc1 and their cluster, on a loop in a thread (see the module doc)."""

    def __init__(
        self,
        work: Path,
        identities: Sequence[str] = ("dc1-a",),
        *,
        tls: TlsConfig | None = None,
        probe_interval: float = 86400.0,
        lease: dict[str, float] | None = None,
        held_by: str | None = None,
        powerdns: str | None = None,
    ) -> None:
        self.work = work
        self.identities = list(identities)
        self.tls = tls
        self.lease_file = work / "dc1.lease"
        self.lease = lease or {"duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.2}
        self.estate = estate(probe_interval)
        if powerdns is not None:  # a PowerDNS API to publish to (it may answer nothing)
            self.estate["dns"]["powerdns"] = {"url": powerdns, "api_key": "k"}
        self.held_by = held_by  # a holder of the lease with no address: no leader to ask
        self.holder: Elector | None = None
        self.members: dict[str, MemberRuntime] = {}
        self.sim: KubeSim | None = None
        self._ports = {i: (free_port(), free_port()) for i in self.identities}  # (api, dns)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._thread = threading.Thread(target=self._run, name="members", daemon=True)
        work.mkdir(parents=True, exist_ok=True)
        (work / "tokens.yaml").write_text(TOKENS_YAML)

    def __enter__(self) -> Members:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            self.__exit__()
            raise RuntimeError("members did not start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "members did not stop"

    # -- what tests read ----------------------------------------------------------

    def url(self, identity: str) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._ports[identity][0]}"

    def dns_listen(self, identity: str) -> str:
        return f"127.0.0.1:{self._ports[identity][1]}"

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        """Run `coro` on the members' loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def status(self, identity: str = "dc1-a") -> MemberStatus:
        """The member's status, built on its own loop: read from this thread, a status can
        tear (a reconciler's new table with its old counts: "done" before any patch)."""

        async def read() -> MemberStatus:
            return self.members[identity].status()

        return self.call(read())

    def stop_member(self, identity: str) -> None:
        """End one member at once (its API and DNS go away; its pair partner takes over)."""
        assert self._loop is not None
        task = self._tasks[identity]

        async def cancel() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        self.call(cancel())

    def intent(self) -> IntentState:
        """The intent as the pair's store holds it now."""
        audit = FileAudit(self.work / "state" / "audit.jsonl")
        return self.call(FileIntentStore(self.work / "state" / "intent.json", audit=audit).load())

    def history(self, identity: str = "dc1-a") -> list[AuditEntry]:
        return list(self.call(self.members[identity].history(1000, None)))

    def wle_health(self) -> dict[str, str]:
        """WLE name -> status of its Healthy condition, as the cluster holds it."""
        assert self.sim is not None
        out = {}
        for o in self.sim.objects("networking.istio.io", "v1", "workloadentries"):
            conds = {c["type"]: c["status"] for c in o.get("status", {}).get("conditions", [])}
            out[o["metadata"]["name"]] = conds.get("Healthy", "missing")
        return out

    def config_path(self, identity: str) -> Path:
        return self.work / "members" / f"{identity}.yaml"

    # -- running ------------------------------------------------------------------

    def write_config(self, identity: str, cluster_url: str) -> Path:
        kubeconfig = self.work / "kubeconfig"
        api_port, dns_port = self._ports[identity]
        api: dict[str, Any] = {
            "listen": f"127.0.0.1:{api_port}",
            "tokens_file": str(self.work / "tokens.yaml"),
            "peers": [
                {"region": "dc1", "url": self.url(p)} for p in self.identities if p != identity
            ],
        }
        if self.tls is not None:
            api["tls"] = {"cert": self.tls.cert, "key": self.tls.key}
        data = {
            **self.estate,
            "dns": {**self.estate["dns"], "listen": f"127.0.0.1:{dns_port}"},
            "api": api,
            "kubernetes": {
                "clusters": [
                    {
                        "name": CLUSTER,
                        "region": "dc1",
                        "kubeconfig": str(kubeconfig),
                        "context": "dc1",
                        "namespace": NAMESPACE,
                        "selector": SELECTOR,
                        "service_label": SERVICE_LABEL,
                    }
                ]
            },
            "ha": {
                "lease": {"backend": "file", "path": str(self.lease_file), **self.lease},
                "store": {"backend": "file"},
            },
            "instance": {
                "region": "dc1",
                "member": identity,
                "state_dir": str(self.work / "state"),
                "evaluate_every": 0.2,
            },
        }
        path = self.config_path(identity)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # reported by __enter__
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with AsyncExitStack() as stack:
            sim = self.sim = await stack.enter_async_context(KubeSim(host="127.0.0.1", port=0))
            sim.write_kubeconfig(self.work / "kubeconfig", context="dc1")
            tasks: list[asyncio.Task[None]] = []
            if self.held_by is not None:
                settings = ElectionSettings(self.held_by, "", **self.lease)
                self.holder = Elector(FileLease(self.lease_file), settings)
                await self.holder.attempt()
            try:
                for identity in self.identities:
                    runtime = MemberRuntime(str(self.write_config(identity, sim.url)))
                    if not self.members:
                        objects = mesh_objects(runtime.inventory, "dc1")
                        for obj in (*objects.service_entries, *objects.workload_entries):
                            sim.seed(obj)
                    self.members[identity] = runtime
                    task = asyncio.create_task(runtime.run(self._stop))
                    tasks.append(task)
                    self._tasks[identity] = task
                    # the first one leads (its cluster converged), each next one is its standby
                    first = len(self.members) == 1 and self.holder is None
                    want = "leader" if first else "standby"
                    await _until(lambda r=runtime, w=want: _started(r, w), tasks)
                self._ready.set()
                await self._stop.wait()
            finally:
                self._stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)


def _started(member: MemberRuntime, role: str) -> bool:
    if member.role() != role or not member.ready():
        return False
    mesh = member.status().mesh  # each cluster's progress, as the leader's reconcilers see it
    return role == "standby" or (bool(mesh) and all(p.converged for p in mesh.values()))


async def _until(done: Callable[[], bool], tasks: list[asyncio.Task[None]]) -> None:
    deadline = time.monotonic() + 20
    while not done():
        for t in tasks:
            if t.done():
                t.result()  # a member that failed to start: raise why
                raise RuntimeError("a member stopped while starting")
        if time.monotonic() > deadline:
            raise TimeoutError("member did not start")
        await asyncio.sleep(0.05)


class Api:
    """A client of one served API: `call` answers (status, JSON body, headers)."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = OPERATOR,
        json: object = None,
        data: str | bytes | None = None,
    ) -> tuple[int, Any, CIMultiDictProxy[str]]:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with self.session.request(
            method, self.url + path, json=json, data=data, headers=headers
        ) as r:
            text = await r.text()
            body: Any = text
            if r.content_type == "application/json":
                body = await r.json()
            return r.status, body, r.headers
