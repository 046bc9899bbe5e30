"""The simulator's own endpoints under `/_sim`, for drills that run it as a process.

- `GET /_sim/faults` — the faults in force and how many were injected;
  `POST` a JSON `Faults` to set them; `DELETE` to clear them.
- `POST /_sim/reset` — clear faults and counters; with `{"objects": true}`
  also delete every object (watchers see DELETED events).
- `GET /_sim/stats` — request counters by verb, resource and code.
- `POST /_sim/drop-watches` — close every open watch now.
- `GET /_sim/objects` — every stored object; `POST` one to put it in the
  store directly (status included), as `KubeSim.seed` does.
- `GET /_sim/healthz` — "ok".
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from chaos.kubesim.api import reply
from chaos.kubesim.errors import bad_request
from chaos.kubesim.faults import FaultInjector, Faults
from chaos.kubesim.stats import RequestStats
from chaos.kubesim.store import Store


async def _json_body(request: web.Request, *, default: Any = None) -> Any:
    raw = await request.read()
    if not raw.strip():
        if default is not None:
            return default
        raise bad_request("a JSON body is required")
    try:
        return json.loads(raw)
    except ValueError as error:
        raise bad_request(f"the body is not JSON: {error}") from None


def seed_object(store: Store, obj: Any) -> dict[str, Any]:
    """Put one object into the store as is (fixtures): create or overwrite, status kept."""
    if not isinstance(obj, dict):
        raise bad_request("an object must be a JSON object")
    found = store.resources.by_kind(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if found is None:
        raise bad_request(
            f"no served resource has apiVersion/kind {obj.get('apiVersion')}/{obj.get('kind')}"
        )
    resource, version = found
    stored = store.put(resource, obj)
    return {**stored, "apiVersion": resource.api_version(version)}


class Control:
    def __init__(self, store: Store, faults: FaultInjector, stats: RequestStats) -> None:
        self.store = store
        self.faults = faults
        self.stats = stats

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/_sim/healthz", self._healthz)
        router.add_get("/_sim/faults", self._get_faults)
        router.add_post("/_sim/faults", self._set_faults)
        router.add_delete("/_sim/faults", self._clear_faults)
        router.add_post("/_sim/reset", self._reset)
        router.add_get("/_sim/stats", self._stats)
        router.add_post("/_sim/drop-watches", self._drop_watches)
        router.add_get("/_sim/objects", self._objects)
        router.add_post("/_sim/objects", self._seed)

    def stats_snapshot(self) -> dict[str, Any]:
        return self.stats.snapshot(
            injected=self.faults.injected,
            open_watches=self.store.hub.open_watches,
            resource_version=self.store.resource_version,
        )

    def faults_view(self) -> dict[str, Any]:
        return {"faults": self.faults.current.to_dict(), "injected": self.faults.injected}

    def reset(self, *, objects: bool = False) -> None:
        self.faults.clear()
        self.faults.reset_counters()
        self.stats.reset()
        if objects:
            for obj in self.store.everything():
                found = self.store.resources.by_kind(obj["apiVersion"], obj["kind"])
                if found is not None:
                    meta = obj["metadata"]
                    self.store.delete(found[0], meta.get("namespace", ""), meta["name"])

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async def _get_faults(self, request: web.Request) -> web.StreamResponse:
        return reply(self.faults_view())

    async def _set_faults(self, request: web.Request) -> web.StreamResponse:
        self.faults.set(Faults.from_dict(await _json_body(request)))
        return reply(self.faults_view())

    async def _clear_faults(self, request: web.Request) -> web.StreamResponse:
        self.faults.clear()
        return reply(self.faults_view())

    async def _reset(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request, default={})
        if not isinstance(body, dict) or set(body) - {"objects"}:
            raise bad_request('reset takes an optional {"objects": true|false}')
        self.reset(objects=bool(body.get("objects", False)))
        return reply({"reset": True, "objects": bool(body.get("objects", False))})

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        return reply(self.stats_snapshot())

    async def _drop_watches(self, request: web.Request) -> web.StreamResponse:
        return reply({"dropped": self.store.hub.drop_all("fault: drop-watches request")})

    async def _objects(self, request: web.Request) -> web.StreamResponse:
        return reply(
            {"resourceVersion": str(self.store.resource_version), "items": self.store.everything()}
        )

    async def _seed(self, request: web.Request) -> web.StreamResponse:
        return reply(seed_object(self.store, await _json_body(request)), status=201)
