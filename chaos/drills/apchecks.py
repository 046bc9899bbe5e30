"""The AccessPoint assertions: ready, withdrawn, swept, and any field of an AP's status.

Pure functions of the record, like the other checks: the AccessPoints are the
documents the steps applied (`Record.accesspoints`), the clusters' objects and the
home cluster's APs are in every sample (`Sample.objects`, `Sample.accesspoints`).
A sample counts for a check on objects only when every cluster it needs was read;
for DNS only when every member that should answer did (`Context.complete`). Times
run from the step to the first sample that shows it, as in `timing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from accesspoints import AccessPoint, AccessPointError, parse_accesspoint
from chaos.drills.aps import ApDoc, ApDocs, ap_vips, key_of, named, step_accesspoints
from chaos.drills.checks import (
    AccesspointReady,
    AccesspointStatus,
    Segment,
    Swept,
    Untouched,
    Withdrawn,
    status_path,
)
from chaos.drills.effects import answered_vips, dns_reflects
from chaos.drills.samples import KubeObject, Record, Sample
from chaos.drills.steps import ACCESSPOINT_STEPS, AccesspointDelete, L4Withdraw
from chaos.drills.timing import Context, not_run, timed
from chaos.drills.verdict import Verdict, failed, judged, pending, skipped, spread

_MISSING = object()


def record_docs(record: Record) -> dict[str, tuple[ApDoc, ...]]:
    """The APs each step applied, parsed again from the record (one that does not parse:
    left out; the drill refused it when it loaded)."""
    out: dict[str, tuple[ApDoc, ...]] = {}
    for sid, docs in record.accesspoints.items():
        found = []
        for d in docs:
            try:
                found.append(ApDoc(dict(d), parse_accesspoint(d)))
            except AccessPointError:
                continue
        out[sid] = tuple(found)
    return out


def _read(s: Sample, clusters: Iterable[str]) -> bool:
    """Every one of these clusters was read in this sample."""
    return all(c in s.objects for c in clusters)


# --- accesspoint_ready ---------------------------------------------------------------------


def _answered_only(s: Sample, service: str, vips: set[str]) -> str | None:
    """Why the wire answers of this sample are not all among `vips` (None: they are)."""
    for m in s.running():
        for source, got in s.dns.get(m.name, {}).get(service, {}).items():
            for a in got:
                if a not in vips:
                    return f"{m.name} answered {source}'s clients {a}"
    return None


def _dns_ready(ctx: Context, since: float, ap: AccessPoint, why: dict[str, str]) -> float | None:
    facts = ctx.record.estate
    service = ap.name
    known = facts.services.get(service)
    if known is None:
        why[f"dns {ap.name}"] = "its Service never showed a VIP"
        return None
    answered: set[str] = set()
    scope = ap.spec.scope.clusters
    for s in ctx.after(since):
        answered |= answered_vips(s, service)
        if not ctx.complete(s) or not _read(s, scope):
            continue
        shown = ap_vips(s, ap)
        if not all(shown.get(c) for c in scope):
            why[f"dns {ap.name}"] = "no VIP in " + ", ".join(c for c in scope if not shown.get(c))
            continue
        vips = {
            known.addresses[ip] for ips in shown.values() for ip in ips if ip in known.addresses
        }
        wrong = _answered_only(s, service, vips)
        if wrong is not None:
            why[f"dns {ap.name}"] = wrong
            continue
        if not dns_reflects(s, facts, service, vips, "back", answered):
            late = sorted(vips - answered)
            why[f"dns {ap.name}"] = (
                f"not answered yet: {', '.join(late)}" if late else "a member's table lacks a VIP"
            )
            continue
        return s.t - since
    return None


def _wles_ready(
    ctx: Context, since: float, ap: AccessPoint, docs: ApDocs, why: dict[str, str]
) -> float | None:
    ups: list[tuple[str, AccessPoint]] = []
    for u in ap.spec.upstreams:
        up = named(docs, u.access_point, ap.upstream_namespace(u))
        if up is None:
            why[f"wles {ap.name}"] = f"upstream {u.access_point} is not an AccessPoint of the drill"
            return None
        ups.append((u.access_point, up))
    clusters = set(ap.spec.scope.clusters).union(*(u.spec.scope.clusters for _, u in ups))
    for s in ctx.after(since):
        if not _read(s, clusters):
            continue
        problem = None
        for cluster in ap.spec.scope.clusters:
            for name, up in ups:
                ips = {ip for found in ap_vips(s, up).values() for ip in found}
                wles = [
                    o
                    for o in s.objects[cluster]
                    if o.kind == "WorkloadEntry"
                    and o.namespace == ap.namespace
                    and o.owned_by(ap.name)
                    and o.upstream == name
                ]
                have = sorted(str(o.address) for o in wles)
                if not ips:
                    problem = f"upstream {name} shows no VIP"
                elif have != sorted(ips):
                    problem = f"{cluster}: WLEs for {', '.join(have) or 'none'}, VIPs {', '.join(sorted(ips))}"
                elif any(o.healthy is not True for o in wles):
                    problem = f"{cluster}: " + ", ".join(
                        f"{o.name} Healthy={o.healthy}" for o in wles if o.healthy is not True
                    )
                if problem:
                    break
            if problem:
                break
        if problem is None:
            return s.t - since
        why[f"wles {ap.name}"] = problem
    return None


def accesspoint_ready(c: AccesspointReady, ctx: Context) -> Verdict:
    label = c.label()
    rec = ctx.ran(c.step)
    if rec is None:
        return not_run(c, label, ctx)
    docs = record_docs(ctx.record)
    aps = step_accesspoints(ctx.drill.step(c.step), docs)
    if c.accesspoints:
        aps = [
            a
            for a in aps
            if a.name in c.accesspoints or key_of(a.namespace, a.name) in c.accesspoints
        ]
    if not aps:
        return skipped(label, c.check, f"step {c.step} applied no AccessPoint named")
    dns: dict[str, float | None] = {}
    wles: dict[str, float | None] = {}
    why: dict[str, str] = {}
    for ap in aps:
        if ap.spec.gtm is not None:
            dns[ap.name] = _dns_ready(ctx, rec.t, ap, why)
        if ap.spec.upstreams:
            wles[ap.name] = _wles_ready(ctx, rec.t, ap, docs, why)
    return timed(
        label,
        c.check,
        ctx,
        rec.t,
        [("dns", dns, c.dns_within), ("wles", wles, c.wles_within)],
        why,
    )


# --- withdrawn --------------------------------------------------------------------------------


def withdrawn(c: Withdrawn, ctx: Context) -> Verdict:
    label = c.label()
    rec = ctx.ran(c.step)
    if rec is None:
        return not_run(c, label, ctx)
    step = ctx.drill.step(c.step)
    assert isinstance(step, L4Withdraw)
    ap = named(record_docs(ctx.record), step.accesspoint, step.namespace)
    if ap is None:
        return failed(label, c.check, f"no AccessPoint {step.accesspoint} in the record")
    before = [s for s in ctx.record.samples if s.t < rec.t and step.cluster in s.objects]
    if not before:
        return failed(label, c.check, f"{step.cluster} was never read before the step")
    ips = set(ap_vips(before[-1], ap).get(step.cluster, ()))
    if not ips:
        return failed(
            label, c.check, f"{ap.name}'s Service showed no VIP in {step.cluster} before the step"
        )
    vip = ", ".join(sorted(ips))
    # every WLE that pointed at the VIP just before the step, in any cluster, by any AP
    wanted = {
        (cluster, o.name)
        for cluster, objects in before[-1].objects.items()
        for o in objects
        if o.kind == "WorkloadEntry" and o.address in ips
    }
    if not wanted:
        return skipped(label, c.check, f"no WorkloadEntry pointed at {vip} before the step")
    out_at: dict[tuple[str, str], float] = {}
    gone_at: dict[tuple[str, str], float] = {}
    problems: list[str] = []
    messages: set[str] = set()
    for s in ctx.after(rec.t):
        for cluster, name in wanted:
            key = (cluster, name)
            if key in gone_at or cluster not in s.objects:
                continue
            o = next(
                (x for x in s.objects[cluster] if x.kind == "WorkloadEntry" and x.name == name),
                None,
            )
            if o is None:
                gone_at[key] = s.t
                if key not in out_at:
                    problems.append(
                        f"{cluster}/{name} deleted at {s.t - rec.t:.1f}s without going Healthy=False first"
                    )
            elif o.healthy is False:
                out_at.setdefault(key, s.t)
                messages.add(str(o.message))
            elif key in out_at:
                problems.append(f"{cluster}/{name} Healthy={o.healthy} again at {s.t - rec.t:.1f}s")
                out_at.pop(key)
    hold = ctx.record.estate.hold
    need = hold - ctx.record.sample_every
    last = ctx.record.samples[-1].t if ctx.record.samples else rec.t
    out_t = [t - rec.t for t in out_at.values()]
    kept = [gone_at[k] - out_at[k] for k in gone_at if k in out_at]
    for (cluster, name), t in sorted(out_at.items()):
        if (cluster, name) not in gone_at:
            continue
        if gone_at[(cluster, name)] - t < need:
            problems.append(
                f"{cluster}/{name} deleted {gone_at[(cluster, name)] - t:.1f}s after going out,"
                f" before the hold ({hold:g}s)"
            )
    missing_out = sorted(
        f"{c}/{n}" for c, n in wanted if (c, n) not in out_at and (c, n) not in gone_at
    )
    if missing_out:
        problems.append(f"never Healthy=False: {', '.join(missing_out)}")
    if out_t and max(out_t) > c.within:
        problems.append(f"Healthy=False after {max(out_t):.1f}s, over {c.within:g}s")
    deadline = c.deleted_within if c.deleted_within is not None else last - rec.t
    late = sorted(
        f"{cl}/{n}"
        for cl, n in wanted
        if (cl, n) not in gone_at or gone_at[(cl, n)] - rec.t > deadline
    )
    p50, worst = spread(out_t)
    kept_p50, kept_worst = spread(kept)
    went = (
        f"Healthy=False after p50 {p50:.1f}s max {worst:.1f}s"
        f" ({', '.join(sorted(messages)) or 'no message'})"
        if out_t
        else "never seen Healthy=False"
    )
    kept_out = f", kept out {kept_p50:.1f}..{kept_worst:.1f}s" if kept else ""
    measured = f"{len(wanted)} WLE(s) of VIP {vip}: {went}; deleted {len(gone_at)}{kept_out}"
    bound = f"out ≤ {c.within:g}s; deleted ≥ {need:.1f}s after (hold {hold:g}s - a sample)" + (
        f", ≤ {c.deleted_within:g}s after the step" if c.deleted_within is not None else ""
    )
    if late and not problems and ctx.open(rec.t, deadline if c.deleted_within else float("inf")):
        return pending(label, c.check, measured, bound)
    if late:
        problems.append(
            f"not deleted {'within ' + format(deadline, 'g') + 's' if c.deleted_within is not None else 'by the end'}: {', '.join(late)}"
        )
    values = {"out_max": worst, "kept_min": min(kept) if kept else 0.0}
    return judged(not problems, label, c.check, measured, bound, problems, **values)


# --- swept ------------------------------------------------------------------------------------


def _keyed(objects: Iterable[KubeObject]) -> dict[tuple[str, str, str], KubeObject]:
    return {(o.kind, o.namespace, o.name): o for o in objects}


def swept(c: Swept, ctx: Context) -> Verdict:
    label = c.label()
    rec = ctx.ran(c.step)
    if rec is None:
        return not_run(c, label, ctx)
    step = ctx.drill.step(c.step)
    assert isinstance(step, AccesspointDelete)
    ap = named(record_docs(ctx.record), step.accesspoint, step.namespace)
    if ap is None:
        return failed(label, c.check, f"no AccessPoint {step.accesspoint} in the record")
    key = key_of(ap.namespace, ap.name)
    before = [s for s in ctx.record.samples if s.t < rec.t and s.objects]
    if not before:
        return failed(label, c.check, "no cluster was read before the step")
    base = before[-1]
    clusters = sorted(base.objects)
    owned = {cl: [o for o in base.objects[cl] if o.owned_by(ap.name)] for cl in clusters}
    kept = {cl: _keyed(o for o in base.objects[cl] if not o.owned_by(ap.name)) for cl in clusters}
    # the other objects must stay until the next AccessPoint step (or the end)
    later = [
        r.t
        for r in ctx.record.steps
        if r.t > rec.t and isinstance(_planned(ctx, r.id), ACCESSPOINT_STEPS)
    ]
    until = min(later, default=float("inf"))
    when = None
    left = "no sample after the step"
    problems: list[str] = []
    lost: set[tuple[str, str, str, str]] = set()
    for s in ctx.after(rec.t):
        if s.t < until:
            for cl in clusters:
                if cl not in s.objects:
                    continue
                now = _keyed(s.objects[cl])
                for k, o in kept[cl].items():
                    if (cl, *k) in lost:
                        continue
                    got = now.get(k)
                    if got is None or got.uid != o.uid:
                        lost.add((cl, *k))
                        what = "is gone" if got is None else "was made again (another uid)"
                        problems.append(f"t={s.t:.1f}s {cl}: {k[0]} {k[1]}/{k[2]} {what}")
        if when is None and _read(s, clusters):
            remaining = [
                f"{cl}: {o.kind} {o.namespace}/{o.name}"
                for cl in clusters
                for o in s.objects[cl]
                if o.owned_by(ap.name)
            ]
            if key in s.accesspoints:
                left = f"AccessPoint {key} still in the home cluster"
            elif remaining:
                left = f"{len(remaining)} left: {', '.join(remaining[:5])}"
            else:
                when = s.t - rec.t
    n_owned = sum(len(v) for v in owned.values())
    n_kept = sum(len(v) for v in kept.values())
    measured = (
        f"{n_owned} object(s) of {ap.name} in {len(clusters)} clusters: "
        + (f"swept after {when:.1f}s" if when is not None else f"not swept ({left})")
        + f"; {n_kept - len(lost)}/{n_kept} other object(s) kept"
    )
    bound = f"swept ≤ {c.within:g}s; nothing else touched"
    if when is None and ctx.open(rec.t, c.within) and not problems:
        return pending(label, c.check, measured, bound)
    if when is None:
        problems.insert(0, f"not swept: {left}")
    elif when > c.within:
        problems.insert(0, f"swept after {when:.1f}s, over {c.within:g}s")
    if n_owned == 0:
        problems.insert(0, f"nothing labelled as {ap.name}'s before the step: nothing to sweep")
    values = {"seconds": when} if when is not None else {}
    return judged(not problems, label, c.check, measured, bound, problems, **values)


def _planned(ctx: Context, step_id: str) -> Any:
    try:
        return ctx.drill.step(step_id)
    except KeyError:  # `<id>:restore` and the like
        return None


# --- accesspoint_status -----------------------------------------------------------------------


def value_at(status: Any, path: Sequence[Segment]) -> Any:
    """The value at `path` in an AP's status (`_MISSING` when it is not there)."""
    at = status
    for part in path:
        if isinstance(part, tuple):
            field, wanted = part
            if not isinstance(at, list):
                return _MISSING
            at = next(
                (i for i in at if isinstance(i, Mapping) and _text(i.get(field)) == wanted.lower()),
                _MISSING,
            )
        elif isinstance(part, int):
            if not isinstance(at, list) or part >= len(at):
                return _MISSING
            at = at[part]
        else:
            if not isinstance(at, Mapping) or part not in at:
                return _MISSING
            at = at[part]
        if at is _MISSING:
            return _MISSING
    return at


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).lower()


def accesspoint_status(c: AccesspointStatus, ctx: Context) -> Verdict:
    label = c.label()
    rec = ctx.ran(c.step)
    if rec is None:
        return not_run(c, label, ctx)
    docs = record_docs(ctx.record)
    ap = _the_ap(c.accesspoint, c.step, ctx, docs)
    if ap is None:
        return failed(label, c.check, f"no AccessPoint {c.accesspoint or 'of step ' + c.step}")
    key = key_of(ap.namespace, ap.name)
    path = status_path(c.path)
    if c.unchanged:
        return _unchanged(c, ctx, rec.t, key, path)
    assert c.within is not None  # the model's rule
    wanted = _text(c.equals)
    seen: Any = _MISSING
    bound = f"{c.path} = {c.equals} ≤ {c.within:g}s"
    for s in ctx.after(rec.t):
        state = s.accesspoints.get(key)
        if state is None:
            continue
        seen = value_at(state.status, path)
        if seen is not _MISSING and _text(seen) == wanted:
            t = s.t - rec.t
            return judged(
                t <= c.within, label, c.check, f"{c.path} = {seen} after {t:.1f}s", bound, seconds=t
            )
    last = "not there" if seen is _MISSING else repr(seen)
    if ctx.open(rec.t, c.within):
        return pending(label, c.check, f"{c.path}: {last} so far", bound)
    return failed(label, c.check, f"{key} {c.path}: {last} at the last look", bound)


def _the_ap(name: str | None, step: str, ctx: Context, docs: ApDocs) -> AccessPoint | None:
    """The AP a check names, else the one its step names."""
    if name is not None:
        return named(docs, name)
    aps = step_accesspoints(ctx.drill.step(step), docs)
    return aps[0] if len(aps) == 1 else None


def _until(ctx: Context, step: str | None) -> float:
    r = None if step is None else ctx.record.step(step)
    return float("inf") if r is None else r.t


def _unchanged(
    c: AccesspointStatus, ctx: Context, since: float, key: str, path: Sequence[Segment]
) -> Verdict:
    label = c.label()
    before = [s for s in ctx.record.samples if s.t < since and key in s.accesspoints]
    if not before:
        return failed(label, c.check, f"{key} was not seen before step {c.step}")
    held = value_at(before[-1].accesspoints[key].status, path)
    shown = "not there" if held is _MISSING else repr(held)
    end = _until(ctx, c.until)
    bound = f"{c.path} stays {shown} until {c.until or 'the end'}"
    looks = 0
    for s in ctx.after(since):
        if s.t >= end:
            break
        state = s.accesspoints.get(key)
        if state is None:
            continue
        looks += 1
        now = value_at(state.status, path)
        if now != held:
            got = "not there" if now is _MISSING else repr(now)
            return failed(
                label, c.check, f"{c.path}: {shown} became {got} after {s.t - since:.1f}s", bound
            )
    if ctx.now is not None and end == float("inf"):
        return pending(label, c.check, f"{c.path}: {shown} so far ({looks} looks)", bound)
    return judged(looks > 0, label, c.check, f"{c.path}: {shown} at {looks} looks", bound)


# --- untouched --------------------------------------------------------------------------------


def untouched(c: Untouched, ctx: Context) -> Verdict:
    label = c.label()
    rec = ctx.ran(c.step)
    if rec is None:
        return not_run(c, label, ctx)
    ap = _the_ap(c.accesspoint, c.step, ctx, record_docs(ctx.record))
    if ap is None:
        return failed(label, c.check, f"no AccessPoint {c.accesspoint or 'of step ' + c.step}")
    before = [s for s in ctx.record.samples if s.t < rec.t and _read(s, c.clusters)]
    if not before:
        return failed(label, c.check, f"{', '.join(c.clusters)} not read before the step")
    base = {
        cl: _keyed(o for o in before[-1].objects[cl] if o.owned_by(ap.name)) for cl in c.clusters
    }
    end = _until(ctx, c.until)
    problems: list[str] = []
    seen: set[tuple[str, ...]] = set()
    looks = 0
    for s in ctx.after(rec.t):
        if s.t >= end:
            break
        for cl in c.clusters:
            if cl not in s.objects:
                continue
            looks += 1
            now = _keyed(o for o in s.objects[cl] if o.owned_by(ap.name))
            for k in set(base[cl]) | set(now):
                old, new = base[cl].get(k), now.get(k)
                what = (
                    "appeared"
                    if old is None
                    else "is gone"
                    if new is None
                    else "changed"
                    if new.digest != old.digest or new.uid != old.uid
                    else None
                )
                if what is not None and (cl, *k, what) not in seen:
                    seen.add((cl, *k, what))
                    problems.append(f"t={s.t:.1f}s {cl}: {k[0]} {k[1]}/{k[2]} {what}")
    n = sum(len(v) for v in base.values())
    measured = f"{n} object(s) of {ap.name} in {', '.join(c.clusters)}: " + (
        "as they were" if not problems else f"{len(problems)} change(s)"
    )
    bound = f"no change until {c.until or 'the end'}"
    if not problems and not n:
        problems.append(f"nothing labelled as {ap.name}'s in {', '.join(c.clusters)} to watch")
    return judged(not problems, label, c.check, measured, bound, problems, looks=looks)
