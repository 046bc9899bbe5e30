"""evaluate(): health and operator intent in, the next weight table out.

Pure: no I/O, no clock (time is `now`), no logging. The result carries its
reasons: one decision per changed cell and one refusal per override a
guardrail rejected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from policies.guardrails import Refusal, admit
from policies.health import Health, State
from policies.model import Estate, Policy, Service
from policies.overrides import Kind, Override, active
from policies.row import RowProblem, RowSolution, Rule, solve
from policies.table import EMPTY, Cell, Out, Row, WeightTable


@dataclass(frozen=True, slots=True)
class Decision:
    service: str
    source: str
    target: str
    rule: str
    input: str
    old: int | None
    new: int


@dataclass(frozen=True)
class Evaluation:
    table: WeightTable
    decisions: tuple[Decision, ...]
    refusals: tuple[Refusal, ...]
    admitted: tuple[str, ...]  # ids of the overrides in force
    forced: tuple[str, ...]  # ids in force only because they were forced

    @property
    def changed(self) -> bool:
        return bool(self.decisions)


@dataclass(frozen=True)
class _Intent:
    """The admitted overrides, indexed for per-service lookups."""

    exits: Mapping[str, tuple[Override, ...]]
    drains: Mapping[str, tuple[Override, ...]]
    rollouts: Mapping[str, tuple[Override, ...]]
    enters: Mapping[str, tuple[Override, ...]]

    @classmethod
    def of(cls, overrides: Iterable[Override]) -> _Intent:
        by: dict[Kind, dict[str, list[Override]]] = {k: {} for k in Kind}
        for o in overrides:
            by[o.kind].setdefault(o.region, []).append(o)

        def freeze(k: Kind) -> dict[str, tuple[Override, ...]]:
            return {r: tuple(v) for r, v in by[k].items()}

        return cls(freeze(Kind.EXIT), freeze(Kind.DRAIN), freeze(Kind.ROLLOUT), freeze(Kind.ENTER))

    @staticmethod
    def first(
        index: Mapping[str, tuple[Override, ...]], region: str, service: str
    ) -> Override | None:
        for o in index.get(region, ()):
            if o.covers(service):
                return o
        return None


def evaluate(
    estate: Estate,
    health: Health,
    overrides: Iterable[Override],
    previous: WeightTable | None,
    now: float,
) -> Evaluation:
    prev_table = previous or EMPTY
    admission = admit(estate, health, active(overrides, now))
    intent = _Intent.of(admission.admitted)
    regions = estate.regions
    solved: dict[tuple[int, RowProblem], RowSolution] = {}
    decisions: list[Decision] = []
    rows: dict[str, dict[str, Row]] = {}
    for service in estate.services:
        rows[service.name] = _service_rows(
            service, regions, health, intent, prev_table, now, solved, decisions
        )
    changed = bool(decisions) or set(rows) != set(prev_table.rows)
    table = WeightTable(
        generation=prev_table.generation + 1 if changed else prev_table.generation,
        computed_at=now,
        rows=rows,
    )
    return Evaluation(
        table,
        tuple(decisions),
        admission.refusals,
        tuple(o.id for o in admission.admitted),
        admission.forced,
    )


def _service_rows(
    service: Service,
    regions: tuple[str, ...],
    health: Health,
    intent: _Intent,
    prev_table: WeightTable,
    now: float,
    solved: dict[tuple[int, RowProblem], RowSolution],
    decisions: list[Decision],
) -> dict[str, Row]:
    name = service.name
    policy = service.policy
    outs: list[str | None] = []
    why: list[str] = []
    for t in regions:
        reason, text = _out(service, t, health, intent)
        outs.append(reason)
        why.append(text)
    out = tuple(outs)
    rollout = tuple(_Intent.first(intent.rollouts, t, name) is not None for t in regions)
    vip_shares = [_vip_shares(service, t, health) for t in regions]
    prev_rows = prev_table.rows.get(name, {})
    result: dict[str, Row] = {}
    for si, source in enumerate(regions):
        prev = prev_rows.get(source)
        ramps = _ramps(policy, regions, source, out, prev, intent, name, now)
        caps = tuple(None if r is None else r[2] for r in ramps)
        prev_w = None if prev is None else tuple(_weight(prev, t) for t in regions)
        problem = RowProblem(si, out, rollout, caps, prev_w)
        key = (id(policy), problem)
        sol = solved.get(key)
        if sol is None:
            sol = solved[key] = solve(policy, regions, problem)
        cells = {}
        for ti, t in enumerate(regions):
            w = sol.weights[ti]
            shares = vip_shares[ti]
            if out[ti] is not None and not (sol.fail_open and w):
                shares = dict.fromkeys(shares, 0)
            r = ramps[ti]
            cells[t] = Cell(
                w, out[ti], shares, None if r is None else r[0], None if r is None else r[1]
            )
        row = Row(name, source, policy.total, cells, sol.fail_open)
        if prev is not None and prev == row:
            row = prev
        else:
            _decide(row, prev, sol, policy, why, ramps, now, decisions)
        result[source] = row
    return result


def _out(service: Service, target: str, health: Health, intent: _Intent) -> tuple[str | None, str]:
    if target not in service.vips:
        return Out.NO_VIPS, f"{service.name} has no VIPs in {target}"
    o = _Intent.first(intent.exits, target, service.name)
    if o is not None:
        return Out.EXIT, _said(o)
    o = _Intent.first(intent.drains, target, service.name)
    if o is not None:
        return Out.DRAIN, _said(o)
    h = health.region(service.name, target)
    if h.state == State.DOWN:
        return Out.DOWN, f"{service.name} in {target} down since {_when(h.since)}: {h.reason}"
    return None, ""


def _vip_shares(service: Service, target: str, health: Health) -> dict[str, int]:
    vips = service.vips.get(target, ())
    shares = {v.id: (0 if health.vip(v.id).state == State.DOWN else v.weight) for v in vips}
    if vips and not any(shares.values()):
        # Every VIP probes down but the region is not out (too few vantages
        # agree, or the row fails open): keep them all rather than none.
        shares = {v.id: v.weight for v in vips}
    return shares


def _ramps(
    policy: Policy,
    regions: tuple[str, ...],
    source: str,
    out: tuple[str | None, ...],
    prev: Row | None,
    intent: _Intent,
    service: str,
    now: float,
) -> list[tuple[float, float, int] | None]:
    """Per target: (start, duration, cap) while the cell ramps back, else None.

    A ramp starts when a target that was out comes back in; its cap grows
    linearly from 0 to the policy's split over the duration (an `enter`
    override's ramp, else the policy's).
    """
    ramps: list[tuple[float, float, int] | None] = []
    split = policy.split.get(source, {})
    for ti, t in enumerate(regions):
        ramp: tuple[float, float, int] | None = None
        if out[ti] is None and prev is not None:
            cell = prev.cells.get(t)
            if cell is not None and cell.ramp_start is not None and cell.ramp:
                start, duration = cell.ramp_start, cell.ramp
            elif cell is None or (cell.out is not None and cell.weight == 0):
                enter = _Intent.first(intent.enters, t, service)
                duration = (
                    enter.ramp if enter is not None and enter.ramp is not None else policy.ramp
                )
                start = now
            else:
                duration = 0.0
                start = now
            if duration > 0 and now - start < duration:
                frac = max(0.0, now - start) / duration
                ramp = (start, duration, math.ceil(split.get(t, 0) * frac))
        ramps.append(ramp)
    return ramps


def _weight(row: Row, target: str) -> int:
    cell = row.cells.get(target)
    return 0 if cell is None else cell.weight


def _decide(
    row: Row,
    prev: Row | None,
    sol: RowSolution,
    policy: Policy,
    why: list[str],
    ramps: list[tuple[float, float, int] | None],
    now: float,
    decisions: list[Decision],
) -> None:
    outs = [c.out for c in row.cells.values()]
    for ti, (t, cell) in enumerate(row.cells.items()):
        old_cell = None if prev is None else prev.cells.get(t)
        old = None if old_cell is None else old_cell.weight
        if old == cell.weight and (old_cell is not None and old_cell.out == cell.out):
            continue
        rule = sol.rules[ti]
        if rule is Rule.OUT or (rule is None and cell.out is not None):
            name = {Out.EXIT: "exit", Out.DRAIN: "drain", Out.DOWN: "health.down"}.get(
                cell.out or "", "no-vips"
            )
            text = why[ti]
        elif rule is Rule.REDISTRIBUTE:
            gone = [f"{t2} ({o})" for t2, o in zip(row.cells, outs, strict=True) if o is not None]
            name = "redistribute"
            text = f"share of {', '.join(gone) or 'returning targets'} moved by rule {policy.redistribute.value}"
        elif rule in (Rule.BOUNDS, Rule.ROLLOUT):
            name = rule.value
            text = f"held within {sol.lo[ti]}..{sol.hi[ti]}"
        elif rule is Rule.RAMP:
            r = ramps[ti]
            assert r is not None
            name = "ramp"
            text = f"ramping back since {_when(r[0])}: {now - r[0]:.0f}s of {r[1]:.0f}s, cap {r[2]}"
        elif rule is Rule.STEP:
            name = "step"
            text = f"towards {sol.target[ti]} by at most {policy.max_step} per evaluation"
        elif rule is Rule.FAIL_OPEN:
            name = "fail-open"
            text = f"every region of {row.service} is out; keeping the last known good weights"
        elif rule is Rule.INITIAL:
            name = "initial"
            text = "first evaluation"
        elif old_cell is not None and old_cell.out and not cell.out:
            name = "enter" if old_cell.out == Out.EXIT else "health.up"
            r = ramps[ti]
            ramp = f"; ramping to {sol.target[ti]} over {r[1]:.0f}s" if r is not None else ""
            text = f"{t} back in after {old_cell.out}{ramp}"
        else:
            name = "split"
            text = f"split {row.source}->{t} is {sol.target[ti]}"
        decisions.append(Decision(row.service, row.source, t, name, text, old, cell.weight))


def _said(o: Override) -> str:
    ticket = f" [{o.ticket}]" if o.ticket else ""
    forced = " (forced)" if o.force else ""
    return f"{o.describe()}{ticket}{forced}"


def _when(ts: float | None) -> str:
    if ts is None:
        return "?"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
