"""The intent state's pure operations and the merge laws peers rely on (anti-entropy)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from intent_fixtures import T0, big_estate, drain, exit_, overrides, states

from intent import EMPTY, Ending, IntentConflict, IntentState, UnknownOverride
from intent.state import TOMBSTONE_BOUND
from policies import Health, Kind, WeightTable, evaluate


def known(s: IntentState) -> set[str]:
    return set(s.overrides) | set(s.tombstones)


# --- operations ------------------------------------------------------------------


def test_add_is_idempotent_by_id_and_by_intent() -> None:
    o = exit_("x1")
    one = EMPTY.add(o)
    assert one.version == 1
    assert one.add(o) is one
    again = exit_("x2", created=T0 + 60)  # the same intent re-issued under a new id
    assert one.add(again) is one
    other = exit_("x3", why="another reason")
    assert one.add(other).version == 2


def test_same_id_other_content_is_a_conflict() -> None:
    one = EMPTY.add(exit_("x1"))
    with pytest.raises(IntentConflict, match="x1"):
        one.add(exit_("x1", region="dc3"))


def test_remove_leaves_a_tombstone_that_an_old_add_cannot_undo() -> None:
    s = EMPTY.add(exit_("x1")).remove("x1", "bob", "done", T0 + 5)
    assert "x1" not in s.overrides
    t = s.tombstones["x1"]
    assert (t.ending, t.who, t.why, t.when) == (Ending.REMOVED, "bob", "done", T0 + 5)
    assert s.version == 2
    assert s.add(exit_("x1")) is s  # a replayed add does not bring it back
    assert s.remove("x1", "carol", "again", T0 + 9) is s
    with pytest.raises(UnknownOverride):
        s.remove("nope", "bob", "typo", T0)


def test_enter_closes_the_exits_and_ramps() -> None:
    s = EMPTY.add(exit_("x1")).add(exit_("x3", region="dc3", why="other"))
    s = s.add(drain("d1", "dc2", "foo"))
    entered = s.enter("dc2", None, 600.0, "carol", "maintenance over", T0 + 100, ticket="CHG-2")
    assert entered.tombstones["x1"].ending is Ending.ENTERED
    assert set(entered.overrides) - {"x3", "d1"} == {entered.tombstones["x1"].by}
    enter = entered.overrides[entered.tombstones["x1"].by or ""]
    assert (enter.kind, enter.region, enter.ramp) == (Kind.ENTER, "dc2", 600.0)
    assert (enter.created, enter.expires, enter.ticket) == (T0 + 100, T0 + 700, "CHG-2")
    assert "d1" in entered.overrides  # an enter ends exits only
    # the same call again changes nothing, even after a new exit
    again = entered.add(exit_("x9", why="new"))
    assert again.enter("dc2", None, 600.0, "carol", "maintenance over", T0 + 100) is again


def test_the_engine_ramps_back_after_an_enter_even_once_it_has_expired() -> None:
    estate = big_estate(services=1, vips=1)
    exited = EMPTY.add(exit_("x1"))
    table = evaluate(estate, Health(), exited.active(T0 + 1), None, T0 + 1).table
    entered = exited.enter("dc2", None, 100.0, "carol", "back", T0 + 10)

    def local_weight_in_dc2(now: float, previous: WeightTable) -> tuple[int, WeightTable]:
        state = entered.expire(now)[0]
        t = evaluate(estate, Health(), state.active(now), previous, now).table
        (row,) = (r for r in t if r.source == "dc2")
        return row.weights()["dc2"], t

    seen = []
    for now in (T0 + 10, T0 + 35, T0 + 60, T0 + 111, T0 + 200):
        weight, table = local_weight_in_dc2(now, table)
        seen.append(weight)
    assert seen[0] == 0 and seen[0] < seen[1] < seen[2] < seen[3] == seen[4] == 98


def test_enter_of_some_services_narrows_a_partial_exit() -> None:
    s = EMPTY.add(exit_("x1", services=frozenset({"a", "b"})))
    s = s.add(exit_("x2", services=frozenset({"c"}), why="other"))
    entered = s.enter("dc2", {"a"}, 60.0, "carol", "a is fixed", T0 + 10, id="e1")
    assert entered.tombstones["x1"].by == "e1"
    rest = entered.overrides["x1~e1"]
    assert (rest.kind, rest.services, rest.created) == (Kind.EXIT, frozenset({"b"}), T0)
    assert "x2" in entered.overrides


def test_enter_of_some_services_cannot_narrow_a_whole_region_exit() -> None:
    s = EMPTY.add(exit_("x1"))
    with pytest.raises(IntentConflict, match="covers every service"):
        s.enter("dc2", {"a"}, 60.0, "carol", "a only", T0 + 10)
    with pytest.raises(ValueError, match="ramp"):
        s.enter("dc2", None, -1.0, "carol", "negative ramp", T0 + 10)


def test_enter_without_ramp_lives_at_least_as_long_as_asked() -> None:
    s = EMPTY.add(exit_("x1"))
    now_in = s.enter("dc2", None, 0.0, "carol", "no ramp", T0 + 10, lasts=35.0)
    (enter,) = [o for o in now_in.overrides.values() if o.kind is Kind.ENTER]
    assert enter.ramp == 0.0 and enter.expires == T0 + 45.0
    short = s.enter("dc2", None, 0.0, "carol", "no ramp", T0 + 10)
    (enter,) = [o for o in short.overrides.values() if o.kind is Kind.ENTER]
    assert enter.expires == T0 + 11.0


def test_expire_returns_the_expired_and_ends_them_at_their_expiry() -> None:
    s = EMPTY.add(exit_("x1", expires=T0 + 60)).add(exit_("x2", why="long", expires=T0 + 600))
    same, gone = s.expire(T0 + 59)
    assert same is s and gone == ()
    after, gone = s.expire(T0 + 61)
    assert [o.id for o in gone] == ["x1"]
    t = after.tombstones["x1"]
    assert (t.ending, t.who, t.when) == (Ending.EXPIRED, "gtm", T0 + 60)
    assert list(after.overrides) == ["x2"]
    assert [o.id for o in after.active(T0 + 61)] == ["x2"]


def test_round_trip_through_json() -> None:
    s = EMPTY.add(exit_("x1", expires=T0 + 5)).add(drain("d1", "dc1", "foo", "bar"))
    s = s.enter("dc2", None, 30.0, "carol", "back", T0 + 1).expire(T0 + 100)[0].with_epoch(4)
    back = IntentState.from_json(s.to_json())
    assert back == s and back.version == s.version and back.digest == s.digest
    with pytest.raises(ValueError, match="format"):
        IntentState.from_dict({**s.to_dict(), "format": 99})


def test_merge_keeps_the_receivers_epoch() -> None:
    mine = EMPTY.add(exit_("x1")).with_epoch(3)
    theirs = EMPTY.add(drain("d1", "dc1", "foo")).with_epoch(50)  # another region's lease
    merged = mine.merge(theirs)
    assert merged.epoch == 3 and set(merged.overrides) == {"x1", "d1"}


def drained(pairs: int) -> IntentState:
    """`pairs` drains, each removed a minute later, one an hour from T0."""
    s = EMPTY
    for i in range(pairs):
        at = T0 + 3600.0 * i
        s = s.add(drain(f"d{i}", "dc2", "s1")).remove(f"d{i}", "bob", "done", at + 60)
    return s


def test_tombstones_past_the_bound_that_no_peer_holds_in_force_are_compacted() -> None:
    s = drained(2000).add(exit_("x1"))
    now = T0 + 3600.0 * 2000
    before = now - TOMBSTONE_BOUND
    peer = EMPTY.add(drain("d5", "dc2", "s1"))  # a peer that never saw d5 end
    ids = s.compactable([peer, s], before)
    assert "d5" not in ids and "d1999" not in ids  # held in force elsewhere; too recent
    assert len(ids) == 2000 - 1 - int(TOMBSTONE_BOUND // 3600)
    compacted = s.compact(ids)
    assert compacted.version == s.version and compacted.retired == len(ids)
    assert set(compacted.overrides) == {"x1"} and "d5" in compacted.tombstones
    assert len(compacted.to_json()) < len(s.to_json()) / 10
    assert IntentState.from_json(compacted.to_json()) == compacted
    assert compacted.compact(ids) == compacted  # once


def test_a_peer_that_has_not_compacted_converges_without_reviving_anything() -> None:
    s = EMPTY.add(drain("d1", "dc2", "s1")).remove("d1", "bob", "done", T0)
    mine = s.compact(s.compactable([s], T0 + 1))
    assert not mine.tombstones and mine.retired == 1
    back = mine.merge(s)  # the peer sends the tombstone back: it stays ended
    assert not back.overrides and "d1" in back.tombstones
    assert back.version >= mine.version and back.retired == 1
    again = back.compact(back.compactable([s], T0 + 1))
    assert again.same_intent(mine) and again.merge(s.compact(["d1"])) == again


# --- merge laws (hypothesis) --------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(states())
def test_merge_is_idempotent(a: IntentState) -> None:
    assert a.merge(a) == a


@settings(max_examples=150, deadline=None)
@given(states(), states())
def test_merge_is_commutative(a: IntentState, b: IntentState) -> None:
    ab, ba = a.merge(b), b.merge(a)
    assert ab.same_intent(ba) and ab.version == ba.version and ab.digest == ba.digest


@settings(max_examples=100, deadline=None)
@given(states(), states(), states())
def test_merge_is_associative(a: IntentState, b: IntentState, c: IntentState) -> None:
    assert a.merge(b).merge(c).same_intent(a.merge(b.merge(c)))


@settings(max_examples=150, deadline=None)
@given(states(), states())
def test_merge_loses_nothing_and_revives_nothing(a: IntentState, b: IntentState) -> None:
    m = a.merge(b)
    assert known(m) == known(a) | known(b)
    assert set(m.tombstones) == set(a.tombstones) | set(b.tombstones)
    assert m.version >= max(a.version, b.version)
    assert m.merge(a).same_intent(m) and m.merge(b).same_intent(m)  # m absorbs both


_ops = st.lists(
    st.one_of(
        overrides().map(lambda o: ("add", o)),
        st.sampled_from(("a", "b", "c", "d")).map(lambda i: ("remove", i)),
        st.integers(0, 80).map(lambda t: ("expire", float(t))),
        st.sampled_from(("dc1", "dc2")).map(lambda r: ("enter", r)),
    ),
    max_size=8,
)


def _apply(s: IntentState, ops: list[tuple[str, object]]) -> IntentState:
    for op, arg in ops:
        before = s
        if op == "add":
            try:
                s = s.add(arg)  # type: ignore[arg-type]
            except IntentConflict:
                continue
        elif op == "remove":
            if arg in s.overrides:
                s = s.remove(str(arg), "bob", "done", 40.0)
        elif op == "expire":
            s = s.expire(float(arg))[0]  # type: ignore[arg-type]
        else:
            try:
                s = s.enter(str(arg), None, 60.0, "carol", "back", 45.0)
            except IntentConflict:
                continue
        assert s.version >= before.version and known(s) >= known(before)
        assert (s.version == before.version) == (s == before)
    return s


@settings(max_examples=100, deadline=None)
@given(_ops, _ops, _ops)
def test_replicas_that_exchange_states_converge(
    common: list[tuple[str, object]],
    left: list[tuple[str, object]],
    right: list[tuple[str, object]],
) -> None:
    """Two regions start from one state, change it apart, then merge each other's:
    they end up with the same intent, whoever merged first."""
    base = _apply(EMPTY, common)
    a, b = _apply(base, left), _apply(base, right)
    a2 = a.merge(b)
    b2 = b.merge(a)
    assert a2.same_intent(b2)
    assert a2.version == b2.version >= max(a.version, b.version)
