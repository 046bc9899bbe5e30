"""The leader compacts tombstones only once every peer region has been heard from, and
merges lost intent back into a regressed store."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gtm.service.intent_merge import IntentMerge, compactable
from intent import (
    EMPTY,
    TOMBSTONE_BOUND,
    FileIntentStore,
    GuardedIntentStore,
    HighWater,
    IntentState,
    RegressedState,
)
from policies import Kind, Override

T0 = 1_800_000_000.0


def drain(id: str) -> Override:
    return Override(id, Kind.DRAIN, "dc2", "bob", f"drain {id}", T0, frozenset({"s1"}))


def ended(*ids: str) -> IntentState:
    s = EMPTY
    for i in ids:
        s = s.add(drain(i)).remove(i, "bob", "done", T0 + 60)
    return s


def test_nothing_is_dropped_before_every_peer_region_is_heard_from() -> None:
    mine = ended("d1", "d2")
    later = T0 + TOMBSTONE_BOUND + 3600
    assert compactable(mine, {"dc2": mine}, {"dc2", "dc3"}, later) == frozenset()
    holding = EMPTY.add(drain("d2"))  # dc3 never saw d2 end: it holds it in force
    assert compactable(mine, {"dc2": mine, "dc3": holding}, {"dc2", "dc3"}, later) == {"d1"}
    assert compactable(mine, {"dc2": mine, "dc3": mine}, {"dc2", "dc3"}, T0 + 3600) == frozenset()


def exit_(id: str, region: str = "dc2") -> Override:
    return Override(id, Kind.EXIT, region, "alice", "maintenance", T0)


async def test_a_regressed_store_is_restored_from_what_the_peers_hold(tmp_path: Path) -> None:
    """The newest intent file lost: the leader's merge of a peer's copy brings the exit
    back above the mark; a peer that holds less changes nothing (nor is written)."""
    files = FileIntentStore(tmp_path / "intent.json")
    store = GuardedIntentStore(files, HighWater(tmp_path, "dc1-a"), registry=CollectorRegistry())
    await store.update(lambda s: s, epoch=1)
    exited = await store.update(lambda s: s.add(exit_("x1")), epoch=1)
    files.version_path(2).unlink()
    with pytest.raises(RegressedState):
        await store.load()
    stored: list[IntentState] = []
    merge = IntentMerge(
        region="dc1",
        inventory=lambda: None,  # type: ignore[arg-type,return-value]  # not reached
        store=store,
        epoch=lambda: 2,
        intent=lambda: EMPTY,  # a restarted member: it remembers nothing
        on_stored=stored.append,
        wake=lambda: None,
        regressed=lambda: store.regression() is not None,
    )
    await merge.received(EMPTY.add(drain("d9")).remove("d9", "bob", "done", T0), "dc3")
    assert stored == [] and store.regression() is not None  # dc3 never saw the exit
    await merge.received(EMPTY.merge(exited), "dc2")  # dc2 merged it earlier
    (restored,) = stored
    assert "x1" in restored.overrides and "d9" in restored.tombstones
    assert store.regression() is None and (await files.load()) == restored
