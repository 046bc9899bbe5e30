"""A watch stream read as events: newline-delimited `{"type", "object"}` JSON.

Read here rather than through `kubernetes_asyncio.watch.Watch` (which opens a
second ApiClient with the default configuration, parses each event twice, and
in watch-forever mode resumes a 410 with the same too-old resourceVersion).
An `ERROR` event becomes the `KubeError` of its Status (410: `Expired`); a
broken stream or a line that is not JSON, a `TemporaryError`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from kube.errors import TemporaryError, error_of


def without_managed_fields(obj: Any) -> Any:
    """`obj` (an object, or a list of them under `items`) without `metadata.managedFields`:
    gtm never reads them (it writes by merge patch), and a field set per manager can be as
    large as the object — at tens of thousands of objects, hundreds of MB held for nothing."""
    if isinstance(obj, dict):
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
        items = obj.get("items")
        if isinstance(items, list):
            for item in items:
                meta = item.get("metadata") if isinstance(item, dict) else None
                if isinstance(meta, dict):
                    meta.pop("managedFields", None)
    return obj


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    object: dict[str, Any]

    @property
    def resource_version(self) -> str:
        return str((self.object.get("metadata") or {}).get("resourceVersion", ""))


async def read_events(
    response: aiohttp.ClientResponse, *, managed_fields: bool = False
) -> AsyncIterator[WatchEvent]:
    """The events of an open watch response until the server ends it (the caller closes it);
    objects without `metadata.managedFields` unless `managed_fields`."""
    if response.status != 200:
        raw = await response.read()
        raise error_of(response.status, response.reason or "", raw, response.headers)
    while True:
        try:
            line = await response.content.readline()
        except (TimeoutError, aiohttp.ClientError) as e:
            raise TemporaryError(None, type(e).__name__, str(e)) from e
        if not line:
            return
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as e:
            raise TemporaryError(None, "BadWatchEvent", line[:200].decode(errors="replace")) from e
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            code = int(obj.get("code") or 500)
            raise error_of(code, str(obj.get("reason", "")), json.dumps(obj), None)
        yield WatchEvent(str(kind), obj if managed_fields else without_managed_fields(obj))
