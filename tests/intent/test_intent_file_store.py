"""The embedded default intent store: numbered local files, compare-and-swap, fenced by epoch."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from dataclasses import replace
from pathlib import Path

import pytest
from intent_fixtures import T0, add_many, crash_before_link, exit_
from prometheus_client import CollectorRegistry

from intent import (
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

SPAWN = multiprocessing.get_context("spawn")


def temp_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def files(path: Path) -> dict[str, bytes]:
    """Every file of the store, with its content: what 'changes nothing' compares."""
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir())}


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
    before = files(path)
    two = await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    assert two == one and two.version == 1
    assert files(path) == before  # not even rewritten
    assert metrics.writes.labels("file/intent", "unchanged")._value.get() == 1


async def test_a_stale_epoch_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "intent.json"
    store = FileIntentStore(path)
    await store.update(lambda s: s.add(exit_("x1")), epoch=3)
    before = files(path)
    with pytest.raises(StaleEpoch) as caught:
        await store.update(lambda s: s.add(exit_("x2", why="late")), epoch=2)
    assert (caught.value.epoch, caught.value.stored) == (2, 3)
    assert files(path) == before
    # a new leader's first write fences the old one off even when it adds nothing
    assert (await store.update(lambda s: s, epoch=4)).epoch == 4
    with pytest.raises(StaleEpoch):
        await store.update(lambda s: s, epoch=3)


async def test_a_failed_write_leaves_the_old_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "intent.json"
    store = FileIntentStore(path)
    await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    before = files(path)

    def fail(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "link", fail)
    with pytest.raises(StoreUnavailable, match=r"cannot write: .*Input/output"):
        await store.update(lambda s: s.add(exit_("x2", why="lost")), epoch=1)
    monkeypatch.undo()
    assert files(path) == before
    assert list((await FileIntentStore(path).load()).overrides) == ["x1"]


async def test_a_crash_before_the_link_leaves_the_old_state(tmp_path: Path) -> None:
    path = tmp_path / "intent.json"
    store = FileIntentStore(path)
    await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    before = path.with_name("intent.json.0000000001").read_bytes()
    child = SPAWN.Process(target=crash_before_link, args=(str(path),))
    child.start()
    await asyncio.to_thread(child.join, 30)
    assert child.exitcode == 17  # it died inside the update, its temporary file written
    assert list((await store.load()).overrides) == ["x1"]
    assert path.with_name("intent.json.0000000001").read_bytes() == before
    (leftover,) = temp_files(path)
    # the next writer is not held up, and sweeps a leftover once it is surely a crash's
    os.utime(path.parent / leftover, (T0, T0))
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
    store = FileIntentStore(path)
    store.version_path(1).write_bytes(b'{"format": 1, "overr')
    with pytest.raises(CorruptState, match="not a readable intent state"):
        await store.load()
    with pytest.raises(CorruptState):
        await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    assert files(path) == {"intent.json.0000000001": b'{"format": 1, "overr'}


async def test_an_update_may_compact_tombstones_but_not_drop_them(tmp_path: Path) -> None:
    store = FileIntentStore(tmp_path / "intent.json")
    await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    ended = await store.update(lambda s: s.remove("x1", "bob", "done", T0 + 1), epoch=1)
    with pytest.raises(ValueError, match="1 tombstone"):
        await store.update(lambda s: replace(s, tombstones={}), epoch=1)
    compacted = await store.update(lambda s: s.compact(["x1"]), epoch=1)
    assert not compacted.tombstones and compacted.version == ended.version
    assert await FileIntentStore(store.path).load() == compacted


async def test_an_update_may_not_drop_intent(tmp_path: Path) -> None:
    store = FileIntentStore(tmp_path / "intent.json")
    await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    with pytest.raises(ValueError, match="never drop"):
        await store.update(lambda s: EMPTY, epoch=1)
    with pytest.raises(IntentConflict):
        await store.update(lambda s: s.add(exit_("x1", region="dc3")), epoch=1)
    assert list((await store.load()).overrides) == ["x1"]


def test_a_member_paused_mid_update_neither_blocks_the_other_nor_lands_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old leader (epoch 1) is paused between reading the state and linking its
    update; the new leader (epoch 2) writes four updates meanwhile and prunes. When the
    old one wakes, its late file is withdrawn and its update refused by the epoch."""
    path = tmp_path / "intent.json"
    asyncio.run(FileIntentStore(path).update(lambda s: s.add(exit_("x1")), epoch=1))
    real_link = os.link

    def paused_link(src: str, dst: str) -> None:
        monkeypatch.setattr(os, "link", real_link)  # the new leader's writes link for real
        new_leader = FileIntentStore(path)
        for i in range(4):
            change = exit_(f"n{i}", services=frozenset({f"svc{i}"}))
            asyncio.run(new_leader.update(lambda s, c=change: s.add(c), epoch=2))
        real_link(src, dst)

    monkeypatch.setattr(os, "link", paused_link)
    with pytest.raises(StaleEpoch):
        asyncio.run(
            FileIntentStore(path).update(lambda s: s.add(exit_("late", why="old")), epoch=1)
        )
    state = asyncio.run(FileIntentStore(path).load())
    assert set(state.overrides) == {"x1", "n0", "n1", "n2", "n3"} and state.epoch == 2


async def test_racing_writers_of_one_member_audit_each_change_once(tmp_path: Path) -> None:
    """Peer merges beside operators' actions (threads of one member racing for a version):
    every change is audited exactly once (the losers' entries were left behind the winners')."""
    audit = FileAudit(tmp_path / "audit.jsonl")
    store = FileIntentStore(tmp_path / "intent.json", audit=audit)
    theirs = EMPTY.add(exit_("x1"))  # a peer's state, pulled from several peers at once
    await asyncio.gather(
        *(store.update(lambda s: s.merge(theirs), 1) for _ in range(8)),
        *(
            store.update(lambda s, i=i: s.add(exit_(f"e{i}", services=frozenset({f"s{i}"}))), 1)
            for i in range(8)
        ),
    )
    ids = [e.id for e in await audit.history(1000)]
    assert len(ids) == 9 and len(set(ids)) == 9, sorted(ids)
