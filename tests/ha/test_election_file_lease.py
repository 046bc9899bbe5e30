"""FileLease: compare-and-swap by hard-linking the next version file; no lock to hold."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gtm.ha import FileLease, LeaseConflict, LeaseRecord, LeaseUnavailable

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def record(holder: str | None = "dc1-a", transitions: int = 1) -> LeaseRecord:
    return LeaseRecord(holder, "http://a:8080", NOW, NOW, 0.6, transitions)


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_a_missing_file_reads_as_no_lease(tmp_path: Path) -> None:
    assert await FileLease(tmp_path / "none" / "dc1.lease").get() is None


async def test_create_then_update_counts_versions(tmp_path: Path) -> None:
    lease = FileLease(tmp_path / "state" / "dc1.lease")
    created = await lease.create(record())
    assert created.version == "1"
    updated = await lease.update(record("dc1-b", 2), created.version)
    assert updated.version == "2"
    assert await lease.get() == updated
    stored = json.loads(lease.version_path(2).read_text())
    assert stored["renewTime"] == "2026-11-24T10:00:00.000000Z"
    assert stored["version"] == 2 and stored["holder"] == "dc1-b" and stored["transitions"] == 2


async def test_create_over_an_existing_lease_conflicts(tmp_path: Path) -> None:
    lease = FileLease(tmp_path / "dc1.lease")
    await lease.create(record())
    with pytest.raises(LeaseConflict):
        await FileLease(lease.path).create(record("dc1-b"))


async def test_update_with_a_stale_version_conflicts_and_changes_nothing(tmp_path: Path) -> None:
    a, b = FileLease(tmp_path / "dc1.lease"), FileLease(tmp_path / "dc1.lease")
    first = await a.create(record())
    await b.update(record("dc1-b", 2), first.version)
    with pytest.raises(LeaseConflict, match="version 2, not 1"):
        await a.update(record("dc1-a", 2), first.version)
    stored = await a.get()
    assert stored is not None and stored.holder == "dc1-b"


async def test_update_of_a_missing_lease_conflicts(tmp_path: Path) -> None:
    with pytest.raises(LeaseConflict):
        await FileLease(tmp_path / "dc1.lease").update(record(), "1")


async def test_a_released_lease_has_no_holder(tmp_path: Path) -> None:
    lease = FileLease(tmp_path / "dc1.lease")
    created = await lease.create(record())
    await lease.update(LeaseRecord(None, None, NOW, NOW, 0.6, 1), created.version)
    stored = await lease.get()
    assert stored is not None and stored.holder is None and not stored.held(NOW)


async def test_writes_keep_three_versions_and_no_temporary_files(tmp_path: Path) -> None:
    lease = FileLease(tmp_path / "dc1.lease")
    current = await lease.create(record())
    for n in range(5):
        current = await lease.update(record(transitions=n + 2), current.version)
    assert names_in(tmp_path) == [f"dc1.lease.{v:010d}" for v in (4, 5, 6)]
    assert await lease.get() == current


async def test_a_crashed_writer_s_old_temporary_file_is_removed(tmp_path: Path) -> None:
    lease = FileLease(tmp_path / "dc1.lease")
    left = tmp_path / ".dc1.lease.crashed"
    left.write_text("{half")
    fresh = tmp_path / ".dc1.lease.writing"
    fresh.write_text("{half")
    os.utime(left, (time.time() - 120, time.time() - 120))
    await lease.create(record())
    assert not left.exists(), "older than a minute: a crashed writer's"
    assert fresh.exists(), "may be another member's write in progress"


async def test_of_writers_racing_for_one_version_exactly_one_wins(tmp_path: Path) -> None:
    created = await FileLease(tmp_path / "dc1.lease").create(record())
    barrier = threading.Barrier(4)  # fewer than the default executor's threads
    leases = [FileLease(tmp_path / "dc1.lease") for _ in range(4)]

    async def attempt(i: int) -> str:
        await asyncio.to_thread(barrier.wait)
        try:
            await leases[i].update(record(f"dc1-{i}", 2), created.version)
        except LeaseConflict:
            return "conflict"
        return f"dc1-{i}"

    results = await asyncio.gather(*(attempt(i) for i in range(4)))
    winners = [r for r in results if r != "conflict"]
    assert len(winners) == 1
    stored = await leases[0].get()
    assert stored is not None and stored.holder == winners[0] and stored.version == "2"


def test_a_writer_paused_before_its_link_loses_to_those_that_moved_on(tmp_path: Path) -> None:
    """Paused (SIGSTOP) between reading version 1 and linking version 2, while the other
    member wrote versions 2 to 5 and pruned 2: the late link lands, is found behind
    version 5, and is withdrawn; the lease stays the other member's."""
    lease = FileLease(tmp_path / "dc1.lease")
    created = asyncio.run(lease.create(record("dc1-a")))
    real_link = os.link
    resumed = threading.Event()

    def paused_link(src: str, dst: os.PathLike[str]) -> None:
        os.link = real_link  # the other member's writes link for real
        other = FileLease(tmp_path / "dc1.lease")  # the standby takes over meanwhile
        current = asyncio.run(other.get())
        assert current is not None
        for n in range(4):
            current = asyncio.run(other.update(record("dc1-b", 2 + n), current.version))
        assert not lease.version_path(2).exists(), "pruned: the late link will not collide"
        resumed.set()
        real_link(src, dst)

    os.link = paused_link  # type: ignore[assignment]
    try:
        with pytest.raises(LeaseConflict, match="moved past version 2"):
            asyncio.run(lease.update(record("dc1-a", 1), created.version))
    finally:
        os.link = real_link
    assert resumed.is_set()
    stored = asyncio.run(lease.get())
    assert stored is not None and stored.holder == "dc1-b" and stored.version == "5"
    assert not lease.version_path(2).exists(), "the late version is withdrawn"


async def test_a_paused_writer_holds_nothing_the_other_needs(tmp_path: Path) -> None:
    """There is no lock: a write stuck anywhere does not make the other's unavailable."""
    lease = FileLease(tmp_path / "dc1.lease")
    created = await lease.create(record())
    stuck = tmp_path / ".dc1.lease.stuck"  # someone's temporary file, mid-write
    stuck.write_text('{"holder": "dc1-b"')
    updated = await FileLease(lease.path).update(record(transitions=2), created.version)
    assert updated.version == "2" and await lease.get() == updated


async def test_an_unreadable_file_is_unavailable(tmp_path: Path) -> None:
    lease = FileLease(tmp_path / "dc1.lease")
    lease.version_path(1).write_text("{not json")
    with pytest.raises(LeaseUnavailable, match="unreadable"):
        await lease.get()


async def test_a_failing_disk_is_unavailable_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = FileLease(tmp_path / "dc1.lease")
    created = await lease.create(record())

    def eio(src: str, dst: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "link", eio)
    with pytest.raises(LeaseUnavailable, match=r"cannot write .*dc1\.lease\.0000000002"):
        await lease.update(record(transitions=2), created.version)
    assert await lease.get() == created
    assert names_in(tmp_path) == ["dc1.lease.0000000001"]
