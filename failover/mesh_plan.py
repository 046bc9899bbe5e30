"""The mesh plan: the WLE patches that take a cluster from what it holds to its targets. Pure.

`diff()` compares one WorkloadEntry with its `Target` and gives at most two
merge patches, in the order they must be written: the status subresource
first (the `Healthy` condition), then the main resource (`spec.weight`, the
`proxy.istio.io/health-checks-enabled` annotation) — so `Healthy=True` is in
place before the annotation makes Istio read it. Each patch carries the
resourceVersion it was computed from as a precondition; the status patch
sends the whole `status.conditions` list (an atomic list: other conditions
are copied back as they were).

`planning()` diffs a cluster and counts what the result would be, and
`MeshPlan.raise_if_unsafe()` refuses a plan that would leave more than a
share of the cluster's managed WLEs unhealthy (octodns' threshold rule).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from failover.desired import Target
from failover.workload import (
    EPOCH_ANNOTATION,
    EPOCH_CONDITION,
    EPOCH_REASON,
    HEALTH_CHECKS,
    HEALTHY,
    UNHEALTHY_REASON,
    Key,
    WorkloadEntry,
    timestamp,
)
from policies import Check, Steps, UnsafePlan


@dataclass(frozen=True, slots=True)
class Patch:
    """One merge patch of one WLE, with its resourceVersion precondition."""

    cluster: str
    namespace: str
    name: str
    status: bool  # True: the status subresource
    resource_version: str
    body: Mapping[str, Any]  # the merge patch, without the precondition
    changes: tuple[str, ...]  # what it changes, for people
    target: Target

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    def document(self) -> dict[str, Any]:
        """The body as sent: the patch plus `metadata.resourceVersion` (a 409 if stale)."""
        doc = dict(self.body)
        doc["metadata"] = {**doc.get("metadata", {}), "resourceVersion": self.resource_version}
        return doc

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}{'/status' if self.status else ''}"
        return f"{self.cluster} {where} (rv {self.resource_version}): {'; '.join(self.changes)}"


@dataclass(frozen=True, slots=True)
class Skipped:
    namespace: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}: {self.reason}"


def healthy_condition_ok(entry: WorkloadEntry, target: Target) -> bool:
    c = entry.condition(HEALTHY)
    if c is None:
        return False
    if target.healthy:
        return c.get("status") == "True"
    return (
        c.get("status") == "False"
        and c.get("reason") == UNHEALTHY_REASON
        and c.get("message") == target.message
    )


def in_sync(entry: WorkloadEntry, target: Target, *, ensure_annotation: bool) -> bool:
    """Whether the WLE holds its target (the fencing stamps are not compared)."""
    if not healthy_condition_ok(entry, target):
        return False
    if target.weight is not None and entry.weight != target.weight:
        return False
    return entry.health_checks or not ensure_annotation


def unhealthy_now(entry: WorkloadEntry) -> bool:
    """Whether Istio keeps this WLE out of EDS today."""
    return entry.health_checks and entry.healthy != "True"


def diff(
    cluster: str,
    entry: WorkloadEntry,
    target: Target,
    *,
    epoch: int | None,
    now: datetime,
    ensure_annotation: bool,
) -> tuple[Patch, ...]:
    """The patches that give `entry` its target, in the order to write them; () when it holds it.

    Taking a target out, the condition goes first (traffic stops before anything
    else moves); bringing one back, the weight goes first, so the entry is never
    healthy at its old weight. A missing health-checks annotation is the
    exception: `True` is written before the annotation makes Istio read it.
    """
    status_patches: list[Patch] = []
    stamp = timestamp(now)
    if not healthy_condition_ok(entry, target):
        conditions, change = _conditions(entry, target, epoch, stamp)
        status_patches.append(
            Patch(
                cluster,
                entry.namespace,
                entry.name,
                True,
                entry.resource_version,
                {"status": {"conditions": conditions}},
                (change,),
                target,
            )
        )
    spec: dict[str, Any] = {}
    annotations: dict[str, str] = {}
    changes: list[str] = []
    if target.weight is not None and entry.weight != target.weight:
        spec["weight"] = target.weight
        changes.append(f"weight {entry.weight} -> {target.weight}")
    if ensure_annotation and not entry.health_checks:
        annotations[HEALTH_CHECKS] = "true"
        changes.append(f"annotation {HEALTH_CHECKS}: true")
    spec_patches: list[Patch] = []
    if changes:
        if epoch is not None and entry.annotations.get(EPOCH_ANNOTATION) != str(epoch):
            annotations[EPOCH_ANNOTATION] = str(epoch)
        body: dict[str, Any] = {}
        if annotations:
            body["metadata"] = {"annotations": annotations}
        if spec:
            body["spec"] = spec
        spec_patches.append(
            Patch(
                cluster,
                entry.namespace,
                entry.name,
                False,
                entry.resource_version,
                body,
                tuple(changes),
                target,
            )
        )
    weight_first = target.healthy and spec and HEALTH_CHECKS not in annotations
    if weight_first:
        return (*spec_patches, *status_patches)
    return (*status_patches, *spec_patches)


def _conditions(
    entry: WorkloadEntry, target: Target, epoch: int | None, stamp: str
) -> tuple[list[dict[str, Any]], str]:
    old = entry.condition(HEALTHY)
    status = "True" if target.healthy else "False"
    was = None if old is None else old.get("status")
    since = stamp if was != status or old is None else old.get("lastTransitionTime", stamp)
    healthy: dict[str, Any] = {"type": HEALTHY, "status": status}
    if not target.healthy:
        healthy["reason"] = UNHEALTHY_REASON
        healthy["message"] = target.message
    healthy["lastProbeTime"] = stamp
    healthy["lastTransitionTime"] = since
    fence = None
    if epoch is not None:
        fence = {
            "type": EPOCH_CONDITION,
            "status": "True",
            "reason": EPOCH_REASON,
            "message": str(epoch),
            "lastProbeTime": stamp,
            "lastTransitionTime": stamp,
        }
    out: list[dict[str, Any]] = []
    for c in entry.conditions:
        if c.get("type") == HEALTHY:
            out.append(healthy)
            healthy = {}
        elif c.get("type") == EPOCH_CONDITION and fence is not None:
            out.append(c if c.get("message") == fence["message"] else fence)
            fence = None
        else:
            out.append(dict(c))
    out += [c for c in (healthy, fence) if c]
    before = was or "missing"
    if was == "False" and old is not None and old.get("message"):
        before += f" ({old['message']})"
    reason = "" if target.healthy else f" ({target.message})"
    return out, f"Healthy {before} -> {status}{reason}"


@dataclass(frozen=True)
class MeshPlan:
    """The patches of one cluster, and what the cluster would look like after them."""

    cluster: str
    generation: int  # of the table the plan was made for
    epoch: int | None
    patches: tuple[Patch, ...]
    skipped: tuple[Skipped, ...]  # WLEs gtm leaves alone, with why
    fenced: tuple[Skipped, ...]  # WLEs a newer leader already wrote
    missing_annotation: tuple[str, ...]  # WLEs whose condition Istio ignores (not ensured)
    managed: int  # WLEs with a target
    in_sync: int
    unhealthy_after: int  # managed WLEs unhealthy once the plan is applied
    newly_unhealthy: int  # of which the plan takes out

    @property
    def empty(self) -> bool:
        return not self.patches

    def check(self, max_unhealthy_share: float) -> Check:
        """The blast-radius check: fails when the plan takes WLEs out and leaves too many
        of the cluster's managed WLEs unhealthy."""
        share = self.unhealthy_after / self.managed if self.managed else 0.0
        passed = not self.newly_unhealthy or not self.managed or share <= max_unhealthy_share
        message = (
            f"cluster {self.cluster}: the plan leaves {self.unhealthy_after} of {self.managed}"
            f" managed WorkloadEntries unhealthy ({share:.1%}), "
            + ("within" if passed else "more than")
            + f" max_unhealthy_share {max_unhealthy_share:.0%}"
            + ("" if passed else "; force it to apply")
        )
        return Check(
            "max_unhealthy_share",
            passed,
            message,
            changed=self.unhealthy_after,
            total=self.managed,
            limit=max_unhealthy_share,
            where=self.cluster,
        )

    def unsafe(self, max_unhealthy_share: float) -> UnsafePlan | None:
        """The refusal when the check fails, else None."""
        check = self.check(max_unhealthy_share)
        return None if check.passed else UnsafePlan([check])

    def raise_if_unsafe(self, max_unhealthy_share: float, *, force: bool = False) -> None:
        refusal = self.unsafe(max_unhealthy_share)
        if refusal is not None and not force:
            raise refusal

    def lines(self) -> list[str]:
        head = (
            f"cluster {self.cluster} (table generation {self.generation}): {len(self.patches)}"
            f" patches; {self.in_sync}/{self.managed} WorkloadEntries in sync;"
            f" {self.unhealthy_after} unhealthy after ({self.newly_unhealthy} taken out)"
        )
        out = [head, *(f"  patch {p}" for p in self.patches)]
        out += [f"  fenced {s}" for s in self.fenced]
        out += [f"  missing annotation {HEALTH_CHECKS}: {k}" for k in self.missing_annotation]
        out += [f"  skipped {s}" for s in self.skipped]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


SLICE = 200  # entries per step of `planning` (and of a table's adoption)


def planning(
    cluster: str,
    generation: int,
    entries: Iterable[WorkloadEntry],
    target_of: Callable[[WorkloadEntry], Target | str],
    *,
    epoch: int | None,
    now: datetime,
    ensure_annotation: bool,
    slice: int = SLICE,
) -> Steps[MeshPlan]:
    """Diff every entry against its target (`target_of` gives a reason to skip instead),
    yielding after every `slice` entries (12,000 of them per cluster at 4,000 services
    are a few hundred milliseconds): `policies.stepped` on a loop, `to_end` at once.
    The entries are taken (sorted) at the first step: a watch cache may change while
    it yields."""
    patches: list[Patch] = []
    skipped: list[Skipped] = []
    fenced: list[Skipped] = []
    missing: list[str] = []
    managed = synced = after = newly = 0
    for i, entry in enumerate(sorted(entries, key=lambda e: e.key)):
        if i and i % slice == 0:
            yield
        target = target_of(entry)
        if isinstance(target, str):
            skipped.append(Skipped(entry.namespace, entry.name, target))
            continue
        managed += 1
        if epoch is not None and entry.epoch > epoch:
            fenced.append(
                Skipped(entry.namespace, entry.name, f"written by epoch {entry.epoch} > {epoch}")
            )
            after += unhealthy_now(entry)
            continue
        if not target.healthy:
            after += 1
            newly += not unhealthy_now(entry)
        if not ensure_annotation and not entry.health_checks:
            missing.append(str(entry))
        found = diff(
            cluster, entry, target, epoch=epoch, now=now, ensure_annotation=ensure_annotation
        )
        if found:
            patches += found
        else:
            synced += 1
    return MeshPlan(
        cluster,
        generation,
        epoch,
        tuple(patches),
        tuple(skipped),
        tuple(fenced),
        tuple(missing),
        managed,
        synced,
        after,
        newly,
    )
