"""The leader compacts tombstones only once every peer region has been heard from."""

from __future__ import annotations

from gtm.service.intent_merge import compactable
from intent import EMPTY, TOMBSTONE_BOUND, IntentState
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
