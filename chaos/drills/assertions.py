"""Check a drill's assertions against what it observed: pure functions of the record.

    verdicts = evaluate(drill, record)              # at the end
    verdicts = evaluate(drill, record, now=12.5)    # a practice run still going

Each `check:` of the drill file (and the ones every drill runs) yields one
`Verdict`; the steps yield one per action with an expectation (accepted, or
refused by a named guardrail) and one per step that failed. A drill passes
when no verdict failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from chaos.drills import apchecks, invariants, ledger, stats, timing
from chaos.drills.checks import (
    AccesspointReady,
    AccesspointStatus,
    Answers,
    Bounds,
    Check,
    Converged,
    FailOpen,
    Impaired,
    NoFlipFlop,
    NothingLost,
    Ordered,
    Reflects,
    Split,
    Steady,
    Swept,
    Takeover,
    Untouched,
    Withdrawn,
)
from chaos.drills.model import Drill
from chaos.drills.samples import Record
from chaos.drills.timing import Context
from chaos.drills.verdict import Verdict, failed

_CHECKS: dict[type[Check], Callable[[Any, Context], Verdict]] = {
    Reflects: timing.reflects,
    Converged: timing.converged,
    Ordered: timing.ordered,
    Takeover: timing.takeover,
    Impaired: timing.impaired,
    FailOpen: timing.fail_open,
    Steady: invariants.steady,
    Bounds: invariants.bounds,
    NoFlipFlop: invariants.no_flip_flop,
    Answers: invariants.answers,
    NothingLost: ledger.nothing_lost,
    Split: stats.split,
    AccesspointReady: apchecks.accesspoint_ready,
    Withdrawn: apchecks.withdrawn,
    Swept: apchecks.swept,
    AccesspointStatus: apchecks.accesspoint_status,
    Untouched: apchecks.untouched,
}


def evaluate(
    drill: Drill,
    record: Record,
    *,
    now: float | None = None,
    only: Sequence[str] | None = None,
) -> list[Verdict]:
    """Every verdict of the drill; `only` limits it to those `check:` kinds (and the steps)."""
    ctx = Context(drill, record, now)
    out = ledger.steps(ctx)
    for check in drill.checks():
        if only is not None and check.label() not in only and _kind(check) not in only:
            continue
        try:
            out.append(_CHECKS[type(check)](check, ctx))
        except Exception as e:  # a check that crashes is a failed check, with its reason
            out.append(failed(check.label(), _kind(check), f"the check crashed: {e!r}"))
    return out


def _kind(check: Check) -> str:
    return str(getattr(check, "check", type(check).__name__))


def drill_passed(verdicts: Sequence[Verdict]) -> bool:
    return not any(v.failed for v in verdicts)
