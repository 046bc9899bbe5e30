"""Work tied to leadership: `leading()`, `wait_leading()`, `wait_not_leading()`, `changes()`."""

from __future__ import annotations

import asyncio

import pytest
from election_harness import MemoryLease, eventually

from gtm.ha import ElectionSettings, Elector, LeaderChange, LeadershipLost
from probes.clock import ManualClock


def member(lease: MemoryLease, clock: ManualClock, name: str) -> Elector:
    return Elector(lease, ElectionSettings(name, address=f"http://{name}"), clock=clock)


@pytest.fixture
def lease() -> MemoryLease:
    return MemoryLease()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


async def test_the_body_waits_for_leadership_and_is_cancelled_when_the_term_ends(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a = member(lease, clock, "dc1-a")
    started = asyncio.Event()
    stopped: list[str] = []

    async def work() -> None:
        async with a.leading() as term:
            assert term.epoch == 1 and a.is_leader()
            started.set()
            try:
                await asyncio.Event().wait()
            finally:
                stopped.append("cleanup ran")

    task = asyncio.create_task(work())
    await asyncio.sleep(0.01)
    assert not started.is_set(), "no work before leading"
    await a.attempt()
    await asyncio.wait_for(started.wait(), 1)
    await clock.advance(10)  # renewals stopped: the deadline passes
    await a.attempt()  # the loop notices and announces the end of the term
    with pytest.raises(LeadershipLost) as lost:
        await asyncio.wait_for(task, 1)
    assert lost.value.term.epoch == 1
    assert stopped == ["cleanup ran"]


async def test_a_crashing_body_steps_down_so_the_standby_takes_over_at_once(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a, b = member(lease, clock, "dc1-a"), member(lease, clock, "dc1-b")
    await a.attempt()
    with pytest.raises(ZeroDivisionError):
        async with a.leading():
            _ = 1 / 0
    assert not a.is_leader()
    assert lease.record is not None and lease.record.holder is None
    await clock.advance(0.1)
    await a.attempt()
    assert not a.is_leader(), "it does not take back the lease it gave up"
    await b.attempt()
    assert b.is_leader() and b.epoch == 2


async def test_a_body_that_returns_leaves_leadership_as_it_is(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a = member(lease, clock, "dc1-a")
    await a.attempt()
    async with a.leading() as term:
        pass
    assert a.is_leader() and a.epoch == term.epoch


async def test_a_cancellation_from_outside_propagates_without_stepping_down(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a = member(lease, clock, "dc1-a")
    await a.attempt()
    inside = asyncio.Event()

    async def work() -> None:
        async with a.leading():
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(work())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert a.is_leader()
    assert lease.record is not None and lease.record.holder == "dc1-a"


async def test_release_from_another_task_ends_the_body(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a = member(lease, clock, "dc1-a")
    await a.attempt()
    inside = asyncio.Event()

    async def work() -> None:
        async with a.leading():
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(work())
    await inside.wait()
    await a.release()  # the SIGTERM handler
    with pytest.raises(LeadershipLost):
        await task
    assert lease.record is not None and lease.record.holder is None


async def test_release_from_inside_the_body_completes(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a = member(lease, clock, "dc1-a")
    await a.attempt()
    async with a.leading():
        await a.release()
        await asyncio.sleep(0)  # not cancelled
    assert lease.record is not None and lease.record.holder is None


async def test_wait_leading_and_wait_not_leading(lease: MemoryLease, clock: ManualClock) -> None:
    a = member(lease, clock, "dc1-a")
    await asyncio.wait_for(a.wait_not_leading(), 0.1)
    leading = asyncio.create_task(a.wait_leading())
    await a.attempt()
    term = await asyncio.wait_for(leading, 1)
    assert term.epoch == 1 and term.identity == "dc1-a" and term.address == "http://dc1-a"
    not_leading = asyncio.create_task(a.wait_not_leading())
    await asyncio.sleep(0.01)
    assert not not_leading.done()
    await clock.advance(10)
    await asyncio.wait_for(a.wait_not_leading(), 0.1)  # is_leader() is false already
    assert not not_leading.done()
    await a.attempt()  # the loop's round at the deadline announces the end: waiters wake
    await asyncio.wait_for(not_leading, 0.1)
    assert a.epoch == 2  # no one else around: it retook the lease for a new term


async def test_the_change_feed_in_real_time(lease: MemoryLease) -> None:
    settings = {"duration": 0.3, "renew_deadline": 0.2, "retry_period": 0.05}
    a = Elector(lease, ElectionSettings("dc1-a", address="http://a", **settings))
    b = Elector(lease, ElectionSettings("dc1-b", address="http://b", **settings))
    seen: list[LeaderChange] = []

    async def follow() -> None:
        with b.changes() as feed:
            async for change in feed:
                seen.append(change)

    async with asyncio.TaskGroup() as tasks:
        follower = tasks.create_task(follow())
        run_a = tasks.create_task(a.run())
        await eventually(a.is_leader, 1)
        run_b = tasks.create_task(b.run())
        await eventually(lambda: len(seen) == 1, 1)
        await a.release()
        await eventually(b.is_leader, 1)
        await b.release()
        await asyncio.wait_for(asyncio.gather(run_a, run_b), 1)
        follower.cancel()
    assert seen == [
        LeaderChange(leading=False, epoch=1, holder="dc1-a", address="http://a"),
        # the free lease is read and taken in one round: no change in between
        LeaderChange(leading=True, epoch=2, holder="dc1-b", address="http://b"),
        LeaderChange(leading=False, epoch=2, holder="dc1-b", address="http://b"),  # stopped
        LeaderChange(leading=False, epoch=2, holder=None, address=None),  # handed back
    ]
