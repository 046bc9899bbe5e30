"""The policy engine's behaviour, one rule at a time (DESIGN §4)."""

from __future__ import annotations

import pytest
from policy_estates import REGIONS, estate, policy, service

from policies import (
    Bounds,
    Guardrails,
    Health,
    Kind,
    Out,
    Override,
    Policy,
    Redistribute,
    State,
    TargetHealth,
    WeightTable,
    evaluate,
    evaluating,
)

T0 = 1_000_000.0


def down(*pairs: str, since: float = T0 - 10) -> Health:
    return Health(
        regions={tuple(p.split("/")): TargetHealth(State.DOWN, since, "refused") for p in pairs}  # type: ignore[misc]
    )


def ov(kind: Kind, region: str, *, at: float = T0 - 1, **kw: object) -> Override:
    kw.setdefault("who", "alice")
    kw.setdefault("why", "maintenance")
    return Override(id=f"{kind.value}-{region}-{at}", kind=kind, region=region, created=at, **kw)  # type: ignore[arg-type]


def weights(table: WeightTable, service: str = "foo") -> dict[str, dict[str, int]]:
    return {src: row.weights() for src, row in table.rows[service].items()}


def settle(est, health, overrides, table, now, rounds=30):  # type: ignore[no-untyped-def]
    for i in range(rounds):
        table = evaluate(est, health, overrides, table, now + i).table
    return table


def test_default_split_is_98_1_1_per_source_region() -> None:
    ev = evaluate(estate(service("foo", policy())), Health(), [], None, T0)
    assert weights(ev.table) == {
        "dc1": {"dc1": 98, "dc2": 1, "dc3": 1},
        "dc2": {"dc1": 1, "dc2": 98, "dc3": 1},
        "dc3": {"dc1": 1, "dc2": 1, "dc3": 98},
    }
    assert ev.table.generation == 1 and ev.changed
    assert ev.decisions == ()  # the first table is not a change


def test_full_matrix_split() -> None:
    matrix = {
        "dc1": {"dc1": 80, "dc2": 15, "dc3": 5},
        "dc2": {"dc1": 0, "dc2": 100, "dc3": 0},
        "dc3": {"dc1": 10, "dc2": 10, "dc3": 80},
    }
    base = policy()
    p = Policy(base.name, 100, matrix, base.bounds, base.rollout, guardrails=base.guardrails)
    ev = evaluate(estate(service("foo", p)), Health(), [], None, T0)
    assert weights(ev.table) == matrix


@pytest.mark.parametrize(
    ("rule", "dc2_row"),
    [
        (Redistribute.LOCAL, {"dc1": 50, "dc2": 0, "dc3": 50}),  # local is down: proportional
        (Redistribute.PROPORTIONAL, {"dc1": 50, "dc2": 0, "dc3": 50}),
        (Redistribute.PRIORITY, {"dc1": 99, "dc2": 0, "dc3": 1}),  # priority dc1, dc2, dc3
    ],
)
def test_down_target_gets_zero_and_its_share_is_redistributed(
    rule: Redistribute, dc2_row: dict[str, int]
) -> None:
    est = estate(service("foo", policy(redistribute=rule)))
    first = evaluate(est, Health(), [], None, T0)
    ev = evaluate(est, down("foo/dc2"), [], first.table, T0 + 1)
    got = weights(ev.table)
    assert got["dc2"] == dc2_row
    # dc1's row: dc2's 1 goes to dc1 by every rule (local; proportional 98:1 rounds to dc1; priority)
    assert got["dc1"] == {"dc1": 99, "dc2": 0, "dc3": 1}
    assert ev.table.rows["foo"]["dc1"].cells["dc2"].out == Out.DOWN
    by_cell = {(d.source, d.target): d for d in ev.decisions}
    assert by_cell[("dc2", "dc2")].rule == "health.down"
    assert by_cell[("dc2", "dc2")].old == 98 and by_cell[("dc2", "dc2")].new == 0
    assert "refused" in by_cell[("dc2", "dc2")].input
    assert by_cell[("dc2", "dc1")].rule == "redistribute"


def test_proportional_follows_the_split_of_the_remaining_targets() -> None:
    matrix = {s: {"dc1": 60, "dc2": 30, "dc3": 10} for s in REGIONS}
    base = policy()
    p = Policy(
        "p",
        100,
        matrix,
        base.bounds,
        base.rollout,
        redistribute=Redistribute.PROPORTIONAL,
        guardrails=base.guardrails,
    )
    est = estate(service("foo", p))
    ev = evaluate(est, down("foo/dc1"), [], evaluate(est, Health(), [], None, T0).table, T0 + 1)
    assert weights(ev.table)["dc1"] == {"dc1": 0, "dc2": 75, "dc3": 25}


def test_bounds_hold_while_the_target_is_available() -> None:
    p = policy(local=88, remote=6, local_bounds=Bounds(0, 90), remote_bounds=Bounds(1, 100))
    est = estate(service("foo", p))
    ev = evaluate(est, down("foo/dc2"), [], evaluate(est, Health(), [], None, T0).table, T0 + 1)
    # dc2's 6 would go to the local region first, but dc1 may hold at most 90
    assert weights(ev.table)["dc1"] == {"dc1": 90, "dc2": 0, "dc3": 10}


def test_failing_over_beats_bounds_when_too_few_targets_remain() -> None:
    p = policy(remote_bounds=Bounds(1, 30), redistribute=Redistribute.PRIORITY)
    est = estate(service("foo", p))
    ev = evaluate(est, down("foo/dc3"), [], evaluate(est, Health(), [], None, T0).table, T0 + 1)
    # dc3's clients: two remote targets of at most 30 each cannot hold 100
    assert weights(ev.table)["dc3"] == {"dc1": 99, "dc2": 1, "dc3": 0}
    assert weights(ev.table)["dc1"] == {"dc1": 99, "dc2": 1, "dc3": 0}


def test_min_bound_keeps_a_remote_warm() -> None:
    p = policy(local=98, remote=1, remote_bounds=Bounds(1, 100), local_bounds=Bounds(0, 98))
    est = estate(service("foo", p))
    table = evaluate(est, Health(), [], None, T0).table
    ev = evaluate(est, down("foo/dc3"), [], table, T0 + 1)
    # dc1 is capped at 98, so dc3's share goes to dc2 rather than breaking the bound
    assert weights(ev.table)["dc1"] == {"dc1": 98, "dc2": 2, "dc3": 0}


def test_outage_drops_at_once_but_recovery_moves_by_max_step() -> None:
    est = estate(service("foo", policy(max_step=10)))
    t1 = evaluate(est, Health(), [], None, T0).table
    t2 = evaluate(est, down("foo/dc2"), [], t1, T0 + 1).table
    assert weights(t2)["dc2"] == {"dc1": 50, "dc2": 0, "dc3": 50}  # at once
    ev3 = evaluate(est, Health(), [], t2, T0 + 2)
    assert weights(ev3.table)["dc2"] == {"dc1": 45, "dc2": 10, "dc3": 45}
    assert {d.rule for d in ev3.decisions if d.source == "dc2" and d.target != "dc2"} == {"step"}
    t = ev3.table
    seen = [weights(t)["dc2"]["dc2"]]
    for i in range(3, 20):
        t = evaluate(est, Health(), [], t, T0 + i).table
        seen.append(weights(t)["dc2"]["dc2"])
    assert seen[:10] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 98]
    assert weights(t)["dc2"] == {"dc1": 1, "dc2": 98, "dc3": 1}


def test_ramp_back_is_time_based() -> None:
    est = estate(service("foo", policy(ramp=100.0)))
    t1 = evaluate(est, Health(), [], None, T0).table
    t2 = evaluate(est, down("foo/dc2"), [], t1, T0 + 1).table
    t3 = evaluate(est, Health(), [], t2, T0 + 10).table  # back in: ramp starts at T0+10
    cell = t3.rows["foo"]["dc2"].cells["dc2"]
    assert cell.weight == 0 and cell.ramp_start == T0 + 10 and cell.ramp == 100.0
    t4 = evaluate(est, Health(), [], t3, T0 + 60).table  # half way
    assert t4.rows["foo"]["dc2"].cells["dc2"].weight == 49
    t5 = evaluate(est, Health(), [], t4, T0 + 85).table
    assert t5.rows["foo"]["dc2"].cells["dc2"].weight == 74
    t6 = evaluate(est, Health(), [], t5, T0 + 111).table
    assert weights(t6)["dc2"] == {"dc1": 1, "dc2": 98, "dc3": 1}
    assert t6.rows["foo"]["dc2"].cells["dc2"].ramp_start is None


def test_a_ramp_that_ends_after_its_weights_is_a_new_generation() -> None:
    """The weights reach the target before the ramp's time is up; the evaluation after it
    only clears ramp_start: still a change, or the published table says "ramping" forever."""
    est = estate(service("foo", policy(ramp=10.0, max_step=100)))
    t1 = evaluate(est, Health(), [], None, T0).table
    t2 = evaluate(est, down("foo/dc2"), [], t1, T0 + 1).table
    t3 = evaluate(est, Health(), [], t2, T0 + 10).table  # back in: the ramp starts
    t4 = evaluate(est, Health(), [], t3, T0 + 19.99).table  # ~all the way: weights at target
    assert weights(t4)["dc2"] == {"dc1": 1, "dc2": 98, "dc3": 1}
    assert t4.rows["foo"]["dc2"].cells["dc2"].ramp_start == T0 + 10
    ev = evaluate(est, Health(), [], t4, T0 + 21)  # the ramp's time is up: nothing moves
    assert not ev.decisions and ev.changed and ev.table.generation == t4.generation + 1
    assert ev.table.rows["foo"]["dc2"].cells["dc2"].ramp_start is None


def test_region_enter_ramps_over_the_enter_overrides_ramp() -> None:
    est = estate(service("foo", policy(ramp=0.0)))
    exit_ = ov(Kind.EXIT, "dc2")
    t1 = evaluate(est, Health(), [exit_], None, T0).table
    assert weights(t1)["dc2"]["dc2"] == 0
    enter = ov(Kind.ENTER, "dc2", at=T0 + 5, ramp=50.0, expires=T0 + 55)
    # the store closes the exit when the enter is accepted: the exit is gone
    ev = evaluate(est, Health(), [enter], t1, T0 + 5)
    assert ev.table.rows["foo"]["dc2"].cells["dc2"].ramp == 50.0
    assert {d.rule for d in ev.decisions if d.target == "dc2"} == {"enter"}
    t = evaluate(est, Health(), [enter], ev.table, T0 + 30).table
    assert t.rows["foo"]["dc2"].cells["dc2"].weight == 49


def test_fail_open_keeps_the_last_known_good_row() -> None:
    est = estate(service("foo", policy()))
    t1 = evaluate(est, Health(), [], None, T0).table
    t2 = evaluate(est, down("foo/dc2", "foo/dc3"), [], t1, T0 + 1).table
    assert weights(t2)["dc2"] == {"dc1": 100, "dc2": 0, "dc3": 0}
    ev = evaluate(est, down("foo/dc1", "foo/dc2", "foo/dc3"), [], t2, T0 + 2)
    assert weights(ev.table) == weights(t2)  # never an empty row
    assert all(row.fail_open for row in ev.table.rows["foo"].values())
    # nothing moved, and the decisions say why dc1 keeps its weight while down
    assert {(d.rule, d.old, d.new) for d in ev.decisions} == {("fail-open", 100, 100)}
    assert "keeping the last known good" in ev.decisions[0].input
    # and from nothing at all: the split, not an empty row
    cold = evaluate(est, down("foo/dc1", "foo/dc2", "foo/dc3"), [], None, T0)
    assert weights(cold.table)["dc1"] == {"dc1": 98, "dc2": 1, "dc3": 1}
    assert cold.table.rows["foo"]["dc1"].fail_open


def test_fail_open_is_recorded_as_a_decision_when_it_moves_weights() -> None:
    est = estate(service("foo", policy()))
    t1 = evaluate(est, down("foo/dc2"), [], None, T0).table  # dc2 down from the start
    ev = evaluate(est, down("foo/dc1", "foo/dc2", "foo/dc3"), [ov(Kind.EXIT, "dc2")], t1, T0 + 1)
    assert all(r.fail_open for r in ev.table.rows["foo"].values())
    for row in ev.table.rows["foo"].values():
        assert sum(row.weights().values()) == 100


def test_min_active_regions_refuses_an_exit_unless_forced() -> None:
    p = policy(guardrails=Guardrails(min_active_regions=2, max_concurrent_exits=2))
    est = estate(service("foo", p), service("bar", p))
    health = down("foo/dc1")
    ev = evaluate(est, health, [ov(Kind.EXIT, "dc2")], None, T0)
    assert len(ev.refusals) == 1
    r = ev.refusals[0]
    assert r.rule == "min_active_regions" and r.services == ("foo",)
    assert "would leave 1 active region" in r.message and "min_active_regions 2" in r.message
    assert ev.admitted == ()
    assert weights(ev.table, "bar")["dc1"]["dc2"] == 1  # refused whole: bar untouched too
    forced = evaluate(
        est, health, [ov(Kind.EXIT, "dc2", force=True, why="dc2 is on fire")], None, T0
    )
    assert forced.refusals == () and len(forced.forced) == 1
    assert weights(forced.table, "bar")["dc1"]["dc2"] == 0


def test_max_concurrent_exits() -> None:
    p = policy(guardrails=Guardrails(min_active_regions=1, max_concurrent_exits=1))
    est = estate(service("foo", p))
    first, second = ov(Kind.EXIT, "dc2", at=T0 - 2), ov(Kind.EXIT, "dc3", at=T0 - 1)
    ev = evaluate(est, Health(), [second, first], None, T0)
    assert [r.override_id for r in ev.refusals] == [second.id]  # the older one wins
    assert ev.refusals[0].rule == "max_concurrent_exits"
    assert weights(ev.table)["dc1"] == {"dc1": 99, "dc2": 0, "dc3": 1}


def test_exiting_a_region_twice_changes_nothing() -> None:
    est = estate(service("foo", policy(guardrails=Guardrails(2, 1))))
    a, b = ov(Kind.EXIT, "dc2", at=T0 - 2), ov(Kind.EXIT, "dc2", at=T0 - 1)
    one = evaluate(est, Health(), [a], None, T0)
    two = evaluate(est, Health(), [a, b], None, T0)
    assert two.refusals == () and weights(one.table) == weights(two.table)


def test_drain_and_per_service_exit() -> None:
    est = estate(service("foo", policy()), service("bar", policy()))
    drain = ov(Kind.DRAIN, "dc1", services=frozenset({"foo"}))
    ev = evaluate(est, Health(), [drain], None, T0)
    assert ev.table.rows["foo"]["dc2"].cells["dc1"].out == Out.DRAIN
    assert weights(ev.table, "foo")["dc1"] == {"dc1": 0, "dc2": 50, "dc3": 50}
    assert weights(ev.table, "bar")["dc1"]["dc1"] == 98
    only_bar = ov(Kind.EXIT, "dc3", services=frozenset({"bar"}))
    ev2 = evaluate(est, Health(), [only_bar], None, T0)
    assert ev2.table.rows["bar"]["dc1"].cells["dc3"].out == Out.EXIT
    assert ev2.table.rows["foo"]["dc1"].cells["dc3"].out is None


def test_rollout_band_holds_cells_of_the_region_in_rollout() -> None:
    p = policy(rollout_local=Bounds(50, 60), rollout_remote=Bounds(0, 0), max_step=5)
    est = estate(service("foo", p))
    t1 = evaluate(est, Health(), [], None, T0).table
    ev = evaluate(est, Health(), [ov(Kind.ROLLOUT, "dc2")], t1, T0 + 1)
    got = weights(ev.table)
    assert got["dc2"]["dc2"] == 60  # clamped at once, not by max_step
    assert got["dc1"]["dc2"] == 0 and got["dc3"]["dc2"] == 0
    assert got["dc1"]["dc1"] == 99
    assert {d.rule for d in ev.decisions if d.target == "dc2"} == {"rollout"}
    assert sum(got["dc2"].values()) == 100


def test_expired_overrides_are_ignored() -> None:
    est = estate(service("foo", policy()))
    o = ov(Kind.EXIT, "dc2", at=T0 - 100, expires=T0 - 1)
    assert weights(evaluate(est, Health(), [o], None, T0).table)["dc1"]["dc2"] == 1


def test_unknown_region_or_service_is_refused() -> None:
    est = estate(service("foo", policy()))
    ev = evaluate(
        est,
        Health(),
        [ov(Kind.EXIT, "dc9"), ov(Kind.DRAIN, "dc1", services=frozenset({"nope"}))],
        None,
        T0,
    )
    assert sorted(r.rule for r in ev.refusals) == ["unknown_region", "unknown_service"]


def test_vip_shares_within_a_region() -> None:
    est = estate(service("foo", policy(), vips=2))
    vip_a, vip_b = (v.id for v in est.services[0].vips["dc1"])
    health = Health(vips={vip_a: TargetHealth(State.DOWN, T0, "http 503")})
    cell = evaluate(est, health, [], None, T0).table.rows["foo"]["dc1"].cells["dc1"]
    assert cell.vips == {vip_a: 0, vip_b: 1}
    both = Health(vips={v: TargetHealth(State.DOWN, T0, "x") for v in (vip_a, vip_b)})
    cell = evaluate(est, both, [], None, T0).table.rows["foo"]["dc1"].cells["dc1"]
    assert cell.vips == {vip_a: 1, vip_b: 1}  # never none


def test_unknown_health_never_moves_traffic() -> None:
    est = estate(service("foo", policy()))
    unknown = Health(regions={("foo", "dc2"): TargetHealth(State.UNKNOWN)})
    assert weights(evaluate(est, unknown, [], None, T0).table)["dc1"]["dc2"] == 1


def test_generation_rises_only_on_change_and_rows_are_reused() -> None:
    est = estate(service("foo", policy()))
    t1 = evaluate(est, Health(), [], None, T0).table
    ev = evaluate(est, Health(), [], t1, T0 + 5)
    assert ev.table.generation == t1.generation and not ev.changed
    assert ev.table.rows["foo"]["dc1"] is t1.rows["foo"]["dc1"]
    ev2 = evaluate(est, down("foo/dc3"), [], t1, T0 + 6)
    assert ev2.table.generation == t1.generation + 1


def test_table_round_trips_through_json() -> None:
    est = estate(service("foo", policy(ramp=60)), service("bar", policy()))
    t = evaluate(
        est, down("foo/dc2"), [ov(Kind.DRAIN, "dc3", services=frozenset({"bar"}))], None, T0
    ).table
    t = evaluate(est, Health(), [], t, T0 + 5).table
    again = WeightTable.from_dict(t.to_dict())
    assert again == t
    with pytest.raises(ValueError, match="not a weight table"):
        WeightTable.from_dict({"generation": 1})


def test_a_ramp_never_takes_back_weight_a_cell_holds() -> None:
    """Every region back from a total outage, one a second after the others: when every
    target ramps, the row must go over the caps somewhere; no cell may fall back later."""
    est = estate(service("foo", policy(max_step=25, ramp=6.0)))
    t = evaluate(est, Health(), [], None, T0).table
    t = evaluate(est, down("foo/dc1", "foo/dc2", "foo/dc3"), [], t, T0 + 1).table
    t = evaluate(est, down("foo/dc1"), [], t, T0 + 10).table
    seen = []
    for i in range(11, 22):
        t = evaluate(est, Health(), [], t, T0 + i).table
        seen.append(t.rows["foo"]["dc1"].cells["dc1"].weight)
    assert seen == sorted(seen) and seen[-1] == 98, seen


@pytest.mark.parametrize("size", [1, 7, 25, 100])
def test_an_evaluation_in_steps_is_the_evaluation(size: int) -> None:
    p = policy()
    est = estate(*(service(f"s{i:02d}", p) for i in range(25)))
    first = evaluate(est, Health(), [], None, T0)
    health = down(*(f"s{i:02d}/dc2" for i in range(0, 25, 2)))
    overrides = [ov(Kind.EXIT, "dc3", services=frozenset({"s01", "s03"}))]
    whole = evaluate(est, health, overrides, first.table, T0 + 1)
    steps = evaluating(est, health, overrides, first.table, T0 + 1, slice=size)
    yielded = 0
    while True:
        try:
            next(steps)
            yielded += 1
        except StopIteration as done:
            stepped = done.value
            break
    # a step per `size` services the exit's guardrails look at, then one per slice of rows
    assert yielded == 25 // size + -(-25 // size)
    assert stepped == whole and stepped.decisions and stepped.table.generation == 2
