"""Nothing lost, nothing doubled: the drill's actions against the intent and history at the end.

Every action a drill takes carries a reason naming the drill and the step
(`faults.reason_of`), so its overrides can be found wherever they went. For
an accepted action:

- each override id it was given is in every member's intent at the end, in
  force or ended (a tombstone) — never missing;
- each region's history (its HA pair's audit) holds exactly one `accepted`
  (or `entered`) entry for it, and no other override carries its reason (a
  retried request that stored the action twice);
- the last look at every member shows the overrides still in force admitted
  in its DNS layer (and in the mesh once the hold has passed).

A refused action left nothing: no override with its reason anywhere. The
`steps` check reports every step that did not do what the drill expected
(an action accepted or refused as the file says, a fault injected).
"""

from __future__ import annotations

from collections import Counter

from chaos.drills.checks import NothingLost
from chaos.drills.samples import FinalMember, Sample, StepRecord
from chaos.drills.timing import Context
from chaos.drills.verdict import Verdict, judged, pending, skipped

ACTIONS = {"region_exit", "region_enter", "drain", "rollout", "remove"}
ACCEPTED = {"accepted", "entered"}


def steps(ctx: Context) -> list[Verdict]:
    """One verdict for every action with an expectation, one for every other step that failed."""
    out = []
    for r in ctx.record.steps:
        if r.do in ACTIONS:
            said = f"HTTP {r.status}" + (f" ({r.rule})" if r.rule else "")
            want = r.expect or "accepted"
            rule = ""
            if want == "refused":
                planned = ctx.drill.step(r.id) if "/" not in r.id else None
                wanted_rule = getattr(planned, "rule", None)
                rule = f" by {wanted_rule}" if wanted_rule else ""
            out.append(
                judged(
                    r.ok,
                    f"{want} {r.id}",
                    "step",
                    said,
                    f"{want}{rule}",
                    [] if r.ok else [r.detail],
                )
            )
        elif not r.ok:
            out.append(judged(False, f"step {r.id}", "step", r.detail, "injected"))
    return out


def _tagged(final: FinalMember, reason: str) -> set[str]:
    """Ids of the overrides with this reason a member holds in force or saw accepted."""
    ids = {o.id for o in final.active if o.why == reason}
    for e in final.history or ():
        if e.action in ACCEPTED and e.why == reason:
            ids.add(e.override_id)
    return ids


def _admitted(last: Sample | None, ids: set[str], hold_passed: bool) -> list[str]:
    problems = []
    if last is None:
        return problems
    for m in last.running():
        live = {o.id for o in m.active if o.expires is None or o.expires > last.wall}
        for i in ids & live:
            if i not in m.dns_admitted:
                problems.append(f"{m.name}: {i} is in force but not admitted in DNS")
            if hold_passed and i not in m.mesh_admitted:
                problems.append(f"{m.name}: {i} is in force but not admitted in the mesh")
    return problems


def _accepted(r: StepRecord, ctx: Context) -> list[str]:
    problems = []
    ids = set(r.override_ids)
    reason = r.reason or ""
    for f in ctx.record.final.values():
        if not f.reachable:
            continue
        held = {o.id for o in f.active} | set(f.ended)
        problems += [f"{f.name}: {i} ({r.id}) is neither in force nor ended" for i in ids - held]
        extra = _tagged(f, reason) - ids
        if extra:
            problems.append(f"{f.name}: {r.id} was stored again as {', '.join(sorted(extra))}")
        if f.history is not None:
            entries = Counter(
                e.id for e in f.history if e.action in ACCEPTED and e.override_id in ids
            )
            for i in ids:
                n = sum(c for e, c in entries.items() if e.endswith(":" + i))
                if n != 1:
                    problems.append(f"{f.region} history: {i} ({r.id}) accepted {n} times")
    samples = ctx.record.samples
    last = samples[-1] if samples else None
    hold_passed = last is not None and last.t - r.t > ctx.record.estate.hold + 2.0
    return problems + _admitted(last, ids, hold_passed)


def nothing_lost(c: NothingLost, ctx: Context) -> Verdict:
    label = "nothing lost"
    if ctx.now is not None:
        return pending(label, c.check, "checked at the end")
    if not ctx.record.final:
        return skipped(label, c.check, "no final intent collected")
    actions = [r for r in ctx.record.steps if r.do in ACTIONS and r.reason]
    problems: list[str] = []
    accepted = refused = 0
    for r in actions:
        if r.status == 200 and r.override_ids:
            accepted += 1
            problems += _accepted(r, ctx)
        elif r.status == 409 or (r.status == 503 and r.expect == "unavailable"):
            refused += 1  # refused by a guardrail, or by a store that could not write
            for f in ctx.record.final.values():
                left = _tagged(f, r.reason or "")
                if left:
                    problems.append(f"{f.name}: refused {r.id} left {', '.join(sorted(left))}")
    asked = [f.name for f in ctx.record.final.values() if f.reachable]
    regions = sorted({f.region for f in ctx.record.final.values() if f.history is not None})
    measured = (
        f"{accepted} accepted and {refused} refused action(s) traced in {len(asked)} members'"
        f" intent and {len(regions)} regions' history"
    )
    return judged(not problems, label, c.check, measured, "each exactly once", problems)
