"""Pulling from the members of other regions: observations by cursor, intent by version."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from gtm.config import PeerConfig
from gtm.service.observation_log import ObservationLog
from gtm.service.peers import PeerExchange, PeerSettings
from intent import IntentState
from probes import Observation


@dataclass
class FakePeer:
    """A member of another region, as far as its /v1/observations and /v1/overrides go."""

    log: ObservationLog = field(default_factory=lambda: ObservationLog(capacity=1000))
    intent: IntentState = field(default_factory=IntentState)
    tokens: list[str | None] = field(default_factory=list)
    cursors: list[str] = field(default_factory=list)
    intent_pulls: int = 0

    async def observations(self, request: web.Request) -> web.Response:
        self.tokens.append(request.headers.get("Authorization"))
        self.cursors.append(request.query["since"])
        rows, nxt = self.log.since(int(request.query["since"]), int(request.query["limit"]))
        return web.json_response({"observations": rows, "next": nxt})

    async def overrides(self, request: web.Request) -> web.Response:
        self.intent_pulls += 1
        return web.json_response(self.intent.to_dict())


@contextlib.asynccontextmanager
async def serving(peer: FakePeer) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/v1/observations", peer.observations)
    app.router.add_get("/v1/overrides", peer.overrides)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed


def obs(i: int) -> Observation:
    return Observation(f"foo/dc2/127.0.2.1:{18000 + i}", "dc2", True, 0.001, 1e9 + i, 1e9 + i, "ok")


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - the state is in the exchange, no event to await
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def exchanging(
    urls: list[str], **settings: float
) -> AsyncIterator[tuple[PeerExchange, list[Observation], list[tuple[IntentState, str]]]]:
    seen: list[Observation] = []
    intents: list[tuple[IntentState, str]] = []
    exchange = PeerExchange(
        own_region="dc1",
        peers=[PeerConfig(region="dc1", url="http://127.0.0.1:9")]
        + [PeerConfig(region="dc2", url=u) for u in urls],
        token="peer-token",
        on_observation=seen.append,
        on_intent=lambda state, region: intents.append((state, region)),
        settings=PeerSettings(**settings),
    )
    task = asyncio.create_task(exchange.run())
    try:
        yield exchange, seen, intents
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_observations_arrive_as_the_peer_region_vantage_by_cursor() -> None:
    peer = FakePeer()
    for i in range(3):
        peer.log.append(obs(i))
    async with serving(peer) as url, exchanging([url], interval=0.05) as (exchange, seen, _):
        await until(lambda: len(seen) == 3)
        peer.log.append(obs(3))
        await until(lambda: len(seen) == 4)
        assert {o.vantage for o in seen} == {"dc2"}  # the peer's region, not ours
        assert [o.target_id for o in seen] == [obs(i).target_id for i in range(4)]
        assert peer.cursors[0] == "-1" and "3" in peer.cursors  # asked from where it left off
        assert set(peer.tokens) == {"Bearer peer-token"}
        assert "dc1" not in exchange.status()  # our own region is not a peer
        assert exchange.status()["dc2"]["observations"] == 4


async def test_a_new_leader_catches_up_on_intent_at_once() -> None:
    peer = FakePeer()
    async with (
        serving(peer) as url,
        exchanging([url], interval=0.05, intent_every=3600) as (exchange, _, intents),
    ):
        await until(lambda: peer.intent_pulls == 1)  # the first round pulls intent too
        await until(lambda: len(peer.cursors) >= 10)  # observation rounds go on
        assert peer.intent_pulls == 1  # the next intent pull is an hour away
        exchange.catch_up()
        await until(lambda: peer.intent_pulls == 2)
        assert intents[-1][1] == "dc2"


async def test_an_unreachable_member_gives_way_to_the_region_s_other_member() -> None:
    peer = FakePeer()
    peer.log.append(obs(0))
    async with (
        serving(peer) as url,
        exchanging([closed_port_url(), url], interval=0.05) as (exchange, seen, _),
    ):
        await until(lambda: len(seen) == 1)
        assert exchange.status()["dc2"]["url"] == url
        assert exchange.status()["dc2"]["error"] is None


@pytest.mark.parametrize("body", [{"observations": [["x"]], "next": 1}, {"nope": 1}])
async def test_a_peer_s_bad_answer_is_an_error_not_a_crash(body: dict[str, object]) -> None:
    app = web.Application()

    async def bad(request: web.Request) -> web.Response:
        return web.json_response(body)

    app.router.add_get("/v1/observations", bad)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with exchanging([url], interval=0.05) as (exchange, seen, _):
            await until(lambda: exchange.status()["dc2"]["error"] is not None)
            assert seen == []
            assert (
                "ValueError" in exchange.status()["dc2"]["error"]
                or "KeyError" in (exchange.status()["dc2"]["error"])
            )
    finally:
        await runner.cleanup()
