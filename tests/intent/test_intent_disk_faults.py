"""A full (ENOSPC) or read-only (EROFS) state directory, and a corrupt intent file: the
errors name the errno and the file, no audit line is torn, an accepted change is audited
or not accepted, and intent is never silently taken from an older version.

The faults come through the stores' disk seam (`intent.Disk`), as a disk
makes them: a short write when the space runs out mid-line, then errors."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest
from intent_fixtures import exit_
from structlog.testing import capture_logs

from intent import (
    EMPTY,
    Action,
    AuditEntry,
    CorruptState,
    Disk,
    FileAudit,
    FileIntentStore,
    FilePublishedStore,
    StoreUnavailable,
    transitions,
)
from policies import WeightTable


class FullDisk(Disk):
    """Space for `room` more bytes; then a short write, then ENOSPC (or `code`) on every
    write, link and fsync, as a full or read-only file system answers."""

    def __init__(self, room: int = 0, code: int = errno.ENOSPC) -> None:
        self.room = room
        self.code = code
        self.full = False

    def _refuse(self, name: str) -> None:
        raise OSError(self.code, os.strerror(self.code), name)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if self.full:
            self._refuse(f"fd {fd}")
        if len(data) > self.room:
            self.full = True
            if self.room == 0:
                self._refuse(f"fd {fd}")
            return os.write(fd, data[: self.room])  # the disk filled up part-way
        self.room -= len(data)
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        if self.full:
            self._refuse(f"fd {fd}")
        os.fsync(fd)

    def link(self, src: str, dst: str) -> None:
        if self.full:
            self._refuse(dst)
        os.link(src, dst)


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def accepted(override_id: str) -> list[AuditEntry]:
    return transitions(EMPTY, EMPTY.add(exit_(override_id)))


async def test_an_audit_append_that_runs_out_of_space_leaves_no_torn_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    await FileAudit(path).append(accepted("x1"))
    before = path.read_bytes()
    with pytest.raises(StoreUnavailable) as raised:
        await FileAudit(path, FullDisk(room=20)).append(accepted("x2"))
    assert raised.value.cause == "ENOSPC"
    assert (
        f"{path}: cannot append to the audit: ENOSPC (No space left on device; wrote 20 of"
        in str(raised.value)
    )
    assert path.read_bytes() == before  # the 20 bytes that made it were cut back
    assert [e.override_id for e in await FileAudit(path).history()] == ["x1"]


async def test_an_audit_append_whose_fsync_fails_is_cut_back(tmp_path: Path) -> None:
    class FailingFsync(Disk):
        def fsync(self, fd: int) -> None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    path = tmp_path / "audit.jsonl"
    await FileAudit(path).append(accepted("x1"))
    before = path.read_bytes()
    with pytest.raises(StoreUnavailable, match=r"EIO \(Input/output error\)"):
        await FileAudit(path, FailingFsync()).append(accepted("x2"))
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("code", "name"), [(errno.ENOSPC, "ENOSPC"), (errno.EROFS, "EROFS")], ids=["full", "ro"]
)
async def test_a_full_or_read_only_state_dir_is_named_and_changes_nothing(
    tmp_path: Path, code: int, name: str
) -> None:
    path = tmp_path / "intent.json"
    audit = FileAudit(tmp_path / "audit.jsonl")
    await FileIntentStore(path, audit=audit).update(lambda s: s.add(exit_("x1")), epoch=1)
    before = files(tmp_path)
    broken = FileIntentStore(path, audit=FileAudit(audit.path, FullDisk(code=code)))
    with capture_logs() as logs, pytest.raises(StoreUnavailable) as raised:
        await broken.update(lambda s: s.add(exit_("x2", why="lost")), epoch=1)
    assert raised.value.cause == name
    assert str(audit.path) in str(raised.value) and name in str(raised.value)
    assert files(tmp_path) == before  # neither audited nor accepted
    assert not [e for e in logs if e["event"].startswith("intent.")]
    # the state's own write fails the same way, named the same way
    broken = FileIntentStore(path, audit=audit, disk=FullDisk(code=code))
    with pytest.raises(StoreUnavailable, match=rf"{path}: cannot write: {name} \("):
        await broken.update(lambda s: s.add(exit_("x2", why="lost")), epoch=1)
    assert files(tmp_path) == before


async def test_an_accepted_change_is_audited_or_not_accepted(tmp_path: Path) -> None:
    """The audit takes the entry, then the disk fills up before the state is linked:
    the entry is withdrawn, so the history never shows a change that was not stored."""
    path = tmp_path / "intent.json"
    audit = FileAudit(tmp_path / "audit.jsonl")
    store = FileIntentStore(path, audit=audit)
    await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    before = files(tmp_path)
    full_for_the_state = FileIntentStore(path, audit=audit, disk=FullDisk(room=10))
    with pytest.raises(StoreUnavailable, match="ENOSPC"):
        await full_for_the_state.update(lambda s: s.add(exit_("x2", why="lost")), epoch=1)
    assert files(tmp_path) == before
    stored = await store.update(lambda s: s.add(exit_("x3", why="room again")), epoch=1)
    assert set(stored.overrides) == {"x1", "x3"}
    assert [(e.action, e.override_id) for e in await audit.history()] == [
        (Action.ACCEPTED, "x3"),
        (Action.ACCEPTED, "x1"),
    ]


async def test_a_lost_race_takes_its_audit_entry_back(tmp_path: Path) -> None:
    """The other member links the version first: the loser's entry is withdrawn and
    written again by the attempt that wins, once."""
    path = tmp_path / "intent.json"
    other = FileIntentStore(path)

    class Racing(Disk):
        raced = False

        def link(self, src: str, dst: str) -> None:
            if not self.raced:
                self.raced = True
                asyncio.run(other.update(lambda s: s.add(exit_("theirs", why="b")), epoch=1))
            os.link(src, dst)

    audit = FileAudit(tmp_path / "audit.jsonl")
    store = FileIntentStore(path, audit=audit, disk=Racing())
    stored = await store.update(lambda s: s.add(exit_("ours")), epoch=1)
    assert set(stored.overrides) == {"ours", "theirs"}
    assert [e.id for e in await audit.history()] == ["accepted:ours"]


async def test_a_published_table_on_a_full_disk_names_the_cause(tmp_path: Path) -> None:
    store = FilePublishedStore(tmp_path / "table-dns.json", disk=FullDisk(room=100))
    with pytest.raises(StoreUnavailable) as raised:
        await store.save(WeightTable(1, 1.0, {}), epoch=1, now=1.0)
    assert raised.value.cause == "ENOSPC"
    assert files(tmp_path) == {}


async def test_a_corrupt_newest_intent_file_is_refused_loudly_never_skipped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "intent.json"
    store = FileIntentStore(path)
    await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    await store.update(lambda s: s.add(exit_("x2", why="accepted, then lost")), epoch=1)
    newest = store.version_path(2)
    newest.write_bytes(newest.read_bytes()[:30])
    before = files(tmp_path)
    restarted = FileIntentStore(path)
    with capture_logs() as logs:
        for _ in range(2):
            with pytest.raises(CorruptState) as raised:
                await restarted.load()
        with pytest.raises(CorruptState):
            await restarted.update(lambda s: s.add(exit_("x3", why="new")), epoch=1)
    message = str(raised.value)
    assert message.startswith(f"{newest}: not a readable intent state")
    assert "intent.json.0000000001 (intent version 1, 1 override(s) in force)" in message
    assert "intent.json.0000000002.corrupt" in message
    assert files(tmp_path) == before
    (event,) = [e for e in logs if e["event"] == "intent.corrupt"]
    assert event["log_level"] == "error" and event["file"] == str(newest)
    # moved aside, as the message says: the store continues from the older version
    newest.rename(newest.with_name(newest.name + ".corrupt"))
    assert set((await restarted.load()).overrides) == {"x1"}
