"""Two members on one lease, in real time, on both backends (a file; a Lease on the simulated API).

A journal samples `require_leader()` of every member every 5 ms — what each
write does first — and checks that the writers never overlap and that the
epoch only rises.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from election_backends import Backends
from election_harness import (
    Entry,
    FreezableProxy,
    Pair,
    ThreadedMember,
    assert_one_writer_at_a_time,
    eventually,
)

from chaos.kubesim import Faults
from gtm.ha import Elector

SLACK = 0.25  # scheduling slack on a loaded machine


async def pair(backends: Backends, **overrides: float) -> Pair:
    return Pair(
        {
            name: Elector(await backends.make(), backends.settings(name, **overrides))
            for name in ("dc1-a", "dc1-b")
        }
    )


def other(name: str) -> str:
    return "dc1-b" if name == "dc1-a" else "dc1-a"


async def test_exactly_one_member_leads(backends: Backends) -> None:
    async with await pair(backends) as members:
        leader = await members.wait_leader(2)
        follower = other(leader)
        await asyncio.sleep(backends.settings("x").duration * 1.5)  # several renewals
        assert members.leaders() == [leader]
        assert members.electors[leader].epoch == 1
        holder = members.electors[follower].leader()
        assert holder is not None
        assert (holder.identity, holder.address) == (leader, f"http://{leader}.test:8080")
    assert_one_writer_at_a_time(members.journal.entries)
    assert {e.member for e in members.journal.entries} == {leader}


async def test_a_killed_leader_is_replaced_within_one_lease_duration(backends: Backends) -> None:
    settings = backends.settings("x")
    async with await pair(backends) as members:
        leader = await members.wait_leader(2)
        epoch = members.electors[leader].require_leader()
        await members.kill(leader)  # no release
        killed = time.monotonic()
        successor = await members.wait_leader(
            settings.duration + settings.retry_period + SLACK, other_than=leader
        )
        took = time.monotonic() - killed
        assert successor == other(leader)
        assert members.electors[successor].epoch == epoch + 1
        assert took > settings.duration - settings.retry_period - SLACK, "it waited for expiry"
    assert_one_writer_at_a_time(members.journal.entries)


async def test_a_released_lease_is_taken_over_at_once(backends: Backends) -> None:
    settings = backends.settings("x")
    async with await pair(backends) as members:
        leader = await members.wait_leader(2)
        epoch = members.electors[leader].require_leader()
        await members.electors[leader].release()
        released = time.monotonic()
        successor = await members.wait_leader(settings.retry_period + SLACK, other_than=leader)
        assert time.monotonic() - released < settings.duration / 2
        assert members.electors[successor].epoch == epoch + 1
        await asyncio.wait_for(members.tasks[leader], 1)  # run() ends after release
    assert_one_writer_at_a_time(members.journal.entries)


async def test_a_leader_whose_api_fails_stops_by_the_renew_deadline_before_takeover(
    backends: Backends,
) -> None:
    """500s on every write (kube) or a disk that fails every write (file)."""
    settings = backends.settings("x")
    async with await pair(backends) as members:
        leader = await members.wait_leader(2)
        elector = members.electors[leader]
        epoch = elector.require_leader()
        async with broken_writes(backends):
            broken = time.monotonic()
            await asyncio.wait_for(elector.wait_not_leading(), settings.renew_deadline + SLACK)
            assert time.monotonic() - broken <= settings.renew_deadline + SLACK
            assert members.leaders() == []
            await asyncio.sleep(settings.duration - settings.renew_deadline + SLACK)
        successor = await members.wait_leader(settings.duration + 1)
        assert members.electors[successor].epoch == epoch + 1
    entries = members.journal.entries
    assert_one_writer_at_a_time(entries)
    last_old = max(e.at for e in entries if e.epoch == epoch)
    first_new = min(e.at for e in entries if e.epoch == epoch + 1)
    assert last_old < first_new
    assert first_new - last_old > settings.duration - settings.renew_deadline - SLACK


@asynccontextmanager
async def broken_writes(backends: Backends) -> AsyncIterator[None]:
    if backends.kind == "kube":
        assert backends.sim is not None
        backends.sim.faults.set(Faults(error_rate=1.0, verbs=("update", "create"), seed=1))
        try:
            yield
        finally:
            backends.sim.faults.clear()
        return
    real_link = os.link

    def failing_disk(src: str, dst: str) -> None:
        if os.path.basename(dst).startswith(backends.path.name):
            raise OSError(errno.EIO, "Input/output error")
        real_link(src, dst)

    os.link = failing_disk  # type: ignore[assignment]
    try:
        yield
    finally:
        os.link = real_link


async def test_a_leader_whose_api_hangs_stops_by_the_renew_deadline(sim_backends: Backends) -> None:
    """Latency fault (longer than the renew deadline) on the simulated server: every call hangs."""
    settings = sim_backends.settings("x")
    assert sim_backends.sim is not None
    async with await pair(sim_backends) as members:
        leader = await members.wait_leader(2)
        sim_backends.sim.faults.set(Faults(latency=settings.duration * 2, seed=1))
        hung = time.monotonic()
        await asyncio.wait_for(
            members.electors[leader].wait_not_leading(), settings.renew_deadline + SLACK
        )
        assert time.monotonic() - hung <= settings.renew_deadline + SLACK
        await asyncio.sleep(settings.duration - settings.renew_deadline)
        sim_backends.sim.faults.clear()
        await members.wait_leader(settings.duration + 1)
    assert_one_writer_at_a_time(members.journal.entries)


async def test_a_leader_cut_off_from_the_api_stops_before_the_standby_takes_over(
    sim_backends: Backends,
) -> None:
    """Only the leader's connection hangs (a TCP relay that stops passing bytes)."""
    settings = sim_backends.settings("x")
    sim = sim_backends.sim
    assert sim is not None
    async with FreezableProxy(sim.host, sim.port) as proxy:
        a = Elector(await sim_backends.make(proxy.url), sim_backends.settings("dc1-a"))
        async with Pair({"dc1-a": a}) as first:
            await first.wait_leader(2)
        b = Elector(await sim_backends.make(), sim_backends.settings("dc1-b"))
        async with Pair({"dc1-a": a, "dc1-b": b}) as members:
            await members.wait_leader(2)
            assert members.leaders() == ["dc1-a"]
            epoch = a.require_leader()  # 2: its run() restarted, which is a new term
            proxy.freeze()
            await members.wait_leader(
                settings.duration + settings.retry_period + SLACK, other_than="dc1-a"
            )
            proxy.thaw()
            await asyncio.sleep(settings.retry_period * 2)
            assert members.leaders() == ["dc1-b"]
            assert b.epoch == epoch + 1
    entries = members.journal.entries
    assert_one_writer_at_a_time(entries)
    last_a = max(e.at for e in entries if e.member == "dc1-a")
    first_b = min(e.at for e in entries if e.member == "dc1-b")
    assert last_a < first_b
    assert first_b - last_a > settings.duration - settings.renew_deadline - SLACK


async def test_a_paused_leader_wakes_up_knowing_it_lost(backends: Backends) -> None:
    """The leader's whole event loop stops (as under SIGSTOP) past the lease; then resumes."""
    settings = backends.settings("x")
    entries: list[Entry] = []
    paused = ThreadedMember("dc1-a", backends.open, backends.settings("dc1-a"), entries)
    paused.start()
    try:
        await eventually(lambda: any(e.member == "dc1-a" for e in entries), 2)
        b = Elector(await backends.make(), backends.settings("dc1-b"))
        async with Pair({"dc1-b": b}) as members:
            freeze = settings.duration + 3 * settings.retry_period
            paused.freeze(freeze)
            frozen = time.monotonic()
            await members.wait_leader(freeze + SLACK)
            assert b.epoch == max(e.epoch for e in entries if e.member == "dc1-a") + 1
            await asyncio.sleep(max(0.0, frozen + freeze - time.monotonic()) + 0.3)
            assert paused.elector is not None
            assert not paused.elector.is_leader()
            holder = paused.elector.leader()
            assert holder is not None and holder.identity == "dc1-b"
            assert b.is_leader()
            entries.extend(members.journal.entries)
    finally:
        await paused.stop()
    assert_one_writer_at_a_time(entries)
    first_b = min(e.at for e in entries if e.member == "dc1-b")
    assert all(e.at < first_b for e in entries if e.member == "dc1-a")
