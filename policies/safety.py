"""Blast-radius limits as plans meet them: `Check` values and the one `UnsafePlan` error.

Every plan that writes — an operator action's DNS rows, a cluster's
WorkloadEntry patches, a publish to an external DNS — checks itself against
its limit and keeps the numbers (octodns' `Plan`). `raise_if_unsafe` on the
plan raises `UnsafePlan` with every check it failed, unless forced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Check:
    """One limit as a plan met it: the rule, its numbers and the verdict, in words."""

    rule: str  # "max_traffic_share", "max_unhealthy_share", "min_active_regions", …
    passed: bool
    message: str  # for people: the refusal's text when it did not pass
    changed: float | None = None  # what the plan changes (weight, WLEs, records) …
    total: float | None = None  # … of how much there is
    limit: float | None = None  # the share (or count) allowed
    where: str = ""  # the cluster, the DNS server, or "" for DNS traffic

    @property
    def share(self) -> float | None:
        if self.changed is None or self.total is None:
            return None
        return self.changed / self.total if self.total else 0.0


class UnsafePlan(Exception):
    """A plan over a limit: nothing of it is applied unless forced.

    `checks` are the failed ones; `rule`, `changed`, `total`, `limit` and
    `where` are the first one's.
    """

    def __init__(self, checks: Sequence[Check]) -> None:
        failed = tuple(c for c in checks if not c.passed)
        if not failed:
            raise ValueError("UnsafePlan needs a failed check")
        self.checks = failed
        first = failed[0]
        self.rule, self.changed, self.total = first.rule, first.changed, first.total
        self.limit, self.where = first.limit, first.where
        super().__init__("; ".join(c.message for c in failed))
