"""FileLease: compare-and-swap on a counter, atomic replacement, a lock held only to write."""

from __future__ import annotations

import fcntl
import json
import os
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
    stored = json.loads(lease.path.read_text())
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


async def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    lease = FileLease(tmp_path / "dc1.lease")
    current = await lease.create(record())
    for n in range(5):
        current = await lease.update(record(transitions=n + 2), current.version)
    assert names_in(tmp_path) == ["dc1.lease", "dc1.lease.lock"]


async def test_a_held_lock_makes_writes_unavailable_not_blocked(tmp_path: Path) -> None:
    lease = FileLease(tmp_path / "dc1.lease", lock_timeout=0.05)
    created = await lease.create(record())
    fd = os.open(lease.lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # someone stuck in the middle of a write
        with pytest.raises(LeaseUnavailable, match="stayed locked"):
            await lease.update(record(transitions=2), created.version)
        assert await lease.get() == created, "reads need no lock"
    finally:
        os.close(fd)
    assert (await lease.update(record(transitions=2), created.version)).version == "2"


async def test_an_unreadable_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "dc1.lease"
    path.write_text("{not json")
    with pytest.raises(LeaseUnavailable, match="unreadable"):
        await FileLease(path).get()
