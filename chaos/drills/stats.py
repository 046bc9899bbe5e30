"""The `split` check: do the DNS answers follow the expected split? A binomial test per cell.

A burst of n queries from one client region is n independent weighted picks
(`gtm.dns.picks`): the count k of answers in a target region is binomial with
p = the cell's weight / the row's total. A cell passes when

    |k - n·p| <= z · sqrt(n·p·(1-p)) + 0.5        (normal approximation, continuity-corrected)

so z = 4 (the default) wrongly fails a correct cell with probability about
6e-5; a cell of weight 0 must get no answer, a cell holding the whole row
every answer, no answer may fall outside the service's VIPs (`?`), and every
query must be answered: a query with no reply (a timeout) is reported as
such, apart from the answers, and the binomial test counts the replies. With
`expected: table` p comes from the row the member served when the burst
began, and the burst must not straddle a new table generation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from chaos.drills.checks import Split
from chaos.drills.samples import SplitCount
from chaos.drills.timing import Context
from chaos.drills.verdict import Verdict, failed, judged, pending


def cell_z(k: int, n: int, p: float) -> float:
    """How many standard deviations k lies from n·p (continuity-corrected; inf if impossible)."""
    mean = n * p
    if p <= 0.0 or p >= 1.0:
        return 0.0 if k == round(mean) else math.inf
    sd = math.sqrt(n * p * (1.0 - p))
    return max(0.0, abs(k - mean) - 0.5) / sd


def burst_problems(
    count: SplitCount, expected: Mapping[str, int], total: int, z: float
) -> tuple[float, list[str]]:
    """The worst |z| of one burst and what is off."""
    worst = 0.0
    problems = []
    where = f"{count.member} {count.service} clients in {count.source}"
    for why, k in sorted(count.unanswered.items()):
        problems.append(f"{where}: {k}/{count.n} queries unanswered ({why})")
    n = count.answered
    stray = count.counts.get("?", 0)
    if stray:
        problems.append(f"{where}: {stray}/{n} answers outside the service's VIPs")
    if n == 0:
        return worst, problems
    for target, weight in expected.items():
        k = count.counts.get(target, 0)
        score = cell_z(k, n, weight / total if total else 0.0)
        worst = max(worst, score)
        if score > z:
            share = f"{k}/{n} = {k / n:.1%}"
            problems.append(
                f"{where} -> {target}: {share}, expected {weight}/{total} (|z| {score:.1f})"
            )
    return worst, problems


def split(c: Split, ctx: Context) -> Verdict:
    label = c.label()
    counts = [x for x in ctx.record.splits if x.step == c.step]
    if not counts and ctx.waiting(c.step):
        return pending(label, c.check, f"step {c.step} has not run yet")
    if not counts:
        return failed(label, c.check, f"step {c.step} counted no answers")
    worst = 0.0
    problems: list[str] = []
    for count in counts:
        if isinstance(c.expected, dict):
            expected = c.expected.get(count.source)
            if expected is None:
                continue
            total = sum(expected.values())
        else:
            expected, total = count.expected, count.total
            if count.generation_before != count.generation_after:
                problems.append(
                    f"{count.member} {count.service} clients in {count.source}: the table changed"
                    f" during the burst ({count.generation_before} -> {count.generation_after})"
                )
                continue
        score, off = burst_problems(count, expected, total, c.z)
        worst = max(worst, score)
        problems += off
    asked = sum(x.n for x in counts)
    measured = f"{len(counts)} bursts, {asked} queries; worst cell |z| {worst:.1f}"
    bound = f"|z| ≤ {c.z:g} per cell (binomial)"
    return judged(not problems, label, c.check, measured, bound, problems, worst_z=worst)
