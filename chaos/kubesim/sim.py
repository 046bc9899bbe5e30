"""`KubeSim`: one simulated Kubernetes API server on a loopback port.

    async with KubeSim(host="127.0.0.1", port=0) as sim:
        api = CustomObjectsApi(ApiClient(sim.configuration()))
        sim.faults.set(Faults(error_rate=0.2, seed=1))

Owns its web server: `stop()` (or leaving the `async with`) ends open watch
streams, closes the listening socket and every connection, and saves the
state file when one was given.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
import yaml
from aiohttp import web

from chaos.kubesim import snapshot
from chaos.kubesim.control import seed_object
from chaos.kubesim.faults import FaultInjector
from chaos.kubesim.resources import DEFAULT_RESOURCES, Resource, ResourceTable
from chaos.kubesim.server import ApiServer
from chaos.kubesim.stats import RequestStats
from chaos.kubesim.store import Store
from chaos.kubesim.watch import WatchHub
from chaos.kubesim.watchstream import WatchSettings
from kube import Configuration

log = structlog.get_logger(__name__)


class KubeSim:
    """A simulated kube-apiserver serving the kinds of `resources` (every kind by default).

    Leave a kind out of `resources` for a cluster without that CRD (its paths
    answer 404); `Faults(forbidden=...)` for one whose RBAC does not grant it.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        history: int = 1000,
        bookmark_interval: float = 60.0,
        watch_timeout: float = 1800.0,
        state: str | os.PathLike[str] | None = None,
        resources: tuple[Resource, ...] = DEFAULT_RESOURCES,
        seed: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.hub = WatchHub(history)
        self.store = Store(ResourceTable(resources), self.hub, seed=seed)
        self.faults = FaultInjector(self.hub)
        self._stats = RequestStats()
        self._state = Path(state) if state is not None else None
        self._server = ApiServer(
            self.store,
            self.faults,
            self._stats,
            WatchSettings(bookmark_interval=bookmark_interval, default_timeout=watch_timeout),
            server_address=lambda: f"{self.host}:{self.port}",
        )
        self._runner: web.AppRunner | None = None
        self._socket: socket.socket | None = None

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("KubeSim already started")
        if self._state is not None:
            snapshot.load(self.store, self._state)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            self.port = sock.getsockname()[1]
            # handler_cancellation: a watch whose client went away ends at once,
            # instead of lingering until its next write fails.
            runner = web.AppRunner(
                self._server.application(),
                handle_signals=False,
                access_log=None,
                shutdown_timeout=5.0,
                handler_cancellation=True,
            )
            await runner.setup()
        except BaseException:
            sock.close()
            raise
        self._socket = sock
        self._runner = runner
        await web.SockSite(runner, sock).start()
        log.info("kubesim.started", url=self.url, objects=len(self.store.everything()))

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            await runner.cleanup()  # ends open watches (on_shutdown), then closes connections
        finally:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
            if self._state is not None:
                snapshot.save(self.store, self._state)
        log.info("kubesim.stopped", url=f"http://{self._netloc}")

    async def __aenter__(self) -> KubeSim:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- what clients use -----------------------------------------------------

    @property
    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        if self._runner is None:
            raise RuntimeError("KubeSim is not running")
        return f"http://{self._netloc}"

    def configuration(self) -> Configuration:
        return Configuration(host=self.url)

    def write_kubeconfig(self, path: str | os.PathLike[str], context: str = "dc1") -> Path:
        """Write (or merge into) a kubeconfig with a `context` pointing at this server, no auth.

        An existing kubeconfig at `path` keeps its other contexts, so several
        simulated clusters can share one file; `current-context` becomes
        `context` only when the file had none.
        """
        target = Path(path)
        config: dict[str, Any] = {}
        if target.exists():
            config = yaml.safe_load(target.read_text()) or {}
        config.setdefault("apiVersion", "v1")
        config.setdefault("kind", "Config")
        config.setdefault("preferences", {})

        def upsert(section: str, entry: dict[str, Any]) -> None:
            kept = [e for e in config.get(section) or [] if e.get("name") != context]
            config[section] = [*kept, entry]

        upsert("clusters", {"name": context, "cluster": {"server": self.url}})
        upsert("users", {"name": context, "user": {}})
        upsert(
            "contexts",
            {
                "name": context,
                "context": {"cluster": context, "user": context, "namespace": "default"},
            },
        )
        if not config.get("current-context"):
            config["current-context"] = context
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return target

    # -- fixtures and inspection ----------------------------------------------

    def stats(self) -> dict[str, Any]:
        return self._server.control.stats_snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()
        self.faults.reset_counters()

    def seed(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Put an object straight into the store (status included); returns it as stored."""
        return seed_object(self.store, obj)

    def objects(
        self, group: str, version: str, plural: str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """The stored objects of one resource, as served in `version`, without HTTP."""
        resource = self.store.resources.find(group, version, plural)
        if resource is None:
            raise KeyError(f"not served: {group}/{version} {plural}")
        api_version = resource.api_version(version)
        return [{**o, "apiVersion": api_version} for o in self.store.select(resource, namespace)]
