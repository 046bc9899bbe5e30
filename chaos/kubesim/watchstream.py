"""A watch over HTTP: newline-delimited JSON events on a chunked 200 response.

`?watch=true` on a collection. Without a resourceVersion (or with "0") the
stream starts with an ADDED event per existing object; with one, it replays
every change after it — or, when that is older than the kept history, sends
one ERROR event carrying a 410 Expired `Status` and ends (the client must
list again). BOOKMARK events (only with `allowWatchBookmarks`) carry the
latest resourceVersion every `bookmark_interval` seconds while idle. The
stream ends after `timeoutSeconds`, when faults drop it, or at shutdown.
A watch whose Accept asks for a meta.k8s.io Table (`kubectl get -w`) gets
each object as a one-row Table (`tables`).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from chaos.kubesim.errors import ApiError
from chaos.kubesim.faults import FaultInjector
from chaos.kubesim.request import Target, parse_bool, parse_int, parse_resource_version
from chaos.kubesim.selectors import ObjectFilter
from chaos.kubesim.store import Store
from chaos.kubesim.tables import as_table, table_version
from chaos.kubesim.watch import Closed, Watcher


@dataclass(frozen=True)
class WatchSettings:
    bookmark_interval: float = 60.0
    default_timeout: float = 1800.0  # kube-apiserver's --min-request-timeout


class _Stream:
    """The response side of one watch."""

    def __init__(
        self, response: web.StreamResponse, target: Target, request: web.Request | None = None
    ) -> None:
        self.response = response
        self.target = target
        self.table = None if request is None else table_version(request.headers.get("Accept", ""))
        self.include_object = None if request is None else request.query.get("includeObject")
        self._headers_sent = False

    async def change(self, kind: str, obj: dict[str, Any]) -> None:
        """An ADDED, MODIFIED or DELETED event: the object as served, or a one-row Table."""
        shown = self.target.present(obj)
        if self.table is None:
            await self.send(kind, shown)
            return
        rv = str(obj.get("metadata", {}).get("resourceVersion", ""))
        table = as_table(
            self.target.resource,
            [obj],
            [shown],
            version=self.table,
            metadata={"resourceVersion": rv},
            include_object=self.include_object,
            headers=not self._headers_sent,
        )
        self._headers_sent = True
        await self.send(kind, table)

    async def send(self, kind: str, obj: dict[str, Any]) -> None:
        line = json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n"
        await self.response.write(line.encode())

    async def bookmark(self, resource_version: int) -> None:
        resource = self.target.resource
        await self.send(
            "BOOKMARK",
            {
                "kind": resource.kind,
                "apiVersion": resource.api_version(self.target.version),
                "metadata": {"resourceVersion": str(resource_version)},
            },
        )


class WatchStreamer:
    def __init__(self, store: Store, faults: FaultInjector, settings: WatchSettings) -> None:
        self.store = store
        self.faults = faults
        self.settings = settings

    async def watch(self, target: Target, request: web.Request) -> web.StreamResponse:
        query = request.query
        selection = ObjectFilter.parse(query.get("labelSelector"), query.get("fieldSelector"))
        since = parse_resource_version(query.get("resourceVersion"))
        bookmarks = parse_bool(query.get("allowWatchBookmarks"), "allowWatchBookmarks")
        timeout = parse_int(query.get("timeoutSeconds"), "timeoutSeconds")
        requested = float(timeout) if timeout else self.settings.default_timeout
        drop_after = self.faults.watch_lifetime(target.resource.plural)
        cut_by_fault = drop_after is not None and drop_after < requested
        lifetime = drop_after if cut_by_fault and drop_after is not None else requested
        try:
            initial, watcher = self._subscribe(target, selection, since)
        except ApiError as failure:  # sent as an ERROR event on a 200 stream, as the apiserver does
            response = self._response()
            await response.prepare(request)
            await _Stream(response, target).send("ERROR", failure.status())
            return response
        response = self._response()
        try:
            await response.prepare(request)
            stream = _Stream(response, target, request)
            for obj in initial:
                await stream.change("ADDED", obj)
            ended = await self._follow(stream, watcher, selection, lifetime, bookmarks)
            if (ended == "deadline" and cut_by_fault) or ended.startswith("fault"):
                self.faults.note_dropped_watch()
        except ConnectionError:
            pass  # the client went away
        finally:
            self.store.hub.unsubscribe(watcher)
        return response

    def _subscribe(
        self, target: Target, selection: ObjectFilter, since: int | None
    ) -> tuple[list[dict[str, Any]], Watcher]:
        """The objects to announce first, and the watcher; no await in between, so no
        change can slip between the snapshot and the subscription."""
        resource = target.resource
        if since in (None, 0):
            initial = self.store.select(resource, target.namespace, selection)
            return initial, self.store.hub.subscribe(
                resource.group_resource, target.namespace, None
            )
        return [], self.store.hub.subscribe(resource.group_resource, target.namespace, since)

    @staticmethod
    def _response() -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        return response

    async def _follow(
        self,
        stream: _Stream,
        watcher: Watcher,
        selection: ObjectFilter,
        lifetime: float,
        bookmarks: bool,
    ) -> str:
        """Relay changes until the stream ends; returns why it ended."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + lifetime
        interval = self.settings.bookmark_interval
        next_bookmark = loop.time() + interval
        while (now := loop.time()) < deadline:
            wake = min(deadline, next_bookmark) if bookmarks else deadline
            try:
                async with asyncio.timeout(max(0.0, wake - now)):
                    item = await watcher.next()
            except TimeoutError:
                if bookmarks and loop.time() >= next_bookmark:
                    if watcher.idle:
                        await stream.bookmark(self.store.resource_version)
                    next_bookmark = loop.time() + interval
                continue
            if isinstance(item, Closed):
                return item.reason
            seen = item.seen_through(selection)
            if seen is not None:
                kind, obj = seen
                await stream.change(kind, obj)
        return "deadline"
