"""Invariants of evaluate() over random estates, health and overrides (hypothesis)."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import (
    Bounds,
    Estate,
    Guardrails,
    Health,
    Kind,
    Override,
    Policy,
    Redistribute,
    Service,
    State,
    TargetHealth,
    Vip,
    WeightTable,
    evaluate,
)
from policies.table import Out


@st.composite
def policies_(draw: st.DrawFn, regions: tuple[str, ...]) -> Policy:
    total = draw(st.sampled_from([10, 100, 1000]))
    split: dict[str, dict[str, int]] = {}
    for s in regions:
        cuts = sorted(
            draw(
                st.lists(
                    st.integers(0, total), min_size=len(regions) - 1, max_size=len(regions) - 1
                )
            )
        )
        parts = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
        split[s] = dict(zip(regions, parts, strict=True))

    def bounds_around(w: int) -> Bounds:
        lo = draw(st.integers(0, w))
        hi = draw(st.integers(w, total))
        return Bounds(lo, hi)

    bounds = {s: {t: bounds_around(split[s][t]) for t in regions} for s in regions}
    rollout = {s: {t: bounds_around(split[s][t]) for t in regions} for s in regions}
    return Policy(
        name="p",
        total=total,
        split=split,
        bounds=bounds,
        rollout=rollout,
        max_step=draw(st.none() | st.integers(1, max(1, total // 8))),
        ramp=draw(st.sampled_from([0.0, 10.0, 100.0])),
        redistribute=draw(st.sampled_from(list(Redistribute))),
        priority=tuple(draw(st.permutations(regions))),
        guardrails=Guardrails(
            draw(st.integers(1, len(regions))), draw(st.integers(0, len(regions)))
        ),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Estate, list[tuple[Health, list[Override], float]]]:
    regions = tuple(f"r{i}" for i in range(draw(st.integers(2, 4))))
    services = []
    for n in range(draw(st.integers(1, 4))):
        present = draw(st.lists(st.sampled_from(regions), min_size=1, unique=True))
        services.append(
            Service(
                name=f"s{n}",
                fqdn=f"s{n}.example.com",
                policy=draw(policies_(regions)),
                vips={
                    r: (Vip(Vip.make_id(f"s{n}", r, "10.0.0.1", 80), f"s{n}", r, "10.0.0.1", 80),)
                    for r in present
                },
            )
        )
    estate = Estate(regions, tuple(services))
    steps = []
    overrides: list[Override] = []
    now = 1000.0
    downs: set[tuple[str, str]] = set()
    for i in range(draw(st.integers(1, 12))):
        now += draw(st.sampled_from([0.5, 1.0, 5.0, 30.0]))
        if draw(st.booleans()):  # health often holds for a while, so rows converge step by step
            downs = draw(
                st.sets(
                    st.tuples(st.sampled_from([s.name for s in services]), st.sampled_from(regions))
                )
            )
        health = Health(regions={k: TargetHealth(State.DOWN, now, "x") for k in downs})
        if draw(st.booleans()):
            kind = draw(st.sampled_from(list(Kind)))
            svcs = draw(
                st.none() | st.sets(st.sampled_from([s.name for s in services]), min_size=1)
            )
            if kind is Kind.DRAIN and svcs is None:
                svcs = {services[0].name}
            overrides.append(
                Override(
                    id=f"o{i}",
                    kind=kind,
                    region=draw(st.sampled_from(regions)),
                    who="t",
                    why="t",
                    created=now - 0.1,
                    services=None if svcs is None else frozenset(svcs),
                    ramp=draw(st.none() | st.sampled_from([5.0, 50.0])),
                    force=draw(st.booleans()),
                )
            )
        if overrides and draw(st.booleans()):
            overrides.pop(0)
        steps.append((health, list(overrides), now))
    return estate, steps


def _limits(policy: Policy, row, rollout_regions: set[str], now: float, prev=None):  # type: ignore[no-untyped-def]
    lo, hi = {}, {}
    for t, cell in row.cells.items():
        if cell.out is not None:
            continue
        b = (policy.rollout if t in rollout_regions else policy.bounds)[row.source][t]
        cap = b.hi
        if cell.ramp_start is not None and cell.ramp:
            frac = max(0.0, now - cell.ramp_start) / cell.ramp
            ramp_cap = math.ceil(policy.split[row.source][t] * frac)
            if prev is not None and t in prev.cells:
                ramp_cap = max(ramp_cap, prev.cells[t].weight)  # a ramp never takes weight back
            cap = min(cap, ramp_cap)
        hi[t] = cap
        lo[t] = min(b.lo, cap)
    return lo, hi


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_invariants_hold_over_any_sequence(scenario) -> None:  # type: ignore[no-untyped-def]
    estate, steps = scenario
    table: WeightTable | None = None
    for health, overrides, now in steps:
        ev = evaluate(estate, health, overrides, table, now)
        again = evaluate(estate, health, overrides, table, now)
        assert again.table == ev.table and again.decisions == ev.decisions  # deterministic
        if table is not None:  # reusing settled rows (the memo) never changes the result
            fresh = evaluate(estate, health, overrides, WeightTable.from_dict(table.to_dict()), now)
            assert fresh.table == ev.table and fresh.decisions == ev.decisions
        admitted = [o for o in overrides if o.id in ev.admitted]
        for svc in estate.services:
            p = svc.policy
            for source, row in ev.table.rows[svc.name].items():
                w = row.weights()
                assert sum(w.values()) == p.total, (svc.name, source, w)
                assert all(v >= 0 for v in w.values())
                for t, cell in row.cells.items():
                    if cell.out is not None and not row.fail_open:
                        assert cell.weight == 0, (svc.name, source, t, cell)
                    if t not in svc.vips:
                        assert cell.out == Out.NO_VIPS and cell.weight == 0
                prev = None if table is None else table.row(svc.name, source)
                if not row.fail_open:
                    svc_rollout = {
                        o.region for o in admitted if o.kind is Kind.ROLLOUT and o.covers(svc.name)
                    }
                    lo, hi = _limits(p, row, svc_rollout, now, prev)
                    if sum(hi.values()) >= p.total and sum(lo.values()) <= p.total:
                        for t in lo:
                            assert lo[t] <= w[t] <= hi[t], (svc.name, source, t, w, lo, hi)
                if (
                    prev is not None
                    and p.max_step is not None
                    and not row.fail_open
                    and not prev.fail_open
                ):
                    same_outs = all(prev.cells[t].out == row.cells[t].out for t in row.cells)
                    if same_outs:
                        svc_rollout = {
                            o.region
                            for o in admitted
                            if o.kind is Kind.ROLLOUT and o.covers(svc.name)
                        }
                        lo, hi = _limits(p, row, svc_rollout, now, prev)
                        inside = all(lo[t] <= prev.cells[t].weight <= hi[t] for t in lo)
                        if inside and sum(hi.values()) >= p.total:
                            for t in row.cells:
                                assert abs(w[t] - prev.cells[t].weight) <= p.max_step, (
                                    svc.name,
                                    source,
                                    t,
                                )
        # one decision per changed cell, each naming a rule
        changed = {
            (r.service, r.source, t)
            for r in ev.table
            for t, c in r.cells.items()
            if table is not None
            and (
                table.row(r.service, r.source) is None
                or table.row(r.service, r.source).cells[t].weight != c.weight
                or table.row(r.service, r.source).cells[t].out != c.out
            )
        }
        assert {(d.service, d.source, d.target) for d in ev.decisions} == changed
        assert all(d.rule and d.input for d in ev.decisions)
        table = ev.table
