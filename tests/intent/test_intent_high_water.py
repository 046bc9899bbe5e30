"""Intent versions never go backwards unnoticed: the high-water mark and the guarded store."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from intent_fixtures import T0, big_table, exit_, kube
from prometheus_client import CollectorRegistry

from intent import (
    TOMBSTONE_BOUND,
    ConfigMapIntentStore,
    FileAudit,
    FileIntentStore,
    FilePublishedStore,
    GuardedIntentStore,
    HighWater,
    IntentState,
    Mark,
    RegressedState,
)

NS = "gtm"


def gauge(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name)


def guarded(
    store: FileIntentStore | ConfigMapIntentStore,
    state_dir: Path,
    member: str = "dc1-a",
    registry: CollectorRegistry | None = None,
) -> GuardedIntentStore:
    return GuardedIntentStore(
        store, HighWater(state_dir, member), registry=registry or CollectorRegistry()
    )


async def test_the_newest_file_deleted_is_refused_until_merged_back(tmp_path: Path) -> None:
    """intent.json.2 (the dc2 exit) deleted: the store falls back to .1 without a word;
    the guard refuses to read or write it, and takes it back once the exit is merged in."""
    files = FileIntentStore(tmp_path / "intent.json")
    registry = CollectorRegistry()
    store = guarded(files, tmp_path, registry=registry)
    await store.update(lambda s: s, epoch=1)  # intent.json.1: empty, epoch 1
    held = await store.update(lambda s: s.add(exit_("x1")), epoch=1)  # .2: the exit
    assert held.version == 1 and store.mark.seen == 1
    files.version_path(2).unlink()

    with pytest.raises(RegressedState, match=r"holds intent version 0, but version 1 was seen"):
        await store.load()
    regression = store.regression()
    assert regression is not None and (regression.stored, regression.seen) == (0, 1)
    assert "version 1 was seen" in (store.not_ready() or "")
    assert gauge(registry, "gtm_intent_regressed") == 1.0
    assert gauge(registry, "gtm_intent_version_seen") == 1.0
    assert gauge(registry, "gtm_intent_version_stored") == 0.0

    # a write that would leave it below the mark changes nothing (no epoch stamp either)
    with pytest.raises(RegressedState):
        await store.update(lambda s: s, epoch=2)
    assert not files.version_path(2).exists()

    # anti-entropy: a peer's copy holds the exit; merged back, the store is whole again
    peer = IntentState().add(exit_("x1"))
    restored = await store.update(lambda s: s.merge(peer), epoch=2)
    assert "x1" in restored.overrides and restored.version == 1
    assert store.regression() is None and gauge(registry, "gtm_intent_regressed") == 0.0
    assert (await files.load()) == restored


async def test_a_restore_does_not_audit_what_was_audited_before(tmp_path: Path) -> None:
    """The exit lost with the newest file comes back by merge: accepted once in the audit,
    not twice (the drills' "nothing lost" counts each action exactly once)."""
    audit = FileAudit(tmp_path / "audit.jsonl")
    files = FileIntentStore(tmp_path / "intent.json", audit=audit)
    store = guarded(files, tmp_path)
    await store.update(lambda s: s.add(exit_("x1")), epoch=1)  # intent.json.1: the exit
    await store.update(lambda s: s.add(exit_("x2", region="dc3")), epoch=1)  # .2
    await store.update(lambda s: s.remove("x2", "alice", "done", 2.0), epoch=1)  # .3
    files.version_path(3).unlink()
    files.version_path(2).unlink()  # back to .1: x2 neither accepted nor ended there
    peer = IntentState().add(exit_("x1")).add(exit_("x2", region="dc3"))
    peer = peer.remove("x2", "alice", "done", 2.0)
    restored = await store.update(lambda s: s.merge(peer), epoch=1)
    assert "x2" in restored.tombstones and store.regression() is None
    actions = [(e.override_id, e.action.value) for e in await audit.history(100)]
    assert sorted(actions) == [("x1", "accepted"), ("x2", "accepted"), ("x2", "removed")]
    then = await store.update(lambda s: s.add(exit_("x3", region="dc3")), epoch=1)
    assert "x3" in then.overrides  # a change after the restore is audited as ever
    assert ("x3", "accepted") in [(e.override_id, e.action.value) for e in await audit.history(100)]


async def test_the_mark_survives_a_restart_and_its_own_deletion(tmp_path: Path) -> None:
    """The mark is a file per member; the partner's beside it still knows when ours is gone."""
    files = FileIntentStore(tmp_path / "intent.json")
    a = guarded(files, tmp_path, "dc1-a")
    b = guarded(files, tmp_path, "dc1-b")
    await a.update(lambda s: s.add(exit_("x1")), epoch=1)
    await a.update(lambda s: s.add(exit_("x2", region="dc3")), epoch=1)
    await b.load()  # the standby reads it too: its own mark
    marks = [n for n in os.listdir(tmp_path) if n.startswith("intent-seen.")]
    assert sorted(marks) == ["intent-seen.dc1-a.json", "intent-seen.dc1-b.json"]
    assert HighWater(tmp_path, "dc1-a").load() == 2  # a restarted member remembers

    for version in (2, 1):
        files.version_path(version).unlink()  # every intent file gone: back to version 0
    (tmp_path / "intent-seen.dc1-a.json").unlink()
    restarted = guarded(files, tmp_path, "dc1-a")
    assert restarted.mark.seen == 2  # from its partner's file
    with pytest.raises(RegressedState):
        await restarted.load()

    (tmp_path / "intent-seen.dc1-b.json").unlink()  # both files gone now
    with pytest.raises(RegressedState):  # the partner's memory still knows...
        await b.load()
    assert HighWater(tmp_path, "dc1-z").load() == 2  # ...and wrote its file again
    restored = await b.update(lambda s: s.add(exit_("x1")).add(exit_("x2", region="dc3")), 1)
    assert restored.version == 2 and b.regression() is None


async def test_a_recreated_configmap_is_noticed_and_restored() -> None:
    """A ConfigMap deleted and created again restarts at version 0: noticed the same way."""
    async with kube() as (_sim, api):
        with tempfile.TemporaryDirectory() as state_dir:
            inner = ConfigMapIntentStore(api, name="intent", namespace=NS)
            store = guarded(inner, Path(state_dir))
            await store.update(lambda s: s.add(exit_("x1")), epoch=3)
            await api.core.delete_namespaced_config_map("intent", NS)
            with pytest.raises(
                RegressedState, match="configmap gtm/intent: holds intent version 0"
            ):
                await store.load()
            with pytest.raises(RegressedState):  # an unrelated smaller write is refused
                await store.update(lambda s: s, epoch=3)
            assert (await inner.load()).version == 0  # nothing was written over it
            peer = IntentState().add(exit_("x1"))
            restored = await store.update(lambda s: s.merge(peer), epoch=3)
            assert list(restored.overrides) == ["x1"] and store.regression() is None
            assert (await store.load()) == restored


async def test_another_change_is_not_taken_for_the_lost_one(tmp_path: Path) -> None:
    """The mark holds ids, not only a count: a write that brings the version back up
    without the lost exit is refused, naming it; the exit merged back is taken."""
    files = FileIntentStore(tmp_path / "intent.json")
    store = guarded(files, tmp_path)
    await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    files.version_path(1).unlink()
    with pytest.raises(RegressedState):
        await store.load()
    with pytest.raises(RegressedState, match=r"version 1 was seen \(it lacks x1\)"):
        await store.update(lambda s: s.add(exit_("x2", region="dc3")), epoch=1)
    assert not files.version_path(1).exists()  # nothing was written
    regression = store.regression()
    assert regression is not None and regression.missing == ("x1",)
    again = await store.update(lambda s: s.add(exit_("x1")).add(exit_("x2", region="dc3")), 1)
    assert again.version == 2 and store.regression() is None


async def test_with_every_mark_gone_the_published_table_still_knows(tmp_path: Path) -> None:
    """The newest intent file and every mark file deleted (or a pod's emptyDir replaced):
    the DNS table's head names the exit that was in force; the store lacks it."""
    files = FileIntentStore(tmp_path / "intent.json")
    published = FilePublishedStore(tmp_path / "table-dns.json")
    await files.update(lambda s: s.add(exit_("x1")), epoch=1)
    await published.save(big_table(4, generation=3), epoch=1, now=T0 + 1, seen={"x1": T0})
    files.version_path(1).unlink()
    store = GuardedIntentStore(
        files,
        HighWater(tmp_path, "dc1-a"),  # no mark file at all
        published=published,
        registry=CollectorRegistry(),
        clock=lambda: T0 + 60,
    )
    with pytest.raises(RegressedState, match="holds intent version 0, but version 1 was seen"):
        await store.load()
    assert HighWater(tmp_path, "dc1-b").load() == 1  # and the mark is kept from now on
    restored = await store.update(lambda s: s.merge(IntentState().add(exit_("x1"))), epoch=1)
    assert restored.version == 1 and store.regression() is None


async def test_a_table_older_than_the_tombstone_bound_is_not_used(tmp_path: Path) -> None:
    """Its overrides' tombstones may have been compacted since: no false alarm."""
    files = FileIntentStore(tmp_path / "intent.json")
    published = FilePublishedStore(tmp_path / "table-dns.json")
    await published.save(big_table(4), epoch=1, now=T0, seen={"x1": T0})
    store = GuardedIntentStore(
        files,
        HighWater(tmp_path, "dc1-a"),
        published=published,
        registry=CollectorRegistry(),
        clock=lambda: T0 + TOMBSTONE_BOUND + 1,
    )
    assert await store.load() == IntentState() and store.regression() is None


def test_a_compacted_tombstone_is_not_taken_for_a_loss() -> None:
    """Compaction drops tombstone ids and counts them as retired: the mark allows it."""
    ended = IntentState().add(exit_("x1")).remove("x1", "bob", "done", T0 + 1)
    mark = Mark.of(ended.add(exit_("x2", region="dc3")))
    compacted = ended.add(exit_("x2", region="dc3")).compact(["x1"])
    assert mark.covered_by(compacted)
    lost = IntentState().add(exit_("x3", region="dc3")).compact([])  # x1 and x2 both gone
    assert mark.missing(lost) == ["x1", "x2"] and not mark.covered_by(lost)
