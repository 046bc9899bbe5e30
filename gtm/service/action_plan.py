"""An operator action as a plan value: what it changes in DNS and the mesh, and its checks.

`settle` is the one evaluation an action needs: the table both layers reach
once the action is in force (exits in DNS at once, in the mesh after the
hold; enters the other way round). `ActionPlan.of` diffs it against the table
DNS serves now — the rows that change and the share of traffic they move —
takes the mesh's plans for it, and checks the guardrails and blast-radius
limits with their numbers. A dry run returns the plan, the console previews
it, and `Operations` applies it after `raise_if_unsafe` (octodns' `Plan`).
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from failover import MeshPlan
from gtm.service.evaluation import evaluated
from policies import (
    Check,
    Estate,
    Evaluation,
    Health,
    Kind,
    Override,
    UnsafePlan,
    WeightTable,
)
from policies.layers import layer_intent

MAX_ROWS_SHOWN = 200
GUARDRAILS = ("min_active_regions", "max_concurrent_exits")  # as `policies.admit` checks them


@dataclass(frozen=True, slots=True)
class RowChange:
    """One DNS row the action changes: the weights clients in `source` get for `service`."""

    service: str
    source: str
    old: Mapping[str, int]
    new: Mapping[str, int]


@dataclass(frozen=True)
class ActionPlan:
    """What an action changes and whether it may; see the module doc."""

    action: str  # "exit dc2 (all services)", for people
    override_ids: tuple[str, ...]  # the overrides it adds (or ends)
    dns: tuple[RowChange, ...] = ()  # the rows that change (the first MAX_ROWS_SHOWN)
    rows_changed: int = 0
    mesh: Mapping[str, MeshPlan] = field(default_factory=dict)  # cluster -> its plan
    moved_share: float = 0.0  # of all DNS traffic, summed over every row
    checks: tuple[Check, ...] = ()  # guardrails and blast-radius limits, with their numbers
    ends: tuple[str, ...] = ()  # the overrides it ends, described ("exit-… exit dc2 (all)")
    ramp: tuple[float, float] | None = None  # an enter: DNS ramps back from, until (epoch s)

    @classmethod
    def of(
        cls,
        action: str,
        override_ids: Sequence[str],
        settled: Evaluation,
        served: WeightTable | None,
        mesh: Sequence[MeshPlan] = (),
        *,
        leaving: bool,
        max_traffic_share: float,
        max_unhealthy_share: float,
    ) -> ActionPlan:
        """The plan of an action whose settled evaluation is `settled`; DNS serves `served`.

        Guardrails are checked on overrides that take traffic out (`leaving`), as
        `policies.admit` judged them in `settled` (forced ones pass, and say so);
        blast radius too, failing above the limits (`raise_if_unsafe` lets `force`
        through)."""
        rows, moved, total = [], 0, 0
        for row in settled.table:
            was = None if served is None else served.row(row.service, row.source)
            new = row.weights()
            old = was.weights() if was is not None else dict.fromkeys(new, 0)
            total += row.total
            delta = sum(abs(new[t] - old.get(t, 0)) for t in new) // 2
            if delta:
                moved += delta
                rows.append(RowChange(row.service, row.source, old, new))
        share = moved / total if total else 0.0
        checks: list[Check] = []
        if leaving:
            checks += _guardrails(settled, override_ids)
            passed = share <= max_traffic_share
            checks.append(
                Check(
                    "max_traffic_share",
                    passed,
                    f"{action} would move {share:.0%} of DNS traffic, "
                    + (
                        f"within max_traffic_share {max_traffic_share:.0%}"
                        if passed
                        else f"more than max_traffic_share {max_traffic_share:.0%}; "
                        "use --force with a reason to override"
                    ),
                    changed=moved,
                    total=total,
                    limit=max_traffic_share,
                )
            )
            checks += [p.check(max_unhealthy_share) for p in mesh]
        return cls(
            action,
            tuple(override_ids),
            tuple(rows[:MAX_ROWS_SHOWN]),
            len(rows),
            {p.cluster: p for p in mesh},
            share,
            tuple(checks),
        )

    def refusals(self, force: bool = False) -> tuple[Check, ...]:
        """The checks that refuse the plan: guardrails (`force` was already judged by
        them), and blast-radius limits unless forced."""
        return tuple(c for c in self.checks if not c.passed and (c.rule in GUARDRAILS or not force))

    def raise_if_unsafe(self, force: bool = False) -> None:
        refusals = self.refusals(force)
        if refusals:
            raise UnsafePlan(refusals)

    def lines(self) -> list[str]:
        out = [
            f"{self.action}: {self.rows_changed} DNS row(s) change, {self.moved_share:.1%} moved"
        ]
        out += [f"  ends {e}" for e in self.ends]
        if self.ramp is not None:
            start, end = self.ramp
            out.append(f"  DNS ramps back from {_utc(start)} until {_utc(end)}")
        out += [f"  {r.service} in {r.source}: {dict(r.old)} -> {dict(r.new)}" for r in self.dns]
        for plan in self.mesh.values():
            out += [f"  {line}" for line in plan.lines()]
        out += [f"  {'ok' if c.passed else 'REFUSED'}: {c.message}" for c in self.checks]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


async def settle(
    estate: Estate,
    health: Health,
    after: Sequence[Override],
    served: WeightTable | None,
    now: float,
    hold: float,
) -> Evaluation:
    """The one evaluation of an action: the overrides `after` it, as both layers hold them
    once the hold has passed (the new one judged after those already in force)."""
    return await evaluated(estate, health, layer_intent(after, now + hold, hold).dns, served, now)


async def settle_enter(
    estate: Estate,
    health: Health,
    after: Sequence[Override],
    served: WeightTable | None,
    now: float,
    hold: float,
) -> Evaluation:
    """Where DNS ends up once an enter's ramp is over: the overrides `after` it, as DNS
    holds them after the hold, with every enter's ramp finished (the ramp is the way
    there; `max_step` does not bound the destination)."""
    dns = layer_intent(after, now + hold, hold).dns
    leaving = [o for o in dns if o.kind is not Kind.ENTER]
    return await evaluated(estate, health, leaving, None, now)


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _guardrails(settled: Evaluation, ids: Sequence[str]) -> list[Check]:
    """Each guardrail as `policies.admit` met it, with its numbers; a refused one says
    why in the refusal's own words."""
    refused = {(r.override_id, r.rule): r for r in settled.refusals if r.override_id in ids}
    out = []
    for oid in ids:
        for check in settled.checks.get(oid, ()):
            hit = refused.pop((oid, check.rule), None)
            out.append(check if hit is None else replace(check, passed=False, message=hit.message))
    out += [Check(r.rule, False, r.message) for r in refused.values()]
    return out
