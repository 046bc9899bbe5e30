"""The VIP farm's control API, on its own port (never on a VIP's).

- `GET /_vips` — `{"vips": [state, …]}`: each VIP's id, service, region,
  address, port, fault, listening, open connections, requests served.
- `GET /_vips/{vip_id}` — one VIP's state.
- `POST /_vips/{vip_id}/fault` `{mode, latency?, status?, period?}` — set one
  VIP's fault; answers its new state.
- `POST /_regions/{region}/fault` — the same body (mode may also be
  `region_down`) on every VIP of the region; answers their states.
- `GET /_sources` — `{"sources": [{name, groups, fault}, …]}`: the source faults.
- `POST /_sources/{name}/fault` `{groups: [pgid, …], mode, latency?, status?, period?}`
  — every VIP gets this fault for the connections of those process groups
  only (`chaos.estate.sources`); mode `ok` clears it.
- `DELETE /_sources/{name}` — clear it.
- `POST /_reset` — every VIP healthy again, no source faults.
- `GET /_healthz` — "ok".

A VIP id holds slashes (`foo/dc1/127.0.1.1:18080`): send it as is or
percent-encoded. Unknown VIP or region: 404; a bad body: 400; errors are
`{"error": reason}`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from chaos.estate.farm import UnknownRegion, UnknownVip, VipFarm
from chaos.estate.fault import Fault, FaultError


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError as error:
        raise FaultError(f"the body is not JSON: {error}") from None


class VipControl:
    """Routes of the control API over one farm."""

    def __init__(self, farm: VipFarm) -> None:
        self.farm = farm

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_healthz", self._healthz)
        app.router.add_get("/_vips", self._list)
        app.router.add_post("/_vips/{vip_id:.+}/fault", self._vip_fault)
        app.router.add_get("/_vips/{vip_id:.+}", self._one)
        app.router.add_post("/_regions/{region}/fault", self._region_fault)
        app.router.add_get("/_sources", self._sources)
        app.router.add_post("/_sources/{name}/fault", self._source_fault)
        app.router.add_delete("/_sources/{name}", self._clear_source)
        app.router.add_post("/_reset", self._reset)
        return app

    @staticmethod
    def _vip_id(request: web.Request) -> str:
        return unquote(request.match_info["vip_id"])

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async def _list(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"vips": self.farm.states()})

    async def _one(self, request: web.Request) -> web.StreamResponse:
        vip_id = self._vip_id(request)
        try:
            return web.json_response(self.farm.server(vip_id).state())
        except UnknownVip:
            return _error(404, f"no VIP {vip_id!r}")

    async def _vip_fault(self, request: web.Request) -> web.StreamResponse:
        vip_id = self._vip_id(request)
        try:
            fault = Fault.from_dict(await _body(request))
            return web.json_response(await self.farm.set_fault(vip_id, fault))
        except UnknownVip:
            return _error(404, f"no VIP {vip_id!r}")
        except FaultError as error:
            return _error(400, str(error))

    async def _region_fault(self, request: web.Request) -> web.StreamResponse:
        region = request.match_info["region"]
        try:
            fault = Fault.from_dict(await _body(request), region=True)
            states = await self.farm.set_region_fault(region, fault)
        except UnknownRegion:
            regions = ", ".join(self.farm.inventory.region_names)
            return _error(404, f"no region {region!r} (regions: {regions})")
        except FaultError as error:
            return _error(400, str(error))
        return web.json_response({"region": region, "fault": fault.to_dict(), "vips": states})

    async def _sources(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"sources": self.farm.sources.states()})

    async def _source_fault(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        try:
            body = await _body(request)
            if not isinstance(body, dict):
                raise FaultError('a source fault is a JSON object: {"groups": [...], "mode": ...}')
            groups = body.pop("groups", None)
            if not isinstance(groups, list) or not all(
                isinstance(g, int) and not isinstance(g, bool) and g > 0 for g in groups
            ):
                raise FaultError("groups must be a list of process group ids (integers > 0)")
            fault = Fault.from_dict(body)
        except FaultError as error:
            return _error(400, str(error))
        entry = self.farm.set_source_fault(name, groups, fault)
        return web.json_response(entry.to_dict())

    async def _clear_source(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        return web.json_response({"name": name, "cleared": self.farm.clear_source_fault(name)})

    async def _reset(self, request: web.Request) -> web.StreamResponse:
        await self.farm.reset()
        return web.json_response({"reset": True, "vips": len(self.farm.vip_ids)})
