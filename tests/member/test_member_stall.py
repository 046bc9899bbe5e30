"""A checker that dies must not look healthy: real members of dc1 (`api_members.Members`),
one of which has its probe scheduler cancelled under it while the member runs on.

Within three probe intervals (plus the timeout and a watch tick) its `/readyz` says not
ready and why, `/v1/status` carries the cause, `gtm_probes_stalled` is 1; its partner is
unaffected; a peer of another region pulling from the pair moves to the partner and keeps
counting dc1's vantage, and a peer that can only pull from the stalled member stops
counting it (its votes age out: no verdict, never a down vote).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from api_members import PEER, VIEWER, Members
from prometheus_client.parser import text_string_to_metric_families

from gtm.config import PeerConfig
from gtm.member import MemberRuntime
from gtm.service.peers import PeerExchange, PeerSettings
from gtm.service.probing import health_settings, probe_targets
from probes import HealthTracker

INTERVAL = 0.5
STALE = 3 * INTERVAL + 0.2  # stale_intervals x interval + timeout (`api_members.estate`)
BOUND = STALE + 4.0  # generous: the members share two cores with other tests


async def _cancel_scheduler(runtime: MemberRuntime) -> None:
    """The fault: this member's probe scheduler task ends; nothing else of it does."""
    for task in asyncio.all_tasks():
        frame = task.get_coro().cr_frame  # type: ignore[union-attr]
        if task.get_name() == "scheduler" and frame is not None:
            if frame.f_locals.get("self") is runtime._scheduler:
                task.cancel()
                return
    raise AssertionError("no scheduler task of this member")


class Peer:
    """A member of dc2, as far as pulling dc1's observations into its own tracker goes."""

    def __init__(self, members: Members, identities: list[str]) -> None:
        inventory = members.members["dc1-a"].inventory
        self.targets = probe_targets(inventory)
        self.tracker = HealthTracker(health_settings(inventory.config.health))
        self.tracker.set_targets(self.targets, time.time())
        self.exchange = PeerExchange(
            own_region="dc2",
            peers=[PeerConfig(region="dc1", url=members.url(i)) for i in identities],
            token=PEER,
            on_observation=lambda obs: self.tracker.observe(obs, time.time()),
            on_intent=lambda state, region: None,
            settings=PeerSettings(interval=0.1),
        )
        self.exchange.expect(STALE)

    def dc1_votes(self) -> list[tuple[str, bool]]:
        """(state, stale) of dc1's vote on every target, as of now."""
        self.tracker.advance(time.time())
        out = []
        for t in self.targets:
            out += [(v.state, v.stale) for v in self.tracker.votes(t.id) if v.vantage == "dc1"]
        return out

    def counts_dc1(self) -> bool:
        votes = self.dc1_votes()
        return len(votes) == len(self.targets) and not any(stale for _, stale in votes)

    def url(self) -> str:
        return self.exchange.status()["dc1"]["url"]


@contextlib.asynccontextmanager
async def pulling(peers: list[Peer]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(p.exchange.run()) for p in peers]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def until(check: object, within: float, what: str) -> float:
    started = time.monotonic()
    while not await check():  # type: ignore[operator]
        assert time.monotonic() - started < within, f"{what} did not happen in {within:g}s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_member_whose_probing_stops_says_so_and_peers_stop_counting_it(
    tmp_path: Path,
) -> None:
    with Members(tmp_path / "pair", ["dc1-a", "dc1-b"], probe_interval=INTERVAL) as members:
        a = members.members["dc1-a"]
        auth = {"Authorization": f"Bearer {VIEWER}"}
        both, lone = Peer(members, ["dc1-a", "dc1-b"]), Peer(members, ["dc1-a"])
        async with aiohttp.ClientSession(headers=auth) as session, pulling([both, lone]):

            async def get(identity: str, path: str) -> tuple[int, str]:
                async with session.get(members.url(identity) + path) as r:
                    return r.status, await r.text()

            async def status(identity: str) -> dict:  # type: ignore[type-arg]
                async with session.get(members.url(identity) + "/v1/status") as r:
                    return await r.json()  # type: ignore[no-any-return]

            async def counting() -> bool:
                return (
                    both.counts_dc1() and lone.counts_dc1() and both.url() == members.url("dc1-a")
                )

            await until(counting, 20.0, "both peers counting dc1's vantage from dc1-a")

            async def dc1_sees_all_down() -> bool:  # nothing listens at the VIPs
                return all(h.state == "down" for h in lone.tracker.view().vips.values())

            await until(dc1_sees_all_down, 20.0, "dc1's vantage voting every VIP down")
            assert (await get("dc1-a", "/readyz"))[0] == 200
            before = await status("dc1-a")
            assert before["unready"] == [] and before["prober"]["stalled"] is None
            assert before["prober"]["newest_age"] < STALE

            fault = asyncio.run_coroutine_threadsafe(_cancel_scheduler(a), members._loop)  # type: ignore[arg-type]
            await asyncio.wrap_future(fault)

            async def not_ready() -> bool:
                return (await get("dc1-a", "/readyz"))[0] == 503

            took = await until(not_ready, BOUND, "dc1-a not ready")
            code, body = await get("dc1-a", "/readyz")
            assert code == 503 and "own probing stopped: scheduler stopped (cancelled)" in body
            after = await status("dc1-a")
            assert after["ready"] is False
            assert after["unready"] == ["own probing stopped: scheduler stopped (cancelled)"]
            assert after["prober"]["stalled"] == "scheduler stopped (cancelled)"
            _, metrics = await get("dc1-a", "/metrics")
            samples = {
                s.name: s.value for f in text_string_to_metric_families(metrics) for s in f.samples
            }
            assert samples["gtm_probes_stalled"] == 1.0
            # the partner probes on, ready
            assert (await get("dc1-b", "/readyz"))[0] == 200
            assert (await status("dc1-b"))["prober"]["stalled"] is None

            # a peer that can ask the partner moves to it and keeps counting dc1's vantage
            async def moved() -> bool:
                return both.url() == members.url("dc1-b") and both.counts_dc1()

            await until(moved, STALE + BOUND, "the peer moving to dc1-b")

            # a peer that cannot: dc1's last results age out, none is a down vote
            async def aged_out() -> bool:
                votes = lone.dc1_votes()
                return bool(votes) and all(stale for _, stale in votes)

            await until(aged_out, STALE + BOUND, "dc1's votes aging out")
            assert lone.exchange.status()["dc1"]["silent"] is not None
            view = lone.tracker.view()
            assert all(h.state == "unknown" and h.down_votes == 0 for h in view.vips.values())
            assert took < BOUND
