"""Every assertion can fail: synthetic samples that hold it, and samples that violate it."""

from __future__ import annotations

from drill_testing import (
    BASE,
    MESH_SYNCED,
    VIP,
    answers,
    drill,
    final,
    record,
    sample,
    step,
    table,
    weights,
    wles,
)

from chaos.drills.assertions import drill_passed, evaluate
from chaos.drills.invariants import reversals, row_problems
from chaos.drills.samples import HistoryEntry, OverrideRef, SplitCount
from chaos.drills.stats import cell_z
from chaos.drills.verdict import Verdict

OUTAGE = [{"id": "outage", "at": "1s", "do": "vip_fault", "vips": ["foo/dc2"], "mode": "refuse"}]
EXIT = [{"id": "exit", "at": "1s", "do": "region_exit", "region": "dc2"}]


def verdict(verdicts: list[Verdict], kind: str) -> Verdict:
    return next(v for v in verdicts if v.kind == kind)


def outage_samples(drop_at: float, mesh_at: float) -> list:
    out = weights("dc2")
    samples = []
    for i in range(20):
        t = i * 0.5
        rows = out if t >= drop_at else BASE
        tab = table(rows, out={"dc2": "VIP Down"} if t >= drop_at else None)
        samples.append(sample(t, rows, tab=tab, wle=wles({"dc2": t < mesh_at})))
    return samples


# --- reflects ---------------------------------------------------------------------------------


def test_reflects_measures_dns_and_wles_and_fails_past_its_bound() -> None:
    steps = [step("outage", "vip_fault", 1.0)]
    rec = record(outage_samples(drop_at=3.0, mesh_at=4.0), steps)
    ok = drill(
        OUTAGE, [{"check": "reflects", "step": "outage", "dns_within": "3s", "wles_within": "4s"}]
    )
    v = verdict(evaluate(ok, rec), "reflects")
    assert v.state == "passed", v
    assert v.values["dns_max"] == 2.0 and v.values["wles_max"] == 3.0
    tight = drill(OUTAGE, [{"check": "reflects", "step": "outage", "dns_within": "1s"}])
    v = verdict(evaluate(tight, rec), "reflects")
    assert v.state == "failed" and "dns over 1s" in v.details[0]


def test_reflects_needs_the_wire_too() -> None:
    """The tables drop the VIP, but DNS still answers it: not reflected."""
    steps = [step("outage", "vip_fault", 1.0)]
    out = weights("dc2")
    stale = answers(BASE)  # dc2 clients still answered dc2
    samples = [sample(i * 0.5, out, dns=stale) for i in range(10)]
    v = verdict(
        evaluate(
            drill(OUTAGE, [{"check": "reflects", "step": "outage", "dns_within": "3s"}]),
            record(samples, steps),
        ),
        "reflects",
    )
    assert v.state == "failed" and "never" in v.measured


def test_reflects_pending_while_a_practice_run_is_inside_the_deadline() -> None:
    steps = [step("outage", "vip_fault", 1.0)]
    samples = [sample(i * 0.5) for i in range(4)]
    d = drill(OUTAGE, [{"check": "reflects", "step": "outage", "dns_within": "5s"}])
    assert verdict(evaluate(d, record(samples, steps), now=1.5), "reflects").state == "pending"
    assert verdict(evaluate(d, record(samples, steps)), "reflects").state == "failed"


# --- converged and ordered --------------------------------------------------------------------


def exit_samples(dns_at: float, mesh_at: float, admitted: bool = True) -> list:
    exited = weights("dc2")
    samples = []
    for i in range(24):
        t = i * 0.5
        gone = t >= dns_at
        rows = exited if gone else BASE
        tab = table(rows, out={"dc2": "Region Exit"} if gone else None)
        ids = ("exit-1",) if admitted and gone else ()
        mesh_ids = ("exit-1",) if admitted and t >= mesh_at else ()
        samples.append(
            sample(
                t,
                rows,
                tab=tab,
                wle=wles({"dc2": t < mesh_at}),
                dns_admitted=ids,
                mesh_admitted=mesh_ids,
                mesh=MESH_SYNCED,
                role="leader",
                active=(OverrideRef("exit-1", "exit", "dc2"),) if gone else (),
            )
        )
    return samples


def test_converged_when_both_layers_dns_and_wles_agree() -> None:
    steps = [step("exit", "region_exit", 1.0, status=200, override_ids=("exit-1",), reason="r")]
    rec = record(exit_samples(dns_at=1.5, mesh_at=4.5), steps)
    v = verdict(
        evaluate(drill(EXIT, [{"check": "converged", "step": "exit", "within": "5s"}]), rec),
        "converged",
    )
    assert v.state == "passed" and v.values["seconds"] == 3.5
    v = verdict(
        evaluate(drill(EXIT, [{"check": "converged", "step": "exit", "within": "2s"}]), rec),
        "converged",
    )
    assert v.state == "failed"


def test_converged_fails_when_a_layer_never_admits() -> None:
    steps = [step("exit", "region_exit", 1.0, status=200, override_ids=("exit-1",))]
    rec = record(exit_samples(dns_at=1.5, mesh_at=4.5, admitted=False), steps)
    v = verdict(
        evaluate(drill(EXIT, [{"check": "converged", "step": "exit", "within": "8s"}]), rec),
        "converged",
    )
    assert v.state == "failed" and "not converged" in v.measured


def test_ordered_wants_the_mesh_a_hold_after_dns() -> None:
    steps = [step("exit", "region_exit", 1.0, status=200, override_ids=("exit-1",))]
    good = record(exit_samples(dns_at=1.5, mesh_at=4.5), steps)
    d = drill(EXIT, [{"check": "ordered", "step": "exit"}])
    assert verdict(evaluate(d, good), "ordered").state == "passed"
    rushed = record(exit_samples(dns_at=1.5, mesh_at=2.0), steps)
    v = verdict(evaluate(d, rushed), "ordered")
    assert v.state == "failed" and "later (the hold is 3s)" in v.details[0]


# --- takeover, impaired, fail open ------------------------------------------------------------


def test_takeover_within_and_after_the_lease() -> None:
    timeline = [{"id": "kill", "at": "1s", "do": "kill_leader", "region": "dc1"}]
    steps = [step("kill", "kill_leader", 1.0, member="dc1-a")]
    d = drill(timeline, [{"check": "takeover", "step": "kill", "within": "3s"}])
    # dc1-a is the only member of dc1 in the synthetic estate: another "member" never leads
    samples = [sample(i * 0.5, role="standby") for i in range(10)]
    v = verdict(evaluate(d, record(samples, steps)), "takeover")
    assert v.state == "failed"


def test_impaired_must_be_reported_by_every_member() -> None:
    timeline = [{"id": "impair", "at": "1s", "do": "vantage_impaired", "region": "dc3"}]
    steps = [step("impair", "vantage_impaired", 1.0)]
    d = drill(timeline, [{"check": "impaired", "step": "impair", "within": "2s"}])
    seen = [sample(i * 0.5, impaired=("dc3",) if i >= 4 else ()) for i in range(8)]
    assert verdict(evaluate(d, record(seen, steps)), "impaired").state == "passed"
    partial = [sample(i * 0.5, per={"dc1-a": {"impaired": ("dc3",)}}) for i in range(8)]
    assert verdict(evaluate(d, record(partial, steps)), "impaired").state == "failed"


def test_fail_open_rows_and_answers() -> None:
    timeline = [
        {
            "id": "outage",
            "at": "1s",
            "do": "vip_fault",
            "vips": ["foo/dc1", "foo/dc2", "foo/dc3"],
            "mode": "refuse",
        }
    ]
    steps = [step("outage", "vip_fault", 1.0)]
    d = drill(
        timeline, [{"check": "fail_open", "step": "outage", "service": "foo", "within": "3s"}]
    )
    down = {t: "VIP Down" for t in ("dc1", "dc2", "dc3")}
    held = [sample(i * 0.5, tab=table(BASE, out=down, fail_open=i >= 4)) for i in range(8)]
    assert verdict(evaluate(d, record(held, steps)), "fail_open").state == "passed"
    dry = {"foo": {s: ("rcode:SERVFAIL",) for s in BASE}}
    empty = [sample(i * 0.5, tab=table(BASE, out=down, fail_open=True), dns=dry) for i in range(8)]
    v = verdict(evaluate(d, record(empty, steps)), "fail_open")
    assert v.state == "failed" and "SERVFAIL" in v.details[0]


# --- invariants -------------------------------------------------------------------------------


def test_steady_fails_on_any_move() -> None:
    timeline = [{"id": "impair", "at": "1s", "do": "vantage_impaired", "region": "dc3"}]
    steps = [step("impair", "vantage_impaired", 1.0)]
    d = drill(timeline, [{"check": "steady"}])
    calm = [sample(i * 0.5) for i in range(6)]
    assert verdict(evaluate(d, record(calm, steps)), "steady").state == "passed"
    moved = calm[:3] + [sample(1.5 + i * 0.5, weights("dc2")) for i in range(3)]
    v = verdict(evaluate(d, record(moved, steps)), "steady")
    assert v.state == "failed" and "98 -> 0" in " ".join(v.details)


def test_no_flip_flop_counts_reversals_per_window() -> None:
    assert reversals([98, 98, 0, 0, 40, 98]) == 1
    assert reversals([98, 0, 98, 0]) == 2
    assert reversals([1, 2, 3]) == 0
    steps = [step("outage", "vip_fault", 1.0)]
    flips = [BASE, weights("dc2"), BASE, weights("dc2"), BASE]
    samples = [sample(i * 1.0, rows) for i, rows in enumerate(flips)]
    v = verdict(evaluate(drill(OUTAGE), record(samples, steps)), "no_flip_flop")
    assert v.state == "failed" and "reversals" in v.details[0]
    strict = drill(OUTAGE, [{"check": "no_flip_flop", "from": "outage", "max_reversals": 0}])
    once = [sample(i * 1.0, rows) for i, rows in enumerate([BASE, BASE, weights("dc2"), BASE])]
    assert verdict(evaluate(strict, record(once, steps)), "no_flip_flop").state == "failed"
    assert verdict(evaluate(drill(OUTAGE), record(once, steps)), "no_flip_flop").state == "passed"


def test_bounds_catch_sums_out_cells_rollout_and_ramp() -> None:
    from drill_testing import FACTS, POLICY

    policy = FACTS.services["foo"].policy
    good = table(BASE).rows["foo"]["dc1"]
    assert row_problems(policy, "dc1", good, 0.0, {}) == []
    bad_sum = table({"dc1": {"dc1": 90, "dc2": 1, "dc3": 1}}).rows["foo"]["dc1"]
    assert "sums to 92" in row_problems(policy, "dc1", bad_sum, 0.0, {})[0]
    leaking = table({"dc1": {"dc1": 97, "dc2": 2, "dc3": 1}}, out={"dc2": "Region Exit"}).rows[
        "foo"
    ]["dc1"]
    assert "out (Region Exit) but holds 2" in row_problems(policy, "dc1", leaking, 0.0, {})[0]
    wide = table({"dc1": {"dc1": 50, "dc2": 40, "dc3": 10}}).rows["foo"]["dc1"]
    assert row_problems(policy, "dc1", wide, 0.0, {}) == []
    assert "outside 0..25 (rollout)" in row_problems(policy, "dc1", wide, 0.0, {"dc2": True})[0]
    ramping = table({"dc2": {"dc1": 30, "dc2": 60, "dc3": 10}}, ramp={"dc2": (0.0, 6.0)}).rows[
        "foo"
    ]["dc2"]
    # 1s into a 6s ramp the cap is ceil(98/6) = 17
    assert "outside 0..17 (ramp)" in row_problems(policy, "dc2", ramping, 1.0, {})[0]
    assert POLICY.total == 100
    steps = [step("outage", "vip_fault", 1.0)]
    rec = record(
        [
            sample(0.0),
            sample(0.5, tab=table({"dc1": {"dc1": 90, "dc2": 1, "dc3": 1}}, generation=2)),
        ],
        steps,
    )
    assert verdict(evaluate(drill(OUTAGE), rec), "bounds").state == "failed"


def test_answers_every_query_of_a_running_member() -> None:
    steps = [step("outage", "vip_fault", 1.0)]
    broken = {"foo": {"dc1": ("error:timeout",), "dc2": (VIP["dc2"],), "dc3": ("empty",)}}
    rec = record([sample(0.0), sample(0.5, dns=broken), sample(1.0)], steps)
    v = verdict(evaluate(drill(OUTAGE), rec), "answers")
    assert v.state == "failed" and v.values["failed"] == 6  # two bad answers from three members


# --- split ------------------------------------------------------------------------------------


def split_count(
    counts: dict[str, int],
    source: str = "dc1",
    before: int = 1,
    after: int = 1,
    unanswered: dict[str, int] | None = None,
) -> SplitCount:
    lost = unanswered or {}
    return SplitCount(
        "split",
        "dc1-a",
        "foo",
        source,
        sum(counts.values()) + sum(lost.values()),
        counts,
        BASE[source],
        100,
        before,
        after,
        lost,
    )


def test_split_binomial_per_cell() -> None:
    assert cell_z(98, 100, 0.98) == 0.0
    assert cell_z(0, 100, 0.0) == 0.0 and cell_z(1, 100, 0.0) == float("inf")
    timeline = [{"id": "split", "at": "1s", "do": "measure_split"}]
    d = drill(timeline, [{"check": "split", "step": "split"}])
    steps = [step("split", "measure_split", 1.0)]
    fine = record([sample(0.0)], steps, splits=[split_count({"dc1": 295, "dc2": 3, "dc3": 2})])
    assert verdict(evaluate(d, fine), "split").state == "passed"
    skewed = record([sample(0.0)], steps, splits=[split_count({"dc1": 250, "dc2": 40, "dc3": 10})])
    v = verdict(evaluate(d, skewed), "split")
    assert v.state == "failed" and "|z|" in v.details[0]
    moving = record([sample(0.0)], steps, splits=[split_count({"dc1": 300}, before=1, after=2)])
    assert "changed during the burst" in verdict(evaluate(d, moving), "split").details[0]
    stray = record(
        [sample(0.0)], steps, splits=[split_count({"dc1": 296, "dc2": 3, "dc3": 1, "?": 1})]
    )
    assert "outside the service's VIPs" in verdict(evaluate(d, stray), "split").details[0]
    explicit = drill(
        timeline, [{"check": "split", "step": "split", "expected": {"dc1": {"dc1": 50, "dc3": 50}}}]
    )
    assert verdict(evaluate(explicit, fine), "split").state == "failed"


def test_split_reports_unanswered_queries_apart_from_wrong_answers() -> None:
    """A timeout is a timeout: it fails the burst as such, not as an answer outside the VIPs,
    and the binomial test counts the replies (19 lost queries do not read as |z| 13)."""
    timeline = [{"id": "split", "at": "1s", "do": "measure_split"}]
    d = drill(timeline, [{"check": "split", "step": "split"}])
    steps = [step("split", "measure_split", 1.0)]
    lossy = split_count({"dc1": 177, "dc2": 2, "dc3": 2}, unanswered={"timeout": 19})
    v = verdict(evaluate(d, record([sample(0.0)], steps, splits=[lossy])), "split")
    assert v.state == "failed"
    assert v.details == ("dc1-a foo clients in dc1: 19/200 queries unanswered (timeout)",)
    assert v.values["worst_z"] < 4


# --- nothing lost and the steps ---------------------------------------------------------------


def accepted(reason: str = "drill synthetic, step exit") -> list:
    return [step("exit", "region_exit", 1.0, status=200, override_ids=("exit-1",), reason=reason)]


def history(*ids: str, why: str = "drill synthetic, step exit") -> list[HistoryEntry]:
    return [HistoryEntry(f"accepted:{i}", "accepted", i, why, 1.0) for i in ids]


def test_nothing_lost_traces_every_accepted_action() -> None:
    exit_ref = OverrideRef("exit-1", "exit", "dc2", why="drill synthetic, step exit")
    last = sample(9.0, dns_admitted=("exit-1",), mesh_admitted=("exit-1",), active=(exit_ref,))
    good = record([last], accepted(), final=final([exit_ref], history=history("exit-1")))
    assert verdict(evaluate(drill(EXIT), good), "nothing_lost").state == "passed"
    lost = record([last], accepted(), final=final([], history=history("exit-1")))
    v = verdict(evaluate(drill(EXIT), lost), "nothing_lost")
    assert v.state == "failed" and "neither in force nor ended" in v.details[0]
    twice = record([last], accepted(), final=final([exit_ref], history=history("exit-1", "exit-2")))
    v = verdict(evaluate(drill(EXIT), twice), "nothing_lost")
    assert v.state == "failed" and "stored again as exit-2" in v.details[0]
    unadmitted = sample(9.0, active=(exit_ref,))
    v = verdict(
        evaluate(
            drill(EXIT),
            record([unadmitted], accepted(), final=final([exit_ref], history=history("exit-1"))),
        ),
        "nothing_lost",
    )
    assert v.state == "failed" and "not admitted in DNS" in v.details[0]


def test_a_refusal_leaves_nothing_and_is_checked_against_its_rule() -> None:
    timeline = [
        {
            "id": "exit",
            "at": "1s",
            "do": "region_exit",
            "region": "dc2",
            "expect": "refused",
            "rule": "min_active_regions",
        }
    ]
    refused = [
        step(
            "exit",
            "region_exit",
            1.0,
            status=409,
            rule="min_active_regions",
            reason="r",
            expect="refused",
        )
    ]
    rec = record([sample(0.0)], refused, final=final())
    vs = evaluate(drill(timeline), rec)
    assert drill_passed(vs)
    assert verdict(vs, "step").bound == "refused by min_active_regions"
    leaked = record(
        [sample(0.0)], refused, final=final([OverrideRef("exit-9", "exit", "dc2", why="r")])
    )
    v = verdict(evaluate(drill(timeline), leaked), "nothing_lost")
    assert v.state == "failed" and "left exit-9" in v.details[0]
    wrong = [
        step(
            "exit",
            "region_exit",
            1.0,
            status=409,
            rule="max_concurrent_exits",
            ok=False,
            detail="refused by max_concurrent_exits",
            expect="refused",
        )
    ]
    assert not drill_passed(evaluate(drill(timeline), record([sample(0.0)], wrong, final=final())))


def test_a_failed_step_fails_the_drill() -> None:
    broken = [step("outage", "vip_fault", 1.0, ok=False, detail="no VIP")]
    vs = evaluate(drill(OUTAGE), record([sample(0.0)], broken))
    assert not drill_passed(vs)
    assert any(v.check == "step outage" and v.failed for v in vs)
