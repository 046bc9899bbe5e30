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
  gone; Admiral deleted on such partial views).

Pure, printable (`lines()`), the same value for a dry run and for the apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from accesspoints.render import LABEL_ACCESSPOINT, Rendered, object_key

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name
# fields another owner keeps: the WLE reconciler's weight and every status
NOT_OURS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "WorkloadEntry": (("spec", "weight"), ("status",)),
}


@dataclass(frozen=True)
class Change:
    action: Literal["create", "update", "delete", "conflict", "hold"]
    key: Key
    object: Mapping[str, Any] | None = None  # what to write (create, update)
    fields: tuple[str, ...] = ()  # changed field paths (update), or why (conflict)

    def line(self) -> str:
        _, kind, ns, name = self.key
        what = f"{kind} {ns}/{name}"
        if self.action == "update":
            return f"update {what}: {', '.join(self.fields)}"
        if self.action in ("conflict", "hold"):
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
) -> ClusterPlan:
    """`current`: the cluster's objects under the rendered keys and those labelled as ours.

    `hold_deletes`: why no object may be deleted now (each delete becomes a `hold`)."""
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
        if diff:
            changes.append(Change("update", key, obj, tuple(diff)))
    for key, old in have.items():
        labels = (old.get("metadata") or {}).get("labels") or {}
        if key not in want and labels.get(LABEL_ACCESSPOINT) == ap_name:
            if hold_deletes is None:
                changes.append(Change("delete", key))
            else:
                changes.append(Change("hold", key, None, (hold_deletes,)))
    return ClusterPlan(rendered.cluster, rendered.revision, tuple(changes))


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
