"""The embedded default intent store: one local file, atomic, locked, fenced by epoch."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from pathlib import Path

import pytest
from intent_fixtures import T0, add_many, crash_before_rename, exit_
from prometheus_client import CollectorRegistry

from failover.intent import (
    EMPTY,
    Action,
    CorruptState,
    FileAudit,
    FileIntentStore,
    IntentConflict,
    StaleEpoch,
    StoreMetrics,
    StoreUnavailable,
)
from failover.intent.atomic_file import locked

SPAWN = multiprocessing.get_context("spawn")


def temp_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if ".tmp." in p.name)


async def test_accepted_intent_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "intent.json"
    first = FileIntentStore(path)
    assert await first.load() == EMPTY
    written = await first.update(lambda s: s.add(exit_("x1")), epoch=1)
    del first
    again = await FileIntentStore(path).load()  # a restarted member
    assert again == written
    assert list(again.overrides) == ["x1"] and again.epoch == 1 and again.version == 1


async def test_applying_twice_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "intent.json"
    metrics = StoreMetrics(CollectorRegistry())
    store = FileIntentStore(path, metrics=metrics)
    one = await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    inode = path.stat().st_ino
    two = await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    assert two == one and two.version == 1
    assert path.stat().st_ino == inode  # not even rewritten
    assert metrics.writes.labels("file/intent", "unchanged")._value.get() == 1


async def test_a_stale_epoch_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "intent.json"
    store = FileIntentStore(path)
    await store.update(lambda s: s.add(exit_("x1")), epoch=3)
    before = path.read_bytes()
    with pytest.raises(StaleEpoch) as caught:
        await store.update(lambda s: s.add(exit_("x2", why="late")), epoch=2)
    assert (caught.value.epoch, caught.value.stored) == (2, 3)
    assert path.read_bytes() == before
    # a new leader's first write fences the old one off even when it adds nothing
    assert (await store.update(lambda s: s, epoch=4)).epoch == 4
    with pytest.raises(StaleEpoch):
        await store.update(lambda s: s, epoch=3)


async def test_a_failed_rename_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "intent.json"
    store = FileIntentStore(path)
    await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    before = path.read_bytes()

    def fail(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="Input/output"):
        await store.update(lambda s: s.add(exit_("x2", why="lost")), epoch=1)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert temp_files(path) == []
    assert list((await FileIntentStore(path).load()).overrides) == ["x1"]


async def test_a_crash_between_write_and_rename_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "intent.json"
    store = FileIntentStore(path)
    await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    before = path.read_bytes()
    child = SPAWN.Process(target=crash_before_rename, args=(str(path),))
    child.start()
    await asyncio.to_thread(child.join, 30)
    assert child.exitcode == 17  # it died inside the update, lock held, temp file written
    assert path.read_bytes() == before
    assert len(temp_files(path)) == 1
    # the next writer takes the (released) lock and sweeps the leftover
    after = await store.update(lambda s: s.add(exit_("x2", why="next")), epoch=1)
    assert set(after.overrides) == {"x1", "x2"} and temp_files(path) == []


async def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "intent.json"
    start = SPAWN.Barrier(3)
    workers = [
        SPAWN.Process(target=add_many, args=(str(path), who, 25, start)) for who in ("p1", "p2")
    ]
    for w in workers:
        w.start()
    await asyncio.to_thread(start.wait, 30)
    for w in workers:
        await asyncio.to_thread(w.join, 60)
        assert w.exitcode == 0
    state = await FileIntentStore(path).load()
    assert len(state.overrides) == 50 and state.version == 50
    assert {o.who for o in state.overrides.values()} == {"p1", "p2"}


async def test_two_stores_in_one_process_exclude_each_other(tmp_path: Path) -> None:
    path = tmp_path / "intent.json"
    stores = [FileIntentStore(path) for _ in range(4)]
    await asyncio.gather(
        *(
            s.update(
                lambda st, i=i, n=n: st.add(exit_(f"{n}-{i}", who=f"w{n}", why=f"change {i}")),
                epoch=1,
            )
            for n, s in enumerate(stores)
            for i in range(5)
        )
    )
    assert len((await stores[0].load()).overrides) == 20


async def test_expiry_and_every_change_go_to_the_audit(tmp_path: Path) -> None:
    audit = FileAudit(tmp_path / "audit.jsonl")
    store = FileIntentStore(tmp_path / "intent.json", audit=audit)
    await store.update(lambda s: s.add(exit_("x1", expires=T0 + 60, ticket="CHG-9")), epoch=1)
    await store.update(lambda s: s.add(exit_("x1", expires=T0 + 60, ticket="CHG-9")), epoch=1)
    state = await store.update(lambda s: s.expire(T0 + 61)[0], epoch=1)
    assert "x1" in state.tombstones
    history = await audit.history()
    assert [(e.action, e.override_id) for e in history] == [
        (Action.EXPIRED, "x1"),
        (Action.ACCEPTED, "x1"),
    ]
    expired, accepted = history
    assert (expired.who, expired.at, expired.ticket) == ("gtm", T0 + 60, "CHG-9")
    assert (accepted.who, accepted.why, accepted.at) == ("alice", "maintenance", T0)
    assert expired.override == accepted.override == exit_("x1", expires=T0 + 60, ticket="CHG-9")


async def test_a_corrupt_file_is_reported_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "intent.json"
    path.write_bytes(b'{"format": 1, "overr')
    store = FileIntentStore(path)
    with pytest.raises(CorruptState, match="not a readable intent state"):
        await store.load()
    with pytest.raises(CorruptState):
        await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    assert path.read_bytes() == b'{"format": 1, "overr'


async def test_an_update_may_not_drop_intent(tmp_path: Path) -> None:
    store = FileIntentStore(tmp_path / "intent.json")
    await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    with pytest.raises(ValueError, match="never drop"):
        await store.update(lambda s: EMPTY, epoch=1)
    with pytest.raises(IntentConflict):
        await store.update(lambda s: s.add(exit_("x1", region="dc3")), epoch=1)
    assert list((await store.load()).overrides) == ["x1"]


async def test_a_held_lock_times_out_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "intent.json"
    store = FileIntentStore(path, lock_timeout=0.1)
    with locked(path, 1.0):
        with pytest.raises(StoreUnavailable, match="still locked"):
            await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    assert (await store.update(lambda s: s.add(exit_("x1")), epoch=1)).version == 1
