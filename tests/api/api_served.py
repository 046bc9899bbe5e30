"""Serving fake members for the tests: a client of one API, and members in a thread.

`Members` serves several fake members — each with its API and a real
embedded DNS server answering from its table — on a loop in a thread of its
own, so the runbook CLI can run as a real subprocess against them.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
from api_member import OPERATOR, FakeMember
from multidict import CIMultiDictProxy

from gtm.api import CertPair, Served, TokenBook, make_app, serve_api
from gtm.config import Inventory
from gtm.dns import Answers, DnsServer

Gtm = Callable[..., subprocess.CompletedProcess[str]]  # the `gtm` fixture: runs `python -m gtm`


class Api:
    """A client of one served API: `call` answers (status, JSON body, headers)."""

    def __init__(self, session: aiohttp.ClientSession, served: Served) -> None:
        self.session = session
        self.served = served

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
            method, self.served.url + path, json=json, data=data, headers=headers
        ) as r:
            text = await r.text()
            body: Any = text
            if r.content_type == "application/json":
                body = await r.json()
            return r.status, body, r.headers


class Members:
    """Fake members, each with its API and its DNS, on a loop in a thread of its own."""

    def __init__(
        self,
        inventory: Inventory,
        tokens: TokenBook,
        members: Sequence[FakeMember],
        tls: CertPair | None = None,
    ):
        self.inventory = inventory
        self.tokens = tokens
        self.tls = tls
        self.members = {m.identity: m for m in members}
        self.urls: dict[str, str] = {}
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fake-members", daemon=True)

    def __enter__(self) -> Members:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"fake members did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive(), "fake members did not stop"

    def url(self, identity: str) -> str:
        return self.urls[identity]

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
            for m in self.members.values():
                served = await stack.enter_async_context(
                    serve_api(make_app(m, self.tokens), "127.0.0.1:0", self.tls)
                )
                self.urls[m.identity] = served.url
                assert m.dns_table is not None
                server = DnsServer(
                    self.inventory.config.dns,
                    Answers.build(self.inventory, m.dns_table),
                    listen=("127.0.0.1", 0),
                )
                await stack.enter_async_context(server)
                m.dns_listen = f"127.0.0.1:{server.port}"
                m.on_table = lambda t, s=server: s.swap(Answers.build(self.inventory, t))
            leader = next(m for m in self.members.values() if m.role() == "leader")
            for m in self.members.values():
                m.leader = {"identity": leader.identity, "address": self.urls[leader.identity]}
                m.peers = [
                    {"identity": p.identity, "region": p.region, "url": self.urls[p.identity]}
                    for p in self.members.values()
                    if p is not m
                ]
            self._ready.set()
            ticker = asyncio.create_task(self._tick())
            try:
                await self._stop.wait()
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker

    async def _tick(self) -> None:
        while True:
            for m in self.members.values():
                m.tick()
            await asyncio.sleep(0.05)
