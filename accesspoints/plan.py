"""The plan of one AccessPoint in one cluster: what to create, update and delete, and why.

`plan_cluster(ap_name, rendered, current)` diffs the rendered objects against what
the cluster holds under the same keys, plus everything labelled as this AP's:

- create: rendered, not in the cluster;
- update: in the cluster, labelled as ours, with a rendered field that differs
  (the changed field paths are listed); fields gtm does not render are left as
  they are, and so are the WLE reconciler's (`spec.weight`, `status`): one owner
  per field;
- delete: labelled as this AP's in the cluster, no longer rendered (garbage
  collection: nothing unlabelled is ever deleted);
- conflict: an object of that name exists without our label; it is not taken
  over unless the AP says `conflictResolution: Overwrite` (then it is an update);
- hold: a delete that is not made now (`hold_deletes`: why), because what was
  rendered may be short of what should be: an upstream's VIPs could not all be
  discovered (a cluster that could not be read is not a cluster whose VIPs are
  gone; Admiral deleted on such partial views);
- withdraw / wait: with `withdraw_after` (seconds: the DNS TTL plus the exit
  margin), the WorkloadEntry of a VIP that left a whole discovery (its upstream
  still named by the AP) is not deleted
  at once: it goes `Healthy=False` and is stamped `gtm.io/withdrawn-at` (withdraw),
  waits while clients may still hold it (wait), and is deleted after that;
- restore: a VIP discovered again while its WorkloadEntry waits: the stamp is
  removed and its `Healthy` condition written as for a new one.

Pure, printable (`lines()`), the same value for a dry run and for the apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from accesspoints.render import (
    LABEL_ACCESSPOINT,
    LABEL_MANAGED,
    LABEL_UPSTREAM,
    Rendered,
    object_key,
)

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name
WITHDRAWN_AT = "gtm.io/withdrawn-at"  # when a VIP's WLE went out because the VIP left
# fields another owner keeps: the WLE reconciler's weight and every status
NOT_OURS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "WorkloadEntry": (("spec", "weight"), ("status",)),
}


@dataclass(frozen=True)
class Change:
    action: Literal["create", "update", "delete", "conflict", "hold", "withdraw", "wait", "restore"]
    key: Key
    object: Mapping[str, Any] | None = None  # what to write (create, update)
    fields: tuple[str, ...] = ()  # changed field paths (update), or why (conflict)

    def line(self) -> str:
        _, kind, ns, name = self.key
        what = f"{kind} {ns}/{name}"
        if self.action == "update":
            return f"update {what}: {', '.join(self.fields)}"
        if self.action in ("conflict", "hold", "withdraw", "wait", "restore"):
            return f"{self.action} {what}: {'; '.join(self.fields)}"
        return f"{self.action} {what}"


@dataclass(frozen=True)
class ClusterPlan:
    cluster: str
    revision: str
    changes: tuple[Change, ...] = ()
    problems: tuple[str, ...] = field(default=())  # the render's: nothing may be applied

    @property
    def empty(self) -> bool:
        return not self.changes

    def of(self, action: str) -> list[Change]:
        return [c for c in self.changes if c.action == action]

    def lines(self) -> list[str]:
        head = f"cluster {self.cluster} (revision {self.revision}): " + (
            ", ".join(f"{len(self.of(a))} {a}" for a in ("create", "update", "delete", "conflict"))
        )
        if self.of("hold"):
            head += f", {len(self.of('hold'))} delete held"
        for action in ("withdraw", "wait", "restore"):
            if self.of(action):
                head += f", {len(self.of(action))} {action}"
        out = [head]
        out += [f"  refused: {p}" for p in self.problems]
        out += [f"  {c.line()}" for c in self.changes]
        return out


def plan_cluster(
    ap_name: str,
    rendered: Rendered,
    current: Iterable[Mapping[str, Any]],
    *,
    overwrite: bool = False,
    hold_deletes: str | None = None,
    withdraw_after: float | None = None,
    now: datetime | None = None,
) -> ClusterPlan:
    """`current`: the cluster's objects under the rendered keys and those labelled as ours.

    `hold_deletes`: why no object may be deleted now (each delete becomes a `hold`).
    `withdraw_after`: seconds a withdrawn VIP's WLE stays out before it is deleted, at
    `now` (None: deleted at once)."""
    if rendered.problems:
        return ClusterPlan(rendered.cluster, rendered.revision, (), rendered.problems)
    have = {object_key(o): o for o in current}
    want = rendered.by_key()
    changes: list[Change] = []
    for key, obj in want.items():
        old = have.get(key)
        if old is None:
            changes.append(Change("create", key, obj))
            continue
        owner = ((old.get("metadata") or {}).get("labels") or {}).get(LABEL_ACCESSPOINT)
        if owner != ap_name and not overwrite:
            who = f"labelled for AccessPoint {owner!r}" if owner else "not made by gtm"
            changes.append(
                Change(
                    "conflict", key, None, (f"exists, {who}; set conflictResolution: Overwrite",)
                )
            )
            continue
        skip = NOT_OURS.get(str(obj.get("kind")), ())
        diff = sorted(_changed(obj, old, (), skip))
        if _withdrawn_at(old) is not None:
            changes.append(Change("restore", key, obj, ("discovered again", *diff)))
        elif diff:
            changes.append(Change("update", key, obj, tuple(diff)))
    upstreams = {_labels(o).get(LABEL_UPSTREAM) for o in want.values()} - {None}
    for key, old in have.items():
        labels = _labels(old)
        if key in want or labels.get(LABEL_ACCESSPOINT) != ap_name:
            continue
        if labels.get(LABEL_MANAGED) != "true":  # not gtm's: never deleted, whatever its name
            continue
        if hold_deletes is not None:
            changes.append(Change("hold", key, None, (hold_deletes,)))
        elif (
            key[1] == "WorkloadEntry" and labels.get(LABEL_UPSTREAM) in upstreams and withdraw_after
        ):
            # a VIP of an upstream still named: it left discovery (an upstream no longer
            # named takes its ServiceEntry, hence all its WLEs' traffic, with it: deleted)
            changes.append(_withdrawal(key, old, withdraw_after, now or datetime.now(UTC)))
        else:
            changes.append(Change("delete", key))
    return ClusterPlan(rendered.cluster, rendered.revision, tuple(changes))


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _withdrawn_at(obj: Mapping[str, Any]) -> datetime | None:
    stamp = ((obj.get("metadata") or {}).get("annotations") or {}).get(WITHDRAWN_AT)
    if not isinstance(stamp, str):
        return None
    try:
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None  # not ours to read: stamped again
    return at if at.tzinfo is not None else None


def _withdrawal(key: Key, old: Mapping[str, Any], after: float, now: datetime) -> Change:
    """A VIP's WLE whose VIP left discovery: out first, deleted once clients let go of it."""
    address = (old.get("spec") or {}).get("address")
    at = _withdrawn_at(old)
    if at is None:
        why = f"VIP {address} no longer discovered: Healthy=False now, deleted after {after:g}s"
        return Change("withdraw", key, None, (why,))
    left = after - (now - at).total_seconds()
    if left <= 0:
        return Change("delete", key)
    return Change("wait", key, None, (f"VIP {address} withdrawn; deleted in {left:.0f}s",))


def _changed(
    want: Any, have: Any, path: tuple[str, ...], skip: tuple[tuple[str, ...], ...]
) -> Iterable[str]:
    """The paths of `want`'s fields that `have` does not hold the same (extra fields of
    `have`, in mappings and in the items of lists of the same length, are not compared:
    gtm owns only what it renders)."""
    if path in skip:
        return
    if isinstance(want, Mapping) and isinstance(have, Mapping):
        for k, v in want.items():
            yield from _changed(v, have.get(k), (*path, str(k)), skip)
        return
    if isinstance(want, list) and isinstance(have, list) and len(want) == len(have):
        # item by item: what the server fills into an item (a port's nodePort) is not drift
        if any(next(_changed(w, h, path, skip), None) for w, h in zip(want, have, strict=True)):
            yield ".".join(path)
        return
    if want != have:
        yield ".".join(path)
