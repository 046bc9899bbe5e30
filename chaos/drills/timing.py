"""The timing assertions: how long after a step the estate, seen from outside, showed it.

Times run from the moment the step was injected (its record's `t`) to the
first sample that shows the effect; a sample's time is when it was complete,
so a measured time is never shorter than the real one, and longer by at most
one sample period. p50 and max are over the affected services.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from chaos.drills.checks import Converged, FailOpen, Impaired, Ordered, Reflects, Takeover
from chaos.drills.effects import (
    Direction,
    answered_vips,
    dns_reflects,
    effect_of,
    wles_reflect,
)
from chaos.drills.model import Drill
from chaos.drills.samples import MemberState, Record, Sample, StepRecord
from chaos.drills.steps import DrainAction, RegionEnter, RegionExit, RolloutAction
from chaos.drills.verdict import (
    Verdict,
    failed,
    judged,
    pending,
    seconds,
    skipped,
    spread,
)
from gtm.client.convergence import Change, MemberView, progress

_GONE = MemberState("", "", False)


@dataclass(frozen=True)
class Context:
    drill: Drill
    record: Record
    now: float | None = None  # a practice run still going: the latest sample's t

    def waiting(self, step_id: str) -> bool:
        """A practice run still going has not reached this step yet."""
        return self.now is not None and self.record.step(step_id) is None

    def ran(self, step_id: str) -> StepRecord | None:
        r = self.record.step(step_id)
        return r if r is not None and r.ok else None

    def after(self, t: float) -> list[Sample]:
        return [s for s in self.record.samples if s.t >= t]

    def absent(self, t: float) -> set[str]:
        """Members the drill took down (killed or paused) and not seen answering again by `t`."""
        out = set()
        for hit in self.record.steps:
            if hit.member is None or hit.t > t:
                continue
            back = next((r.t for r in self.record.steps if r.id.startswith(hit.id + ":")), None)
            if back is None or back > t:
                out.add(hit.member)
                continue
            seen = any(
                back <= s.t <= t and s.members.get(hit.member, _GONE).reachable
                for s in self.record.samples
            )
            if not seen:
                out.add(hit.member)
        return out

    def complete(self, s: Sample) -> bool:
        """Every member the drill has not taken down answered in this sample."""
        absent = self.absent(s.t)
        return all(m.reachable for name, m in s.members.items() if name not in absent)

    def open(self, since: float, within: float) -> bool:
        """Still inside the deadline of a practice run that has not ended."""
        return self.now is not None and self.now - since < within

    def baseline(self, member: str) -> dict[str, dict[str, dict[str, int]]] | None:
        """A member's weights before the first step: what `settled` returns to."""
        first = min((s.t for s in self.record.steps), default=0.0)
        found = None
        for s in self.record.samples:
            if s.t >= first:
                break
            m = s.members.get(member)
            if m is not None and m.reachable and m.table is not None:
                found = m.table
        if found is None:
            return None
        return {
            svc: {src: row.weights() for src, row in by.items()} for svc, by in found.rows.items()
        }


class StepCheck(Protocol):
    """A check about one step of the timeline."""

    @property
    def check(self) -> str: ...

    @property
    def step(self) -> str: ...


def not_run(c: StepCheck, label: str, ctx: Context) -> Verdict:
    """The verdict of a check whose step has not run: pending while it may, else failed."""
    if ctx.waiting(c.step):
        return pending(label, c.check, f"step {c.step} has not run yet")
    return failed(label, c.check, f"step {c.step} did not run as planned")


def timed(
    label: str,
    kind: str,
    ctx: Context,
    since: float | Mapping[str, float],
    layers: Sequence[tuple[str, Mapping[str, float | None], float | None]],
    why: Mapping[str, str] | None = None,
    head: str = "",
    unbounded: bool = True,
) -> Verdict:
    """A verdict over first-seen times (seconds after `since`: one time, or each key's) per
    key and layer, each layer within its bound; a layer without one must only have
    happened (`unbounded`), or is only shown. `why` (`"<layer> <key>"`) says what a late
    or missing one was waiting for."""
    why = why or {}
    parts, bounds, problems = [], [], []
    values: dict[str, float] = {}
    pend = False
    for layer, times, bound in layers:
        if not times:
            continue
        got = [t for t in times.values() if t is not None]
        missing = sorted(k for k, t in times.items() if t is None)
        p50, worst = spread(got)
        values[f"{layer}_p50"], values[f"{layer}_max"] = p50, worst
        parts.append(f"{layer} p50 {p50:.1f}s max {worst:.1f}s" if got else f"{layer} never")
        if missing:
            parts[-1] += f" (never: {', '.join(missing)})"
        if bound is not None:
            bounds.append(f"{layer} ≤ {bound:g}s")
        elif not unbounded:
            continue
        limit = bound if bound is not None else float("inf")
        if missing and all(
            ctx.open(since if isinstance(since, float | int) else since[k], limit) for k in missing
        ):
            pend = True
        elif missing or worst > limit:
            over = [
                f"{k}: {seconds(t)}"
                + (f" ({why[f'{layer} {k}']})" if f"{layer} {k}" in why else "")
                for k, t in times.items()
                if t is None or t > limit
            ]
            problems.append(
                f"{layer} " + (f"over {bound:g}s" if bound else "never") + ": " + "; ".join(over)
            )
    measured = head + ("; ".join(parts) or "nothing to look at")
    if pend and not problems:
        return pending(label, kind, measured, ", ".join(bounds))
    return judged(not problems, label, kind, measured, ", ".join(bounds), problems, **values)


def reflects(c: Reflects, ctx: Context) -> Verdict:
    label = c.label()
    facts = ctx.record.estate
    dns_t: dict[str, float | None] = {}
    wle_t: dict[str, float | None] = {}
    since: dict[str, float] = {}
    for step_id in c.steps:
        if ctx.waiting(step_id):
            return pending(label, c.check, f"step {step_id} has not run yet")
        rec = ctx.ran(step_id)
        if rec is None:
            return failed(label, c.check, f"step {step_id} did not run as planned")
        effect = effect_of(ctx.drill.step(step_id), facts)
        if effect is None:
            return skipped(label, c.check, f"step {step_id} moves no VIP")
        for service in [s for s in (c.services or effect.services) if s in effect.vips]:
            key = service if len(c.steps) == 1 else f"{service} ({step_id})"
            since[key] = rec.t
            dns_t[key], found = _reflected(
                ctx, rec.t, service, effect.vips[service], effect.direction
            )
            if found is not _NO_WLES:
                wle_t[key] = found
    layers = (("dns", dns_t, c.dns_within), ("wles", wle_t, c.wles_within))
    head = f"{len(dns_t)} service(s): "
    return timed(label, c.check, ctx, since, layers, head=head, unbounded=False)


_NO_WLES = -1.0


def _reflected(
    ctx: Context, since: float, service: str, vips: tuple[str, ...], direction: Direction
) -> tuple[float | None, float | None]:
    """Seconds until DNS and until the WLEs showed it (None: never; `_NO_WLES`: no WLEs seen)."""
    facts = ctx.record.estate
    answered: set[str] = set()
    dns_t = wle_t = None
    wles_seen = False
    for s in ctx.after(since):
        answered |= answered_vips(s, service) & set(vips)
        if not ctx.complete(s):
            continue  # a member that should answer did not: this look proves nothing
        if dns_t is None and dns_reflects(s, facts, service, vips, direction, answered):
            dns_t = s.t - since
        w = wles_reflect(s, vips, direction)
        wles_seen = wles_seen or w is not None
        if wle_t is None and w:
            wle_t = s.t - since
        if dns_t is not None and (wle_t is not None or not wles_seen):
            break
    return dns_t, (wle_t if wles_seen else _NO_WLES)


def converged(c: Converged, ctx: Context) -> Verdict:
    label = c.label()
    rec = ctx.ran(c.step)
    if rec is None:
        return not_run(c, label, ctx)
    step = ctx.drill.step(c.step)
    assert isinstance(step, RegionExit | RegionEnter | DrainAction | RolloutAction)
    facts = ctx.record.estate
    leaving = isinstance(step, RegionExit | DrainAction)
    scope = None if step.services is None else frozenset(step.services)
    change = Change(tuple(rec.override_ids), step.region, leaving, scope)
    services = [
        s for s in facts.services if (scope is None or s in scope) and facts.vips_in(s, step.region)
    ]
    directional = not isinstance(step, RolloutAction)
    answered: dict[str, bool] = dict.fromkeys(services, False)
    when, why = None, "no sample after the step"
    for s in ctx.after(rec.t):
        for service in services:
            got = answered_vips(s, service, [step.region])
            answered[service] = answered[service] or any(
                facts.services[service].vips.get(v) == step.region for v in got
            )
        why = _unconverged(s, change, services, directional, answered, ctx, c.settled)
        if why is None:
            when = s.t - rec.t
            break
    bound = f"≤ {c.within:g}s"
    if when is None:
        if ctx.open(rec.t, c.within):
            return pending(label, c.check, f"not yet: {why}", bound)
        return failed(label, c.check, f"not converged: {why}", bound, [why])
    return judged(when <= c.within, label, c.check, f"after {when:.1f}s", bound, seconds=when)


def _unconverged(
    s: Sample,
    change: Change,
    services: Sequence[str],
    directional: bool,
    answered: dict[str, bool],
    ctx: Context,
    settled: bool,
) -> str | None:
    """Why the change is not converged in this sample, or None when it is."""
    members = s.running()
    if not members:
        return "no member answers"
    if not ctx.complete(s):
        late = sorted(n for n, m in s.members.items() if not m.reachable)
        return f"{', '.join(late)} did not answer"
    for m in members:
        p = progress(change, MemberView(m.name, m.status(), ended=frozenset(m.ended)))
        if not p.done:
            return p.line()
    if directional:
        facts = ctx.record.estate
        vips = [v for svc in services for v in facts.vips_in(svc, change.region)]
        if change.leaving:
            for svc in services:
                inside = set(facts.vips_in(svc, change.region))
                if answered_vips(s, svc) & inside:
                    return f"DNS still answers {svc} in {change.region}"
        else:
            late = [svc for svc, ok in answered.items() if not ok]
            if late:
                return f"DNS answers no {', '.join(late)} in {change.region} yet"
        if wles_reflect(s, vips, "out" if change.leaving else "back") is False:
            return (
                f"WorkloadEntries of {change.region} not all {'out' if change.leaving else 'back'}"
            )
    if settled:
        for m in members:
            base = ctx.baseline(m.name)
            assert m.table is not None
            now = {
                svc: {src: row.weights() for src, row in by.items()}
                for svc, by in m.table.rows.items()
            }
            ramping = any(
                c.ramp_start is not None
                for by in m.table.rows.values()
                for row in by.values()
                for c in row.cells.values()
            )
            if ramping or (base is not None and now != base):
                return f"{m.name}'s table is not back to its baseline yet"
    return None


def ordered(c: Ordered, ctx: Context) -> Verdict:
    """DNS leads the mesh out of a region, and trails it back in, by the hold, in every region."""
    label = c.label()
    if ctx.now is not None:
        return pending(label, c.check, "checked at the end")
    rec = ctx.ran(c.step)
    if rec is None:
        return failed(label, c.check, f"step {c.step} did not run as planned")
    facts = ctx.record.estate
    effect = effect_of(ctx.drill.step(c.step), facts)
    if effect is None:
        return skipped(label, c.check, f"step {c.step} moves no VIP")
    need = facts.hold - c.slack - ctx.record.sample_every
    leads: dict[str, float] = {}
    problems: list[str] = []
    for region in facts.regions:
        dns_t = mesh_t = None
        for s in ctx.after(rec.t):
            if not ctx.complete(s):
                continue
            if dns_t is None and all(
                dns_reflects(
                    s, facts, svc, vips, effect.direction, set(), region=region, wire=False
                )
                for svc, vips in effect.vips.items()
            ):
                dns_t = s.t
            if mesh_t is None and all(
                wles_reflect(s, vips, effect.direction, region) is not False
                for vips in effect.vips.values()
            ):
                mesh_t = s.t
            if dns_t is not None and mesh_t is not None:
                break
        if dns_t is None or mesh_t is None:
            problems.append(f"{region}: DNS {seconds(dns_t)}, mesh {seconds(mesh_t)}")
            continue
        lead = (mesh_t - dns_t) if effect.direction == "out" else (dns_t - mesh_t)
        leads[region] = lead
        if lead < need:
            first, then = ("DNS", "the mesh") if effect.direction == "out" else ("the mesh", "DNS")
            problems.append(
                f"{region}: {first} at {dns_t - rec.t if first == 'DNS' else mesh_t - rec.t:.1f}s,"
                f" {then} {lead:.1f}s later (the hold is {facts.hold:g}s)"
            )
    order = "DNS then mesh" if effect.direction == "out" else "mesh then DNS"
    measured = f"{order}; lead " + ", ".join(f"{r} {t:.1f}s" for r, t in leads.items())
    bound = f"lead ≥ {need:.1f}s (hold {facts.hold:g}s - slack {c.slack:g}s - a sample)"
    values = {f"lead_{r}": t for r, t in leads.items()}
    return judged(not problems, label, c.check, measured, bound, problems, **values)


def takeover(c: Takeover, ctx: Context) -> Verdict:
    label = c.label()
    rec = ctx.ran(c.step)
    if rec is None or rec.member is None:
        return not_run(c, label, ctx)
    step = ctx.drill.step(c.step)
    region = getattr(step, "region", "")
    lease = ctx.record.estate.lease_duration
    within = c.within if c.within is not None else lease + ctx.record.sample_every
    bound = f"≤ {within:g}s" + ("" if c.within is not None else f" (lease {lease:g}s + a sample)")
    for s in ctx.after(rec.t):
        for m in s.running():
            if m.region == region and m.name != rec.member and m.role == "leader":
                t = s.t - rec.t
                return judged(
                    t <= within, label, c.check, f"{m.name} leads after {t:.1f}s", bound, seconds=t
                )
    if ctx.open(rec.t, within):
        return pending(label, c.check, "no new leader yet", bound)
    return failed(label, c.check, f"no other member of {region} took over", bound)


def impaired(c: Impaired, ctx: Context) -> Verdict:
    label = c.label()
    rec = ctx.ran(c.step)
    if rec is None:
        return not_run(c, label, ctx)
    region = getattr(ctx.drill.step(c.step), "region", "")
    bound = f"≤ {c.within:g}s"
    for s in ctx.after(rec.t):
        members = s.running()
        if members and ctx.complete(s) and all(region in m.impaired for m in members):
            t = s.t - rec.t
            return judged(
                t <= c.within,
                label,
                c.check,
                f"every member reports {region} impaired after {t:.1f}s",
                bound,
                seconds=t,
            )
    if ctx.open(rec.t, c.within):
        return pending(label, c.check, "not reported yet", bound)
    return failed(label, c.check, f"{region} never reported impaired by every member", bound)


def fail_open(c: FailOpen, ctx: Context) -> Verdict:
    label = c.label()
    rec = ctx.ran(c.step)
    if rec is None:
        return not_run(c, label, ctx)
    when = None
    dry: list[str] = []
    asked = 0
    for s in ctx.after(rec.t):
        members = s.running()
        if when is None and members and ctx.complete(s):
            rows = [
                row
                for m in members
                if m.table is not None
                for row in m.table.rows.get(c.service, {}).values()
            ]
            if rows and all(r.fail_open for r in rows):
                when = s.t - rec.t
        for m in members:
            for source, answers in s.dns.get(m.name, {}).get(c.service, {}).items():
                asked += len(answers)
                dry += [f"t={s.t:.1f}s {m.name} to {source}: {a}" for a in answers if "/" not in a]
    bound = f"fail open ≤ {c.within:g}s; no query unanswered"
    measured = f"rows fail open after {seconds(when)}; {asked - len(dry)}/{asked} queries answered"
    if when is None and ctx.open(rec.t, c.within) and not dry:
        return pending(label, c.check, measured, bound)
    ok = when is not None and when <= c.within and not dry
    values = {"seconds": when} if when is not None else {}
    return judged(ok, label, c.check, measured, bound, dry, **values)
