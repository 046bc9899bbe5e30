"""The API names why the durable state refused (a full or read-only disk, a corrupt file)."""

from __future__ import annotations

import errno
import os

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gtm.api.errors import problems
from intent import CorruptState, StoreUnavailable


async def test_a_store_that_cannot_write_answers_503_with_the_cause() -> None:
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/var/lib/gtm/intent.json.8")

    async def write(request: web.Request) -> web.Response:
        raise StoreUnavailable.from_os("write", "/var/lib/gtm/intent.json", full)

    async def read(request: web.Request) -> web.Response:
        raise CorruptState("/var/lib/gtm/intent.json.7: not JSON; newest readable: version 6")

    app = web.Application(middlewares=[problems])
    app.router.add_post("/v1/region/exit", write)
    app.router.add_get("/v1/overrides", read)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        r = await client.post("/v1/region/exit", json={})
        body = await r.json()
        assert r.status == 503 and body["details"] == {"cause": "ENOSPC"}
        assert "ENOSPC (No space left on device)" in body["error"]
        assert "/var/lib/gtm/intent.json" in body["error"]
        r = await client.get("/v1/overrides")
        assert r.status == 503 and "not JSON" in (await r.json())["error"]
