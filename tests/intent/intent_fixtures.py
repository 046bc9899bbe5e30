"""Shared pieces of the durable-intent tests: overrides, a simulated cluster, a big table,
hypothesis strategies, and the workers the multi-process tests start."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from multiprocessing.synchronize import Barrier
from pathlib import Path

from hypothesis import strategies as st

from chaos.kubesim import KubeSim
from intent import Ending, FileIntentStore, IntentState, Tombstone
from kube import Client, RetrySettings
from policies import Guardrails, Health, Kind, Override, Policy, Service, Vip, WeightTable, evaluate
from policies.model import Estate

T0 = 1_700_000_000.0
REGIONS = ("dc1", "dc2", "dc3")
FAST = RetrySettings(attempts=10, conflict_attempts=20, backoff=0.002, backoff_max=0.02)
FAST_TIMEOUT = 2.0


def exit_(
    id: str,
    region: str = "dc2",
    *,
    services: frozenset[str] | None = None,
    created: float = T0,
    expires: float | None = None,
    who: str = "alice",
    why: str = "maintenance",
    ticket: str | None = "CHG-1",
) -> Override:
    return Override(id, Kind.EXIT, region, who, why, created, services, ticket, expires)


def drain(id: str, region: str, *services: str, who: str = "bob") -> Override:
    return Override(id, Kind.DRAIN, region, who, f"drain {id}", T0, frozenset(services))


@asynccontextmanager
async def kube(**sim: object) -> AsyncIterator[tuple[KubeSim, Client]]:
    """A simulated cluster and a client on it (quick retries); both closed on the way out."""
    async with KubeSim(host="127.0.0.1", port=0, **sim) as cluster:  # type: ignore[arg-type]
        async with Client(cluster.configuration(), timeout=FAST_TIMEOUT, retry=FAST) as client:
            yield cluster, client


@asynccontextmanager
async def another_client(cluster: KubeSim) -> AsyncIterator[Client]:
    """A second member's own connection to the same cluster."""
    async with Client(cluster.configuration(), timeout=FAST_TIMEOUT, retry=FAST) as client:
        yield client


def big_estate(services: int = 4000, vips: int = 2, seed: int = 7) -> Estate:
    """Services with hashed names and random VIP addresses: less regular than real
    estates, so the table compresses worse than a real one would."""
    rnd = random.Random(seed)
    policy = Policy.uniform("p", REGIONS, guardrails=Guardrails(1, 2))
    kinds = ("api", "web", "pay", "auth", "search", "cart")
    out = []
    for i in range(services):
        name = f"{hashlib.sha256(str(i).encode()).hexdigest()[:10]}-{rnd.choice(kinds)}"
        by_region = {}
        for r in REGIONS:
            addresses = [
                f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
                for _ in range(vips)
            ]
            by_region[r] = tuple(
                Vip(Vip.make_id(name, r, a, 443), name, r, a, 443) for a in addresses
            )
        out.append(Service(name, f"{name}.example.com", policy, by_region))
    return Estate(REGIONS, tuple(out))


def big_table(services: int = 4000, generation: int = 1) -> WeightTable:
    """A real table (the engine's) of `services` services, with dc2 exited."""
    estate = big_estate(services)
    ev = evaluate(estate, Health(), [exit_("x-dc2", created=0.0)], None, 10.0)
    table = ev.table
    return WeightTable(generation, table.computed_at, table.rows)


# --- hypothesis ----------------------------------------------------------------

IDS = tuple("abcdefgh")
_who = st.sampled_from(("alice", "bob", "gtm"))
_time = st.integers(0, 50).map(float)


@st.composite
def overrides(draw: st.DrawFn, ids: tuple[str, ...] = IDS) -> Override:
    kind = draw(st.sampled_from(tuple(Kind)))
    created = draw(_time)
    services = draw(st.none() | st.frozensets(st.sampled_from(("s1", "s2", "s3")), min_size=1))
    if kind is Kind.DRAIN and services is None:
        services = frozenset({"s1"})
    expires = draw(st.none() | st.integers(1, 30).map(lambda d: created + d))
    return Override(
        id=draw(st.sampled_from(ids)),
        kind=kind,
        region=draw(st.sampled_from(REGIONS)),
        who=draw(_who),
        why=draw(st.sampled_from(("maintenance", "incident", "test"))),
        created=created,
        services=services,
        ticket=draw(st.none() | st.just("CHG-7")),
        expires=expires,
        ramp=draw(st.none() | st.just(60.0)),
        force=draw(st.booleans()),
    )


@st.composite
def tombstones(draw: st.DrawFn, ids: tuple[str, ...] = IDS) -> Tombstone:
    ending = draw(st.sampled_from(tuple(Ending)))
    return Tombstone(
        id=draw(st.sampled_from(ids)),
        ending=ending,
        who=draw(_who),
        why=draw(st.sampled_from(("done", "expired", "back"))),
        when=draw(_time),
        by=draw(st.sampled_from(IDS)) if ending is Ending.ENTERED else None,
    )


@st.composite
def states(draw: st.DrawFn) -> IntentState:
    """Any valid state, so different states may hold different overrides under one id."""
    stones = {t.id: t for t in draw(st.lists(tombstones(), max_size=4))}
    held = {o.id: o for o in draw(st.lists(overrides(), max_size=6)) if o.id not in stones}
    return IntentState(held, stones, epoch=draw(st.integers(0, 5)), retired=draw(st.integers(0, 3)))


# --- workers of the multi-process tests (spawned: importable, no closures) -----


def add_many(path: str, prefix: str, count: int, start: Barrier) -> None:
    """Add `count` distinct overrides, one update each, as a separate process would;
    starts when every worker is ready (`start`), so their writes overlap."""

    async def run() -> None:
        start.wait(30)
        store = FileIntentStore(path)
        for i in range(count):
            o = exit_(f"{prefix}-{i}", who=prefix, why=f"change {i}")
            await store.update(lambda s, o=o: s.add(o), epoch=1)

    asyncio.run(run())


def crash_before_link(path: str) -> None:
    """Write a new state and die between the temporary file's fsync and its link."""

    def die(src: object, dst: object) -> None:
        os._exit(17)

    os.link = die  # this process only; it never returns from the update
    store = FileIntentStore(Path(path))
    asyncio.run(
        store.update(lambda s: s.add(exit_("from-the-crash", why="lost in the crash")), epoch=1)
    )
