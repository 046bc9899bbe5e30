"""The result of one assertion: passed, failed, pending or skipped, with what was measured.

`measured` and `bound` are for people (the summary table, the report);
`values` holds the numbers (seconds, counts) for `samples.json` and the
closing note. While a practice run is still going an assertion whose
deadline has not come is `pending` (`passed` None).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

State = Literal["passed", "failed", "pending", "skipped"]


@dataclass(frozen=True)
class Verdict:
    check: str  # the assertion's label: "reflects outage"
    kind: str  # its `check:` name
    state: State
    measured: str = ""
    bound: str = ""
    details: tuple[str, ...] = ()
    values: Mapping[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        if self.state in ("pending", "skipped"):
            return None
        return self.state == "passed"

    @property
    def failed(self) -> bool:
        return self.state == "failed"


def passed(check: str, kind: str, measured: str, bound: str = "", **values: float) -> Verdict:
    return judged(True, check, kind, measured, bound, **values)


def failed(
    check: str,
    kind: str,
    measured: str,
    bound: str = "",
    details: Sequence[str] = (),
    **values: float,
) -> Verdict:
    return judged(False, check, kind, measured, bound, details, **values)


def judged(
    ok: bool,
    check: str,
    kind: str,
    measured: str,
    bound: str = "",
    details: Sequence[str] = (),
    **values: float,
) -> Verdict:
    return Verdict(
        check, kind, "passed" if ok else "failed", measured, bound, tuple(details[:20]), values
    )


def pending(check: str, kind: str, measured: str, bound: str = "") -> Verdict:
    return Verdict(check, kind, "pending", measured, bound)


def skipped(check: str, kind: str, why: str) -> Verdict:
    return Verdict(check, kind, "skipped", why)


def seconds(x: float | None) -> str:
    return "never" if x is None else f"{x:.1f}s"


def spread(times: Sequence[float]) -> tuple[float, float]:
    """p50 and max of some durations (0, 0 for none)."""
    if not times:
        return 0.0, 0.0
    return float(statistics.median(times)), float(max(times))
