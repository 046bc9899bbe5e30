"""The assertions that hold at every sample: bounds, no flip-flop, steady, every query answered.

Series are what a client can see change: per member, the weight of every
cell of the table it serves (service, client region, target region); per
cluster, every WorkloadEntry's effective weight (its weight while Healthy,
else 0). WorkloadEntries are patched one by one, so the shares among them
wobble while a change is half applied; each entry's own weight does not. A
member's series skips the samples it did not answer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from chaos.drills.checks import Answers, Bounds, NoFlipFlop, Steady
from chaos.drills.samples import OverrideRef, PolicyFacts, RowState, Sample
from chaos.drills.timing import Context
from chaos.drills.verdict import Verdict, failed, judged, skipped

Key = tuple[str, ...]
INF = float("inf")


# --- bounds -------------------------------------------------------------------------------


def row_problems(
    policy: PolicyFacts,
    source: str,
    row: RowState,
    at: float,
    rollout: Mapping[str, bool],
) -> list[str]:
    """What is wrong with one served row under its policy (empty: nothing)."""
    weights = row.weights()
    problems = []
    if sum(weights.values()) != row.total:
        problems.append(f"sums to {sum(weights.values())}, not {row.total}")
    for t, cell in row.cells.items():
        if cell.out is not None and cell.weight and not row.fail_open:
            problems.append(f"{t} is out ({cell.out}) but holds {cell.weight}")
    avail = [t for t, cell in row.cells.items() if cell.out is None]
    if not avail:
        return problems
    lo: dict[str, int] = {}
    hi: dict[str, int] = {}
    capped: set[str] = set()
    for t in avail:
        in_rollout = rollout.get(t, False)
        b_lo = (policy.rollout_lo if in_rollout else policy.lo)[source][t]
        b_hi = (policy.rollout_hi if in_rollout else policy.hi)[source][t]
        cell = row.cells[t]
        cap = None
        if cell.ramp_start is not None and cell.ramp:
            frac = max(0.0, at - cell.ramp_start) / cell.ramp
            if frac < 1.0:
                cap = math.ceil(policy.split[source][t] * frac)
                capped.add(t)
        hi[t] = b_hi if cap is None else min(b_hi, cap)
        lo[t] = min(b_lo, hi[t])
    # As the engine: too few targets to hold the row within bounds lifts them (fail over first).
    if sum(hi.values()) < row.total:
        for t in avail:
            if t not in capped:
                hi[t] = row.total
        if sum(hi.values()) < row.total:
            hi = dict.fromkeys(avail, row.total)
    if sum(lo.values()) > row.total:
        lo = dict.fromkeys(avail, 0)
    for t in avail:
        w = weights[t]
        if not lo[t] <= w <= hi[t]:
            why = " (rollout)" if rollout.get(t) else (" (ramp)" if t in capped else "")
            problems.append(f"{t} holds {w}, outside {lo[t]}..{hi[t]}{why}")
    return problems


def _rollouts(samples: tuple[Sample, ...]) -> list[OverrideRef]:
    found: dict[str, OverrideRef] = {}
    for s in samples:
        for m in s.members.values():
            for o in m.active:
                if o.kind == "rollout":
                    found[o.id] = o
    return list(found.values())


def bounds(c: Bounds, ctx: Context) -> Verdict:
    facts = ctx.record.estate
    label = "bounds"
    if not facts.policies_known:
        return skipped(label, c.check, "the policies are unknown (no estate file given)")
    rollouts = _rollouts(ctx.record.samples)
    seen: set[tuple[str, int, float]] = set()
    rows = 0
    problems: list[str] = []
    for s in ctx.record.samples:
        for m in s.running():
            table = m.table
            if table is None or (m.name, table.generation, table.computed_at) in seen:
                continue
            seen.add((m.name, table.generation, table.computed_at))
            at = table.computed_at
            for service, by_source in table.rows.items():
                known = facts.services.get(service)
                if known is None:
                    continue
                in_rollout = {
                    r: any(
                        o.region == r
                        and o.covers(service)
                        and o.created <= at
                        and (o.expires is None or at < o.expires)
                        for o in rollouts
                    )
                    for r in facts.regions
                }
                for source, row in by_source.items():
                    rows += 1
                    for p in row_problems(known.policy, source, row, at, in_rollout):
                        problems.append(
                            f"t={s.t:.1f}s {m.name} generation {table.generation}: "
                            f"{service} clients in {source}: {p}"
                        )
    measured = f"{rows} rows of {len(seen)} served tables checked; {len(problems)} outside"
    return judged(not problems, label, c.check, measured, "policy bounds", problems, rows=rows)


# --- series -------------------------------------------------------------------------------


def series(
    samples: tuple[Sample, ...], services: set[str] | None = None
) -> dict[Key, list[tuple[float, int]]]:
    """Every DNS cell per member and every WLE share per cluster, over time."""
    out: dict[Key, list[tuple[float, int]]] = {}
    for s in samples:
        for m in s.running():
            if m.table is None:
                continue
            for service, by_source in m.table.rows.items():
                if services is not None and service not in services:
                    continue
                for source, row in by_source.items():
                    for target, cell in row.cells.items():
                        key = ("dns", m.name, service, source, target)
                        out.setdefault(key, []).append((s.t, cell.weight))
        for cluster, entries in s.wles.items():
            for w in entries:
                if services is None or w.service in services:
                    out.setdefault(("wle", cluster, w.service, w.name), []).append(
                        (s.t, w.effective)
                    )
    return out


def _window(points: list[tuple[float, int]], start: float, end: float) -> list[int]:
    """The values inside [start, end), led by the last value before `start`."""
    before = [v for t, v in points if t < start]
    inside = [v for t, v in points if start <= t < end]
    return before[-1:] + inside


def reversals(values: list[int]) -> int:
    directions = [1 if b > a else -1 for a, b in itertools.pairwise(values) if b != a]
    return sum(1 for a, b in itertools.pairwise(directions) if a != b)


def changes(values: list[int]) -> list[int]:
    """The values with repeats dropped: 98, 98, 0, 0, 40 -> 98, 0, 40."""
    out: list[int] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out


def _describe(key: Key) -> str:
    if key[0] == "dns":
        _, member, service, source, target = key
        return f"DNS {member}: {service} clients in {source} -> {target}"
    _, cluster, service, name = key
    return f"WLE {cluster}/{name} ({service}) weight if Healthy"


@dataclass(frozen=True)
class Window:
    name: str
    start: float
    end: float


def windows(c: NoFlipFlop | Steady, ctx: Context) -> list[Window]:
    """From `from` to `until`; without them, a steady check spans the drill and a
    flip-flop check has one window per step (per fault)."""
    steps = ctx.record.steps
    if c.start is not None or c.until is not None or isinstance(c, Steady):
        first = ctx.record.step(c.start) if c.start else None
        last = ctx.record.step(c.until) if c.until else None
        start = first.t if first is not None else -INF
        end = last.t if last is not None else INF
        return [Window(f"{c.start or 'start'}..{c.until or 'end'}", start, end)]
    edges = sorted((s.t, s.id) for s in steps if s.do != "measure_split")
    out = [Window("before the first step", -INF, edges[0][0] if edges else INF)]
    for i, (t, name) in enumerate(edges):
        end = edges[i + 1][0] if i + 1 < len(edges) else INF
        out.append(Window(f"from {name}", t, end))
    return out


def _offenders(
    all_series: Mapping[Key, list[tuple[float, int]]], spans: list[Window], limit: int
) -> Iterator[str]:
    for w in spans:
        for key, points in all_series.items():
            values = _window(points, w.start, w.end)
            n = reversals(values)
            if n > limit:
                path = " -> ".join(str(v) for v in changes(values)[:12])
                yield f"{_describe(key)}: {path} ({n} reversals {w.name})"


def no_flip_flop(c: NoFlipFlop, ctx: Context) -> Verdict:
    label = c.label()
    all_series = series(ctx.record.samples)
    spans = windows(c, ctx)
    bad = list(_offenders(all_series, spans, c.max_reversals))
    measured = f"{len(all_series)} series in {len(spans)} window(s); {len(bad)} flip-flop"
    bound = f"≤ {c.max_reversals} reversal(s) per {'window' if len(spans) == 1 else 'fault'}"
    return judged(not bad, label, c.check, measured, bound, bad, series=len(all_series))


def steady(c: Steady, ctx: Context) -> Verdict:
    label = c.label()
    for ref in (c.start, c.until):
        if ref is not None and ctx.record.step(ref) is None:
            return failed(label, c.check, f"step {ref} did not run")
    [w] = windows(c, ctx)
    moved = []
    all_series = series(ctx.record.samples, set(c.services) if c.services else None)
    for key, points in all_series.items():
        values = changes(_window(points, w.start, w.end))
        if len(values) > 1:
            moved.append(f"{_describe(key)}: {' -> '.join(map(str, values[:12]))}")
    measured = f"{len(all_series)} series; {len(moved)} moved {w.name}"
    return judged(not moved, label, c.check, measured, "no weight moves", moved, moved=len(moved))


# --- answers --------------------------------------------------------------------------------


def _onboarded_until(ctx: Context) -> dict[str, float]:
    """A service an AccessPoint onboards -> when the drill deleted that AP (inf: never)."""
    out: dict[str, float] = {}
    deleted = {r.id: r.t for r in ctx.record.steps if r.do == "accesspoint_delete" and r.ok}
    for service, known in ctx.record.estate.services.items():
        if known.accesspoint is None:
            continue
        ns, name = known.accesspoint.split("/", 1)
        out[service] = min(
            (
                t
                for sid, t in deleted.items()
                if getattr(ctx.drill.step(sid), "accesspoint", None) in (name, known.accesspoint)
                and getattr(ctx.drill.step(sid), "namespace", None) in (None, ns)
            ),
            default=INF,
        )
    return out


def answers(c: Answers, ctx: Context) -> Verdict:
    """Every query to a member that answered its API in this sample and the next got an address.

    A service an AccessPoint onboards counts at a member from the first sample in which the
    member answered it with addresses only (before, it had not onboarded it yet) until the
    drill deletes the AP."""
    samples = ctx.record.samples
    asked = 0
    bad: list[str] = []
    onboarded = _onboarded_until(ctx)
    started: set[tuple[str, str]] = set()  # (member, service) answered with an address
    for i, s in enumerate(samples):
        after = samples[i + 1] if i + 1 < len(samples) else None
        away = ctx.absent(s.t - s.took - 0.01) | ctx.absent(s.t)
        for m in s.running():
            if m.name in away:
                continue  # taken down by the drill when this sample began, or during it
            if after is not None and not after.members.get(m.name, m).reachable:
                continue  # killed or paused during this sample
            for service, by_source in s.dns.get(m.name, {}).items():
                if service in onboarded:
                    every = [a for got in by_source.values() for a in got]
                    if (m.name, service) not in started and every and all("/" in a for a in every):
                        started.add((m.name, service))
                    if (m.name, service) not in started or s.t >= onboarded[service]:
                        continue
                for source, got in by_source.items():
                    asked += len(got)
                    bad += [
                        f"t={s.t:.1f}s {m.name}: {service} to {source} clients: {a}"
                        for a in got
                        if "/" not in a and not a.startswith("addr:")
                    ]
    measured = f"{asked - len(bad)}/{asked} queries answered with an address"
    return judged(
        not bad, "answers", c.check, measured, "every query", bad, asked=asked, failed=len(bad)
    )
