"""Peers across regions: pull their probe results and their operators' intent.

Every member pulls from one member of each other region (the first that
answers, kept while it answers): its own observations since the last cursor,
fed to the health tracker as that region's vantage, so quorum sees every
vantage; and its intent state, merged into ours (anti-entropy: a region that
missed an override catches up by version). Pull only: a member that is down
or partitioned simply stops being heard, and its vantage's data goes stale.
A member that has just become leader calls `catch_up` to pull every peer's
intent at once rather than at the next tick.

A peer that answers but whose own probing stopped sends nothing new: after
`silent_after` seconds (`expect`: the age at which the tracker stops counting
a vote) the region is reported `silent` (`peer.silent`), and the exchange
moves to the region's other member, whose probes are of the same vantage.
Nothing is fed meanwhile, so the silent vantage's last results age out of the
quorum rather than keep voting; a silent vantage is not a down vote.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gtm.config import PeerConfig
from gtm.service.observation_log import from_row
from intent import IntentState
from probes import Observation

log = structlog.get_logger("gtm.peers")


@dataclass
class _Region:
    region: str
    urls: list[str]
    current: int = 0
    cursor: int = -1  # -1: start from what the peer keeps
    last_ok: float | None = None
    error: str | None = None
    intent_version: int | None = None
    received: int = 0
    newest: float | None = None  # the newest observation's wall time heard from the region
    heard_at: float | None = None  # monotonic: when something newer last came (or pulls began)
    silent: str | None = None  # why the region's vantage is silent; None while results come
    hops: int = 0  # moves to another member while silent, in a row

    @property
    def url(self) -> str:
        return self.urls[self.current % len(self.urls)]


@dataclass(frozen=True)
class PeerSettings:
    interval: float = 1.0  # between observation pulls
    intent_every: float = 2.0  # between intent pulls
    timeout: float = 3.0
    batch: int = 20_000


@dataclass
class PeerExchange:
    """Pulls from the members of other regions (`own_region`'s members are left out:
    the same vantage, and the same store)."""

    own_region: str
    peers: Sequence[PeerConfig]
    token: str | None
    on_observation: Callable[[Observation], None]
    on_intent: Callable[[IntentState, str], Any]  # may be async; called with (state, region)
    settings: PeerSettings = field(default_factory=PeerSettings)
    _regions: dict[str, _Region] = field(default_factory=dict, init=False)
    _catch_up: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _silent_after: float = field(default=math.inf, init=False)

    def __post_init__(self) -> None:
        self._regions = self._group(self.peers)

    def _group(self, peers: Sequence[PeerConfig]) -> dict[str, _Region]:
        out: dict[str, _Region] = {}
        for p in peers:
            if p.region != self.own_region:
                out.setdefault(p.region, _Region(p.region, [])).urls.append(p.url.rstrip("/"))
        return out

    def update(self, peers: Sequence[PeerConfig]) -> None:
        """New peers from a reloaded config; cursors of regions kept are kept."""
        self.peers = peers
        fresh = self._group(peers)
        for name, r in fresh.items():
            old = self._regions.get(name)
            if old is not None and old.urls == r.urls:
                fresh[name] = old
        self._regions = fresh

    def expect(self, silent_after: float) -> None:
        """A region whose member sends no new observation for `silent_after` seconds is silent."""
        self._silent_after = silent_after

    def status(self) -> dict[str, dict[str, Any]]:
        return {
            r.region: {
                "url": r.url,
                "last_ok": r.last_ok,
                "error": r.error,
                "observations": r.received,
                "intent_version": r.intent_version,
                "newest": r.newest,
                "silent": r.silent,
            }
            for r in self._regions.values()
        }

    def catch_up(self) -> None:
        """Pull every peer's intent now, not at the next tick (a new leader's first look)."""
        self._catch_up.set()

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            last_intent = -math.inf  # the first round pulls intent too
            while True:
                started = time.monotonic()
                pull_intent = (
                    self._catch_up.is_set() or started - last_intent >= self.settings.intent_every
                )
                if pull_intent:
                    last_intent = started
                    self._catch_up.clear()
                await asyncio.gather(
                    *(self._pull(session, r, pull_intent) for r in list(self._regions.values()))
                )
                pause = max(0.0, self.settings.interval - (time.monotonic() - started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._catch_up.wait(), pause)

    async def _pull(self, session: aiohttp.ClientSession, r: _Region, pull_intent: bool) -> None:
        fresh = False
        try:
            more = True
            while more:
                async with session.get(
                    f"{r.url}/v1/observations",
                    params={"since": str(r.cursor), "limit": str(self.settings.batch)},
                ) as resp:
                    resp.raise_for_status()
                    doc = await resp.json()
                rows = doc["observations"]
                for row in rows:
                    obs = from_row(row, r.region)
                    if r.newest is None or obs.wall > r.newest:
                        r.newest = obs.wall
                        fresh = True
                    self.on_observation(obs)
                r.received += len(rows)
                r.cursor = int(doc["next"])
                more = len(rows) >= self.settings.batch
            if pull_intent:
                async with session.get(f"{r.url}/v1/overrides") as resp:
                    resp.raise_for_status()
                    state = IntentState.from_dict(await resp.json())
                r.intent_version = state.version
                result = self.on_intent(state, r.region)
                if asyncio.iscoroutine(result):
                    await result
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as e:
            reason = f"{type(e).__name__}: {e}"
            if r.error != reason:
                log.warning("peer.unreachable", region=r.region, url=r.url, reason=reason)
            r.error = reason
            if len(r.urls) > 1:
                r.current += 1  # try the region's other member next time
                r.cursor = -1
            return
        if r.error is not None:
            log.info("peer.reachable", region=r.region, url=r.url)
        r.error = None
        r.last_ok = time.time()
        self._heard(r, fresh)

    def _heard(self, r: _Region, fresh: bool) -> None:
        """After a pull that answered: is the region's vantage still sending results?"""
        now = time.monotonic()
        if fresh or r.heard_at is None:
            if fresh and r.silent is not None:
                log.info("peer.heard_again", region=r.region, url=r.url)
                r.silent = None
            if fresh:
                r.hops = 0
            r.heard_at = now
            return
        quiet = now - r.heard_at
        # after each move to a member that proves silent too, wait twice as long (at most 32x)
        if quiet <= self._silent_after * 2 ** min(r.hops, 5):
            return
        cause = f"no new observation from {r.url} for {quiet:.1f}s"
        if r.silent is None:
            log.warning("peer.silent", region=r.region, url=r.url, cause=cause)
        r.silent = cause
        if len(r.urls) > 1:
            r.current += 1  # the region's other member probes from the same vantage
            r.cursor = -1
            r.hops += 1
            r.heard_at = now  # its grace starts now
            log.info("peer.switched", region=r.region, url=r.url, reason="silent")


class PeersCollector(Collector):
    """The exchange with each other region, as Prometheus scrapes it."""

    def __init__(self, exchange: PeerExchange) -> None:
        self._exchange = exchange

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        reachable = GaugeMetricFamily(
            "gtm_peer_reachable",
            "1 while the last pull from the region's member answered; 0: it failed (its "
            "vantage and its operators' intent do not reach this member)",
            labels=["region"],
        )
        contact = GaugeMetricFamily(
            "gtm_peer_last_contact_timestamp_seconds",
            "When a pull from the region's member last answered (0: never)",
            labels=["region"],
        )
        silent = GaugeMetricFamily(
            "gtm_peer_silent",
            "1 while the region's member answers but sends no new probe result (its own "
            "probing stopped: its vantage ages out of the quorum)",
            labels=["region"],
        )
        for region, state in sorted(self._exchange.status().items()):
            reachable.add_metric([region], 0.0 if state["error"] else 1.0)
            contact.add_metric([region], state["last_ok"] or 0.0)
            silent.add_metric([region], 1.0 if state["silent"] else 0.0)
        yield from (reachable, contact, silent)
