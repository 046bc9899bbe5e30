"""evaluate(): health and operator intent in, the next weight table out.

Pure in what it computes: no I/O, no clock (time is `now`), no logging. One
side effect on the process: while it runs, the cyclic garbage collector is
paused (and turned back on after, if it was on), because its full collections
over every live table took half of an evaluation's time (`collector_paused`).
The result carries its
reasons: one decision per changed cell and one refusal per override a
guardrail rejected. The first table (no previous one) is not a change and
carries no decisions.

Fast by reuse, not by cleverness: rows of a service whose inputs are the
same as last time and that had settled are taken over as they are, and
identical row problems are solved once per evaluation.

`evaluating()` is the same evaluation in steps: a generator that yields after
every `SLICE` services and returns the `Evaluation`, so a caller on an event
loop lets other work run between steps (a region-wide change at 4,000
services is a few hundred milliseconds of Python; a step, a few).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from policies.guardrails import Refusal, admitting
from policies.health import Health, State
from policies.model import Estate, Policy, Service
from policies.overrides import Kind, Override, active
from policies.row import RowProblem, RowSolution, Rule, solve
from policies.safety import Check
from policies.steps import Steps, collector_paused, to_end
from policies.table import EMPTY, Cell, Out, Row, WeightTable


class Decision(NamedTuple):
    """Why one cell changed: the rule and the input that moved it, old -> new.

    A NamedTuple for the same reason as Cell: a region going down writes
    one per changed cell, thousands at a time.
    """

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
    changed: bool  # the table differs from the previous one (its generation rose)
    # per exit or drain, its guardrails with their numbers (`policies.admit`)
    checks: Mapping[str, tuple[Check, ...]] = field(default_factory=dict)


Ramp = tuple[float, float, int]  # start, duration, cap


@dataclass(frozen=True)
class _Intent:
    """The admitted overrides, indexed by kind and region."""

    by_kind: Mapping[Kind, Mapping[str, tuple[Override, ...]]]

    @classmethod
    def of(cls, overrides: Iterable[Override]) -> _Intent:
        by: dict[Kind, dict[str, list[Override]]] = {}
        for o in overrides:
            by.setdefault(o.kind, {}).setdefault(o.region, []).append(o)
        return cls({k: {r: tuple(v) for r, v in rs.items()} for k, rs in by.items()})

    def first(self, kind: Kind, region: str, service: str) -> Override | None:
        for o in self.by_kind.get(kind, {}).get(region, ()):
            if o.covers(service):
                return o
        return None


SLICE = 50  # services per step of `evaluating` (a region-wide change: ~10 ms a step)


def evaluate(
    estate: Estate,
    health: Health,
    overrides: Iterable[Override],
    previous: WeightTable | None,
    now: float,
) -> Evaluation:
    return to_end(
        evaluating(estate, health, overrides, previous, now, slice=len(estate.services) + 1)
    )


def evaluating(
    estate: Estate,
    health: Health,
    overrides: Iterable[Override],
    previous: WeightTable | None,
    now: float,
    *,
    slice: int = SLICE,
) -> Steps[Evaluation]:
    """`evaluate`, yielding after every `slice` services; returns the Evaluation.

    The inputs must not change until it returns (they are values: the caller
    holds the ones it passed). The collector stays paused from the first step
    to the last, yields included: turned on between slices it ran a
    collection at each (a full one, over every live table, now and then)."""
    prev_table = previous or EMPTY
    rows: dict[str, Mapping[str, Row]] = {}
    services = estate.services
    with collector_paused():
        admission = yield from admitting(estate, health, active(overrides, now), slice=slice)
        run = _Run(estate, health, _Intent.of(admission.admitted), prev_table, now)
        for start in range(0, len(services), slice):
            yield
            for service in services[start : start + slice]:
                rows[service.name] = run.service_rows(service)
    # a row can change without a decision: a ramp that ends after its weights reached the
    # target only clears ramp_start, and that table must be published too
    changed = bool(run.decisions) or run.rows_changed or rows.keys() != prev_table.rows.keys()
    table = WeightTable(
        generation=prev_table.generation + 1 if changed else prev_table.generation,
        computed_at=now,
        rows=rows,
        memo=run.memo,
    )
    return Evaluation(
        table,
        tuple(run.decisions),
        admission.refusals,
        tuple(o.id for o in admission.admitted),
        admission.forced,
        changed,
        admission.checks,
    )


class _Run:
    """The state of one evaluation: indexes of its inputs, solved rows, decisions."""

    def __init__(
        self, estate: Estate, health: Health, intent: _Intent, prev: WeightTable, now: float
    ) -> None:
        self.regions = estate.regions
        self.health = health
        self.intent = intent
        self.prev = prev
        self.now = now
        self.default_shares = estate.vip_shares
        self.down = {k for k, h in health.regions.items() if h.state == State.DOWN}
        self.down_vips = {k for k, h in health.vips.items() if h.state == State.DOWN}
        self.prev_memo = prev.memo if prev.memo.get("", ()) == estate.regions else {}
        self.memo: dict[str, object] = {"": estate.regions}
        self.solved: dict[tuple[object, ...], RowSolution] = {}
        self.decisions: list[Decision] = []
        self.rows_changed = False  # a row differs from the previous one (weights or not)
        self.texts: dict[tuple[object, ...], str] = {}

    def service_rows(self, service: Service) -> Mapping[str, Row]:
        name = service.name
        regions = self.regions
        policy = service.policy
        if self.intent.by_kind or self.down:
            out = tuple(self._out(service, t) for t in regions)
        else:
            out = tuple(None if t in service.vips else Out.NO_VIPS for t in regions)
        rollout = tuple(
            self.intent.first(Kind.ROLLOUT, t, name) is not None
            for t in (regions if Kind.ROLLOUT in self.intent.by_kind else ())
        ) or (False,) * len(regions)
        shares = self._shares(service)
        signature = (policy, out, rollout, shares)
        prev_rows = self.prev.rows.get(name)
        memo = self.prev_memo.get(name)
        if prev_rows is not None and memo is not None and memo[1] and memo[0] == signature:
            self.memo[name] = memo
            return prev_rows

        settled = True
        rows: dict[str, Row] = {}
        for si, source in enumerate(regions):
            prev = None if prev_rows is None else prev_rows.get(source)
            ramps = self._ramps(policy, source, out, prev, name) if prev is not None else None
            caps = (None,) * len(regions) if ramps is None else tuple(r and r[2] for r in ramps)
            prev_w = None if prev is None else tuple(_weight(prev, t) for t in regions)
            key = (id(policy), si, out, rollout, caps, prev_w)
            sol = self.solved.get(key)
            if sol is None:
                problem = RowProblem(si, out, rollout, caps, prev_w)
                sol = self.solved[key] = solve(policy, regions, problem)
            if ramps is not None and any(ramps):
                settled = False
            elif sol.weights != sol.target:
                settled = False
            cells = {}
            for ti, t in enumerate(regions):
                w = sol.weights[ti]
                cell_shares = shares[ti]
                if out[ti] is not None and not (sol.fail_open and w):
                    cell_shares = dict.fromkeys(cell_shares, 0)
                r = None if ramps is None else ramps[ti]
                if r is None:
                    cells[t] = Cell(w, out[ti], cell_shares)
                else:
                    cells[t] = Cell(w, out[ti], cell_shares, r[0], r[1])
            row = Row(name, source, policy.total, cells, sol.fail_open)
            if prev is not None and prev == row:
                row = prev
            else:
                self.rows_changed = True
                if self.prev is not EMPTY:
                    self._decide(row, prev, sol, policy, out, ramps)
            rows[source] = row
        self.memo[name] = (signature, settled)
        return rows

    def _out(self, service: Service, target: str) -> str | None:
        if target not in service.vips:
            return Out.NO_VIPS
        if self.intent.first(Kind.EXIT, target, service.name) is not None:
            return Out.EXIT
        if self.intent.first(Kind.DRAIN, target, service.name) is not None:
            return Out.DRAIN
        if (service.name, target) in self.down:
            return Out.DOWN
        return None

    def _why(self, service: str, target: str, out: str | None) -> str:
        key = ("why", service, target, out)
        text = self.texts.get(key)
        if text is None:
            text = self.texts[key] = self._explain_out(service, target, out)
        return text

    def _explain_out(self, service: str, target: str, out: str | None) -> str:
        if out == Out.EXIT:
            return _said(self.intent.first(Kind.EXIT, target, service))
        if out == Out.DRAIN:
            return _said(self.intent.first(Kind.DRAIN, target, service))
        if out == Out.DOWN:
            h = self.health.region(service, target)
            return f"{service} in {target} down since {_when(h.since)}: {h.reason}"
        return f"{service} has no VIPs in {target}"

    def _shares(self, service: Service) -> tuple[Mapping[str, int], ...]:
        defaults = self.default_shares[service.name]
        if not self.down_vips:
            return defaults
        shares = []
        for region_shares in defaults:
            down = [v for v in region_shares if v in self.down_vips]
            if down and len(down) < len(region_shares):
                # A region whose VIPs all probe down but that is not out
                # (too few vantages agree, or the row fails open) keeps them
                # all rather than none.
                region_shares = {v: 0 if v in down else w for v, w in region_shares.items()}
            shares.append(region_shares)
        return tuple(shares)

    def _ramps(
        self,
        policy: Policy,
        source: str,
        out: tuple[str | None, ...],
        prev: Row,
        service: str,
    ) -> list[Ramp | None] | None:
        """Per target: (start, duration, cap) while the cell ramps back; None: no ramps.

        A ramp starts when a target that was out (and held no weight) comes
        back in; its cap grows linearly from 0 to the policy's split over the
        duration: an `enter` override's ramp, else the policy's.
        """
        ramps: list[Ramp | None] = []
        split = policy.split.get(source, {})
        now = self.now
        for ti, t in enumerate(self.regions):
            ramp = None
            cell = prev.cells.get(t)
            if out[ti] is None and (
                cell is None or cell.ramp_start is not None or cell.out is not None
            ):
                if cell is not None and cell.ramp_start is not None and cell.ramp:
                    start, duration = cell.ramp_start, cell.ramp
                elif cell is None or cell.weight == 0:
                    enter = self.intent.first(Kind.ENTER, t, service)
                    duration = (
                        enter.ramp if enter is not None and enter.ramp is not None else policy.ramp
                    )
                    start = now
                else:
                    duration, start = 0.0, now
                if duration > 0 and now - start < duration:
                    frac = max(0.0, now - start) / duration
                    ramp = (start, duration, math.ceil(split.get(t, 0) * frac))
            ramps.append(ramp)
        return ramps if any(ramps) else None

    def _decide(
        self,
        row: Row,
        prev: Row | None,
        sol: RowSolution,
        policy: Policy,
        out: tuple[str | None, ...],
        ramps: list[Ramp | None] | None,
    ) -> None:
        for ti, (t, cell) in enumerate(row.cells.items()):
            old_cell = None if prev is None else prev.cells.get(t)
            old = None if old_cell is None else old_cell.weight
            if old_cell is not None and old == cell.weight and old_cell.out == cell.out:
                continue
            rule = sol.rules[ti]
            if sol.fail_open and cell.weight:
                rule = Rule.FAIL_OPEN
            ramp = None if ramps is None else ramps[ti]
            if prev is None:
                name, text = "initial", "first evaluation of this row"
            elif rule is Rule.OUT or (rule is None and cell.out is not None):
                name = {Out.EXIT: "exit", Out.DRAIN: "drain", Out.DOWN: "health.down"}.get(
                    cell.out or "", "no-vips"
                )
                text = self._why(row.service, t, cell.out)
            elif rule is Rule.REDISTRIBUTE:
                name = "redistribute"
                text = self._redistributed(out, policy)
            elif rule in (Rule.BOUNDS, Rule.ROLLOUT):
                name = rule.value
                text = f"held within {sol.lo[ti]}..{sol.hi[ti]}"
            elif rule is Rule.RAMP and ramp is not None:
                name = "ramp"
                text = f"ramping back since {_when(ramp[0])}: {self.now - ramp[0]:.0f}s of {ramp[1]:.0f}s, cap {ramp[2]}"
            elif rule is Rule.STEP:
                name = "step"
                text = f"towards {sol.target[ti]} by at most {policy.max_step} per evaluation"
            elif rule is Rule.FAIL_OPEN:
                name = "fail-open"
                text = f"every region of {row.service} is out; keeping the last known good weights"
            elif old_cell is not None and old_cell.out and not cell.out:
                name = "enter" if old_cell.out == Out.EXIT else "health.up"
                back = (
                    f"; ramping to {sol.target[ti]} over {ramp[1]:.0f}s" if ramp is not None else ""
                )
                text = f"{t} back in after {old_cell.out}{back}"
            else:
                name = "split"
                text = f"split {row.source}->{t} is {sol.target[ti]}"
            self.decisions.append(
                Decision(row.service, row.source, t, name, text, old, cell.weight)
            )

    def _redistributed(self, out: tuple[str | None, ...], policy: Policy) -> str:
        key = ("redistribute", out, policy.redistribute)
        text = self.texts.get(key)
        if text is None:
            gone = [
                f"{t} ({o})"
                for t, o in zip(self.regions, out, strict=True)
                if o and o != Out.NO_VIPS
            ]
            text = self.texts[key] = (
                f"share of {', '.join(gone) or 'returning targets'} moved by rule {policy.redistribute.value}"
            )
        return text


def _weight(row: Row, target: str) -> int:
    cell = row.cells.get(target)
    return 0 if cell is None else cell.weight


def _said(o: Override | None) -> str:
    if o is None:
        return "?"
    ticket = f" [{o.ticket}]" if o.ticket else ""
    forced = " (forced)" if o.force else ""
    return f"{o.describe()}{ticket}{forced}"


def _when(ts: float | None) -> str:
    if ts is None:
        return "?"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
