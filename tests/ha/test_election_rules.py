"""The election's rules, stepped by hand on a manual clock over an in-memory lease.

Members share one wall clock (as on one host or with NTP); a member that is
"paused" is simply one whose `attempt()` is not called while time moves on.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from election_harness import MemoryLease
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from gtm.ha import (
    ElectionSettings,
    Elector,
    LeaderChange,
    LeaseRecord,
    LeaseUnavailable,
    NotLeader,
)
from probes.clock import ManualClock

# duration 15, renew deadline 10, retry 2 (the config defaults)


def member(
    lease: MemoryLease,
    clock: ManualClock,
    name: str,
    registry: CollectorRegistry | None = None,
    **settings: float,
) -> Elector:
    return Elector(
        lease,
        ElectionSettings(name, address=f"http://{name}:8080", **settings),
        clock=clock,
        registry=registry,
    )


@pytest.fixture
def lease() -> MemoryLease:
    return MemoryLease()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


async def test_first_member_takes_a_missing_lease_with_epoch_one(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a, b = member(lease, clock, "dc1-a"), member(lease, clock, "dc1-b")
    await a.attempt()
    await b.attempt()

    assert a.is_leader() and not b.is_leader()
    assert a.epoch == 1 and a.require_leader() == 1 and b.epoch is None
    assert lease.record is not None
    assert lease.record.holder == "dc1-a"
    assert lease.record.address == "http://dc1-a:8080"
    assert lease.record.transitions == 1
    assert lease.record.acquire_time == lease.record.renew_time == clock.now()
    holder = b.leader()
    assert holder is not None
    assert (holder.identity, holder.address, holder.epoch) == ("dc1-a", "http://dc1-a:8080", 1)
    assert holder.expires_at == clock.now() + timedelta(seconds=15)
    with pytest.raises(NotLeader, match="dc1-a at http://dc1-a:8080"):
        b.require_leader()


async def test_renewal_keeps_the_epoch_and_moves_the_renew_time(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a = member(lease, clock, "dc1-a")
    await a.attempt()
    assert lease.record is not None
    acquired = lease.record.acquire_time
    for _ in range(20):  # 40 s of renewals: far past one renew deadline
        await clock.advance(2)
        await a.attempt()
        assert a.is_leader()
    assert lease.record.transitions == 1 and a.epoch == 1
    assert lease.record.acquire_time == acquired
    assert lease.record.renew_time == clock.now()


async def test_a_held_lease_is_taken_only_after_it_expires(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a, b = member(lease, clock, "dc1-a"), member(lease, clock, "dc1-b")
    await a.attempt()
    await clock.advance(15)  # renew time + duration == now: still held
    await b.attempt()
    assert not b.is_leader()
    await clock.advance(0.001)
    await b.attempt()
    assert b.is_leader() and b.epoch == 2


async def test_a_paused_leader_stops_at_the_renew_deadline_and_resumes_as_follower(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a, b = member(lease, clock, "dc1-a"), member(lease, clock, "dc1-b")
    await a.attempt()
    with a.changes() as feed:
        await clock.advance(9.999)  # a is paused: no attempt() while time moves
        assert a.is_leader()
        await clock.advance(0.001)
        assert not a.is_leader(), "the deadline holds without the loop running"
        assert a.epoch is None
        with pytest.raises(NotLeader):
            a.require_leader()
        await clock.advance(5.001)
        await b.attempt()  # the lease expired: b takes it
        assert b.is_leader() and b.epoch == 2
        await a.attempt()  # a wakes up: it sees b and does not act
        assert not a.is_leader()
        holder = a.leader()
        assert holder is not None and holder.identity == "dc1-b" and holder.epoch == 2
        assert feed.pending() == [
            LeaderChange(leading=False, epoch=1, holder="dc1-a", address="http://dc1-a:8080"),
            LeaderChange(leading=False, epoch=2, holder="dc1-b", address="http://dc1-b:8080"),
        ]
    assert lease.record is not None and lease.record.holder == "dc1-b"


async def test_retaking_its_own_lease_after_a_lapse_starts_a_new_epoch(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a = member(lease, clock, "dc1-a")
    await a.attempt()
    await clock.advance(12)  # past the renew deadline, before expiry; nobody else took it
    assert not a.is_leader()
    await a.attempt()
    assert a.is_leader()
    assert a.epoch == 2, "a write in flight from epoch 1 must be refused from now on"


async def test_a_failing_backend_ends_the_term_at_the_renew_deadline(
    lease: MemoryLease, clock: ManualClock
) -> None:
    registry = CollectorRegistry()
    a = member(lease, clock, "dc1-a", registry)
    await a.attempt()
    lease.fail = LeaseUnavailable("500 InternalError")
    with capture_logs() as logs:
        for _ in range(4):
            await clock.advance(2)
            await a.attempt()
            assert a.is_leader()
        await clock.advance(2)
        assert not a.is_leader()
        await a.attempt()
    events = [entry["event"] for entry in logs]
    assert events == ["lease.failing", "leader.lost"], "one event per change, not per failure"
    assert registry.get_sample_value("gtm_leader_renew_failures_total") == 4
    assert registry.get_sample_value("gtm_leader_is_leader") == 0
    assert registry.get_sample_value("gtm_leader_transitions_total", {"change": "lost"}) == 1


async def test_a_hung_backend_is_cut_off_by_the_call_timeout(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a = member(lease, clock, "dc1-a", call_timeout=0.05)
    await a.attempt()
    lease.hang = True
    async with asyncio.timeout(1):
        await a.attempt()  # returns: the timeout ends the attempt
    assert a.is_leader()
    await clock.advance(10)
    assert not a.is_leader()


async def test_a_record_naming_someone_else_ends_the_term_at_once(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a = member(lease, clock, "dc1-a")
    await a.attempt()
    assert lease.record is not None
    lease.record = LeaseRecord(
        "intruder", None, clock.now(), clock.now(), 15, 2, str(int(lease.record.version) + 1)
    )
    await clock.advance(2)
    await a.attempt()
    assert not a.is_leader()
    assert lease.record.holder == "intruder"


async def test_release_clears_the_holder_and_the_other_takes_over_at_once(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a, b = member(lease, clock, "dc1-a"), member(lease, clock, "dc1-b")
    await a.attempt()
    await b.attempt()
    with capture_logs() as logs:
        await a.release()
    assert not a.is_leader()
    assert lease.record is not None
    assert lease.record.holder is None and lease.record.address is None
    assert lease.record.transitions == 1
    assert [e["event"] for e in logs] == ["leader.released"]
    assert logs[0]["handed_back"] is True
    await clock.advance(0.1)
    await b.attempt()
    assert b.is_leader() and b.epoch == 2
    await a.attempt()  # released is final
    assert not a.is_leader()


async def test_step_down_hands_the_lease_over_and_stays_out_for_one_duration(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a = member(lease, clock, "dc1-a")
    await a.attempt()
    await a.step_down("test")
    assert lease.record is not None and lease.record.holder is None
    await clock.advance(14.9)
    await a.attempt()
    assert not a.is_leader(), "it leaves the lease to the standby"
    await clock.advance(0.2)
    await a.attempt()
    assert a.is_leader() and a.epoch == 2, "with no standby, it takes the lease back later"


async def test_transitions_count_every_change_of_hands(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a, b = member(lease, clock, "dc1-a"), member(lease, clock, "dc1-b")
    await a.attempt()
    await clock.advance(16)
    await b.attempt()  # a died
    await b.release()
    await a.attempt()
    assert a.epoch == 3
    assert lease.record is not None and lease.record.transitions == 3


async def test_two_members_racing_for_a_free_lease_produce_one_leader(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a, b = member(lease, clock, "dc1-a"), member(lease, clock, "dc1-b")
    await asyncio.gather(a.attempt(), b.attempt())
    assert [a.is_leader(), b.is_leader()].count(True) == 1
    assert lease.record is not None and lease.record.transitions == 1


async def test_the_is_leader_gauge_follows_the_clock_without_the_loop(
    lease: MemoryLease, clock: ManualClock
) -> None:
    registry = CollectorRegistry()
    a = member(lease, clock, "dc1-a", registry)
    await a.attempt()
    assert registry.get_sample_value("gtm_leader_is_leader") == 1
    assert registry.get_sample_value("gtm_leader_epoch") == 1
    assert registry.get_sample_value("gtm_leader_transitions_total", {"change": "acquired"}) == 1
    await clock.advance(10)
    assert registry.get_sample_value("gtm_leader_is_leader") == 0
    assert registry.get_sample_value("gtm_leader_epoch") == 0


async def test_a_deleted_lease_does_not_reset_the_epoch(
    lease: MemoryLease, clock: ManualClock
) -> None:
    a, b = member(lease, clock, "dc1-a"), member(lease, clock, "dc1-b")
    await a.attempt()
    await b.attempt()
    lease.record = None  # an operator deleted the Lease
    await clock.advance(2)
    await b.attempt()
    assert b.is_leader() and b.epoch == 2, "epoch 1 was used: the stores would refuse it"
    await a.attempt()
    assert not a.is_leader()
