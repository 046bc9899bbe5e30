"""Admit operator overrides through the policies' guardrails.

Overrides are admitted oldest first, each against the estate as the earlier
admitted ones and current health leave it. An exit or drain that would
leave a service with fewer than `min_active_regions` available regions, or
more than `max_concurrent_exits` regions exited, is refused whole (never
for some services only) unless it is forced with a reason. Because
admission runs at every evaluation, an exit admitted earlier is suspended
while health has since made it unsafe; the refusal says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from policies.health import Health, State
from policies.model import Estate
from policies.overrides import Kind, Override
from policies.safety import Check
from policies.steps import Steps, to_end


@dataclass(frozen=True, slots=True)
class Refusal:
    override_id: str
    rule: (
        str  # "min_active_regions" | "max_concurrent_exits" | "unknown_region" | "unknown_service"
    )
    message: str
    services: tuple[str, ...] = ()


@dataclass(frozen=True)
class Admission:
    admitted: tuple[Override, ...]
    refusals: tuple[Refusal, ...]
    forced: tuple[str, ...]  # ids admitted only because they were forced
    # per exit or drain, each guardrail with its tightest number over the services it
    # takes out (`changed`: regions left active / exited at once; `where`: that service)
    checks: Mapping[str, tuple[Check, ...]] = field(default_factory=dict)


def admit(estate: Estate, health: Health, overrides: Sequence[Override]) -> Admission:
    """`overrides` must be the active ones, oldest first (see `overrides.active`)."""
    return to_end(admitting(estate, health, overrides))


def admitting(
    estate: Estate, health: Health, overrides: Sequence[Override], *, slice: int = 100
) -> Steps[Admission]:
    """`admit`, yielding after every `slice` services an exit or a drain covers."""
    exited: dict[str, set[str]] = {}
    out: dict[str, set[str]] = {}
    admitted: list[Override] = []
    refusals: list[Refusal] = []
    forced: list[str] = []
    checks: dict[str, tuple[Check, ...]] = {}
    names = {s.name for s in estate.services}
    for o in overrides:
        if o.region not in estate.regions:
            refusals.append(
                Refusal(o.id, "unknown_region", f"{o.describe()}: no region named {o.region!r}")
            )
            continue
        unknown = sorted((o.services or set()) - names)
        if unknown:
            refusals.append(
                Refusal(o.id, "unknown_service", f"{o.describe()}: no service named {unknown}")
            )
            continue
        if o.kind not in (Kind.EXIT, Kind.DRAIN):
            admitted.append(o)
            continue
        breaks: dict[str, list[tuple[str, int, int]]] = {}
        tightest: dict[str, tuple[str, int, int]] = {}  # rule -> (service, value, limit)
        affected = []
        for n, s in enumerate(estate.services, 1):
            if n % slice == 0:
                yield
            if not o.covers(s.name) or o.region not in s.vips:
                continue
            affected.append(s.name)
            gone = out.get(s.name, set())
            if o.region in gone:
                continue  # already out: admitting it again changes nothing
            g = s.policy.guardrails
            before = [
                r for r in s.vips if r not in gone and health.region(s.name, r).state != State.DOWN
            ]
            after = [r for r in before if r != o.region]
            left = tightest.get("min_active_regions")
            if left is None or len(after) - g.min_active_regions < left[1] - left[2]:
                tightest["min_active_regions"] = (s.name, len(after), g.min_active_regions)
            if len(after) < len(before) and len(after) < g.min_active_regions:
                breaks.setdefault("min_active_regions", []).append(
                    (s.name, len(after), g.min_active_regions)
                )
            if o.kind is Kind.EXIT:
                exits = len(exited.get(s.name, set()) | {o.region})
                most = tightest.get("max_concurrent_exits")
                if most is None or g.max_concurrent_exits - exits < most[2] - most[1]:
                    tightest["max_concurrent_exits"] = (s.name, exits, g.max_concurrent_exits)
                if exits > g.max_concurrent_exits:
                    breaks.setdefault("max_concurrent_exits", []).append(
                        (s.name, exits, g.max_concurrent_exits)
                    )
        if o.kind in (Kind.EXIT, Kind.DRAIN):
            checks[o.id] = tuple(
                _check(rule, *tightest[rule], forced=o.force) for rule in RULES if rule in tightest
            )
        if breaks and not o.force:
            rule, hits = next(iter(breaks.items()))
            refusals.append(Refusal(o.id, rule, _explain(o, rule, hits), tuple(h[0] for h in hits)))
            continue
        if breaks:
            forced.append(o.id)
        admitted.append(o)
        for name in affected:
            out.setdefault(name, set()).add(o.region)
            if o.kind is Kind.EXIT:
                exited.setdefault(name, set()).add(o.region)
    return Admission(tuple(admitted), tuple(refusals), tuple(forced), checks)


RULES = ("min_active_regions", "max_concurrent_exits")


def _check(rule: str, service: str, value: int, limit: int, *, forced: bool) -> Check:
    """A guardrail at its tightest service; broken ones are refused unless forced."""
    if rule == "min_active_regions":
        kept = value >= limit
        what = f"leaves {value} active region(s) of {service}, min_active_regions {limit}"
    else:
        kept = value <= limit
        what = f"makes {value} region(s) of {service} exited at once, max_concurrent_exits {limit}"
    verdict = "kept" if kept else ("broken, forced" if forced else "broken")
    return Check(
        rule, kept or forced, f"{what}: {verdict}", changed=value, limit=limit, where=service
    )


def _explain(o: Override, rule: str, hits: list[tuple[str, int, int]]) -> str:
    shown = ", ".join(h[0] for h in hits[:5]) + (
        f" and {len(hits) - 5} more" if len(hits) > 5 else ""
    )
    _, got, limit = hits[0]
    if rule == "min_active_regions":
        what = f"would leave {got} active region(s), below min_active_regions {limit}"
    else:
        what = f"would make {got} regions exited at once, above max_concurrent_exits {limit}"
    return f"{o.kind.value} {o.region} refused: {what} for {len(hits)} service(s) ({shown}); use --force with a reason to override"
