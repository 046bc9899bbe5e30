"""Solve one row: where the weights of one (service, source region) go next.

Pure integer arithmetic on tuples indexed like the estate's regions, so
identical inputs across thousands of services are solved once (the caller
caches on `RowProblem`). Three phases:

1. target: the policy's split, with the share of every out target given to
   the available ones by the redistribution rule, then held within the
   cells' bounds (rollout bounds for a region in rollout, capped by ramps);
2. hard moves from the previous row: out targets drop to 0 at once and the
   freed weight goes straight to the cells short of their target; a cell
   outside its bounds is clamped at once;
3. the step: the remaining distance to the target, at most `max_step` per
   cell, increases and decreases balanced so the row keeps its total.

When no target is available the row fails open: the last known good weights
stay (the table never answers with nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from policies.model import Policy, Redistribute
from policies.split import distribute
from policies.table import Out


class Rule(StrEnum):
    """Why a cell holds the weight it holds; decisions name it."""

    INITIAL = "initial"
    SPLIT = "split"
    OUT = "out"
    REDISTRIBUTE = "redistribute"
    BOUNDS = "bounds"
    ROLLOUT = "rollout"
    RAMP = "ramp"
    STEP = "step"
    FAIL_OPEN = "fail-open"


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Everything a row's weights depend on, as a hashable key."""

    source: int  # index of the source region
    out: tuple[str | None, ...]  # per target: None or an `Out` reason
    rollout: tuple[bool, ...]  # per target: region in a rollout window
    caps: tuple[int | None, ...]  # per target: ramp cap, None when not ramping
    prev: tuple[int, ...] | None  # previous weights; None: no previous row


@dataclass(frozen=True, slots=True)
class RowSolution:
    weights: tuple[int, ...]
    target: tuple[int, ...]  # where the row is heading
    rules: tuple[Rule | None, ...]  # per target: why it changed (None: unchanged)
    fail_open: bool
    lo: tuple[int, ...]
    hi: tuple[int, ...]


def solve(policy: Policy, regions: tuple[str, ...], p: RowProblem) -> RowSolution:
    n = len(regions)
    total = policy.total
    src = regions[p.source]
    split_row = policy.split.get(src, {})
    base = [split_row.get(t, 0) for t in regions]
    avail = [i for i in range(n) if p.out[i] is None]
    if not avail:
        return _fail_open(total, base, p)

    lo = [0] * n
    hi = [0] * n
    for i in avail:
        b = (policy.rollout if p.rollout[i] else policy.bounds)[src][regions[i]]
        cap = p.caps[i]
        if cap is not None and p.prev is not None:
            # A ramp holds back increases; it never takes back weight a cell
            # already holds (when every target was ramping, the row had to
            # go over the caps somewhere: pulling it back would flip-flop).
            cap = max(cap, p.prev[i])
        hi[i] = b.hi if cap is None else min(b.hi, cap)
        lo[i] = min(b.lo, hi[i])
    if sum(hi[i] for i in avail) < total:
        # Too few targets left to hold the row within bounds: failing over
        # beats the bounds, and when even that is short, ramps yield too.
        for i in avail:
            if p.caps[i] is None:
                hi[i] = total
        if sum(hi[i] for i in avail) < total:
            for i in avail:
                hi[i] = total
    if sum(lo[i] for i in avail) > total:
        for i in avail:
            lo[i] = 0

    target = [0] * n
    for i in avail:
        target[i] = min(max(base[i], lo[i]), hi[i])
    _settle(policy, regions, p.source, base, avail, target, lo, hi, total)

    if p.prev is None:
        rules = tuple(Rule.INITIAL if w else None for w in target)
        return RowSolution(tuple(target), tuple(target), rules, False, tuple(lo), tuple(hi))

    rules_l: list[Rule | None] = [None] * n
    x = [p.prev[i] if i in avail else 0 for i in range(n)]
    for i in range(n):
        if x[i] != p.prev[i]:
            rules_l[i] = Rule.OUT
    for i in avail:
        clamped = min(max(x[i], lo[i]), hi[i])
        if clamped != x[i]:
            x[i] = clamped
            rules_l[i] = Rule.ROLLOUT if p.rollout[i] else Rule.BOUNDS
    delta = total - sum(x)
    if delta:
        if delta > 0:
            gap = [max(0, target[i] - x[i]) for i in range(n)]
            moved = distribute(delta, gap, gap)
        else:
            gap = [max(0, x[i] - target[i]) for i in range(n)]
            moved = [-m for m in distribute(-delta, gap, gap)]
        for i, m in enumerate(moved):
            if m:
                x[i] += m
                rules_l[i] = rules_l[i] or Rule.REDISTRIBUTE

    up = [max(0, target[i] - x[i]) for i in range(n)]
    down = [max(0, x[i] - target[i]) for i in range(n)]
    step = policy.max_step
    if step is not None:
        up = [min(u, step) for u in up]
        down = [min(d, step) for d in down]
    moving = min(sum(up), sum(down))
    if moving:
        rises = distribute(moving, up, up)
        falls = distribute(moving, down, down)
        for i in range(n):
            if rises[i] or falls[i]:
                x[i] += rises[i] - falls[i]
                if rules_l[i] is None:
                    if p.caps[i] is not None:
                        rules_l[i] = Rule.RAMP
                    elif x[i] != target[i]:
                        rules_l[i] = Rule.STEP
                    else:
                        rules_l[i] = Rule.SPLIT
    return RowSolution(tuple(x), tuple(target), tuple(rules_l), False, tuple(lo), tuple(hi))


def _settle(
    policy: Policy,
    regions: tuple[str, ...],
    source: int,
    base: list[int],
    avail: list[int],
    target: list[int],
    lo: list[int],
    hi: list[int],
    total: int,
) -> None:
    """Make `target` sum to `total` within [lo, hi], giving by the policy's rule."""
    diff = total - sum(target)
    if diff > 0:
        for group in _preference(policy, regions, source, avail):
            room = [hi[i] - target[i] if i in group else 0 for i in range(len(target))]
            given = distribute(diff, base, room)
            for i, g in enumerate(given):
                target[i] += g
            diff -= sum(given)
            if not diff:
                break
    elif diff < 0:
        slack = [target[i] - lo[i] if i in avail else 0 for i in range(len(target))]
        taken = distribute(-diff, slack, slack)
        for i, t in enumerate(taken):
            target[i] -= t


def _preference(
    policy: Policy, regions: tuple[str, ...], source: int, avail: list[int]
) -> list[set[int]]:
    """Groups of available targets, in the order they receive freed weight."""
    if policy.redistribute is Redistribute.LOCAL:
        rest = set(avail) - {source}
        return [{source}, rest] if source in avail else [rest]
    if policy.redistribute is Redistribute.PRIORITY:
        order = [regions.index(r) for r in policy.priority if r in regions]
        order += [i for i in range(len(regions)) if i not in order]
        return [{i} for i in order if i in avail]
    return [set(avail)]


def _fail_open(total: int, base: list[int], p: RowProblem) -> RowSolution:
    n = len(base)
    # Fail open onto the targets that are out only because probes say so;
    # when the operator took every target out, onto every target with VIPs.
    cands = [i for i in range(n) if p.out[i] == Out.DOWN]
    if not cands:
        cands = [i for i in range(n) if p.out[i] != Out.NO_VIPS]
    keep = [p.prev[i] if p.prev is not None and i in cands else 0 for i in range(n)]
    if not sum(keep):
        keep = [base[i] if i in cands else 0 for i in range(n)]
    room = [total if i in cands else 0 for i in range(n)]
    weights = tuple(distribute(total, keep, room))
    prev = p.prev or (0,) * n
    rules = tuple(Rule.FAIL_OPEN if weights[i] != prev[i] else None for i in range(n))
    zeros = (0,) * n
    return RowSolution(weights, weights, rules, True, zeros, zeros)
