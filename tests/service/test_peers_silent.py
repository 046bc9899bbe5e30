"""A peer that answers but whose probing stopped: its region is reported silent, the
exchange moves to the region's other member, and nothing old is fed as new."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from structlog.testing import capture_logs
from test_peers import FakePeer, serving, until

from gtm.config import PeerConfig
from gtm.service.peers import PeerExchange, PeerSettings
from probes import Observation

SILENT_AFTER = 0.4


class Probing:
    """Appends a fresh observation to a fake peer's log every `every` seconds, until stopped."""

    def __init__(self, peer: FakePeer, every: float = 0.05) -> None:
        self.peer = peer
        self.every = every
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            now = time.time()
            self.peer.log.append(Observation("foo/dc2/a:1", "dc2", True, 0.001, now, now, "ok"))
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@contextlib.asynccontextmanager
async def exchange_of(urls: list[str]) -> AsyncIterator[tuple[PeerExchange, list[Observation]]]:
    seen: list[Observation] = []
    exchange = PeerExchange(
        own_region="dc1",
        peers=[PeerConfig(region="dc2", url=u) for u in urls],
        token=None,
        on_observation=seen.append,
        on_intent=lambda state, region: None,
        settings=PeerSettings(interval=0.05),
    )
    exchange.expect(SILENT_AFTER)
    task = asyncio.create_task(exchange.run())
    try:
        yield exchange, seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_member_whose_probing_stopped_gives_way_to_the_region_s_other_member() -> None:
    a, b = FakePeer(), FakePeer()
    probing_a, probing_b = Probing(a), Probing(b)
    probing_a.start()
    probing_b.start()
    try:
        async with (
            serving(a) as url_a,
            serving(b) as url_b,
            exchange_of([url_a, url_b]) as (exchange, seen),
        ):
            await until(lambda: len(seen) >= 3)
            assert exchange.status()["dc2"]["url"] == url_a  # kept while it answers
            with capture_logs() as logs:
                await probing_a.stop()  # a's API answers on, with nothing new
                stopped = time.monotonic()
                await until(lambda: exchange.status()["dc2"]["url"] == url_b, within=5.0)
                took = time.monotonic() - stopped
                heard = len(seen)
                await until(lambda: len(seen) > heard + 3)  # b's results flow in
            status = exchange.status()["dc2"]
            assert status["silent"] is None and status["error"] is None
            assert took >= SILENT_AFTER * 0.9  # silence, not a hiccup, moves it
            events = [e["event"] for e in logs if e["event"].startswith("peer.")]
            assert events[:3] == ["peer.silent", "peer.switched", "peer.heard_again"]
    finally:
        await probing_a.stop()
        await probing_b.stop()


async def test_a_lone_silent_member_is_reported_and_its_old_rows_are_not_news() -> None:
    peer = FakePeer()
    probing = Probing(peer)
    probing.start()
    async with serving(peer) as url, exchange_of([url]) as (exchange, seen):
        await until(lambda: len(seen) >= 3)
        assert exchange.status()["dc2"]["silent"] is None
        await probing.stop()
        newest = exchange.status()["dc2"]["newest"]
        await until(lambda: exchange.status()["dc2"]["silent"] is not None, within=5.0)
        status = exchange.status()["dc2"]
        assert status["url"] == url and status["error"] is None  # answering, and silent
        assert "no new observation" in status["silent"]
        assert status["newest"] == newest
        # the peer restarts its log: the same old rows again are no news
        heard = len(seen)
        for o in list(seen[-3:]):
            peer.log.append(o)
        await until(lambda: len(seen) >= heard + 3)
        await asyncio.sleep(0.2)
        assert exchange.status()["dc2"]["silent"] is not None
        probing.start()  # probing is back
        await until(lambda: exchange.status()["dc2"]["silent"] is None, within=5.0)
    await probing.stop()
