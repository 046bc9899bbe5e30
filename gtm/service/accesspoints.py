"""The leader's AccessPoints: read in the home cluster, rendered into this region's clusters.

AccessPoints live in one cluster of the estate, `accesspoints.cluster`, in the
namespaces `accesspoints.namespaces`. Each region's leader, once a term and
then every `accesspoints.resync` seconds:

- lists them there. A home cluster that cannot be read stops changes to
  AccessPoints, never the traffic: nothing rendered is touched, failover goes on;
- discovers each AP's VIPs from its Service's `status.loadBalancer` in every
  cluster of its scope, any region's (read only);
- for each AP and each cluster of its scope **in its own region**: renders, plans
  (`plan_step`) and applies (`apply_plan`), each write behind the term's fence
  (`WriteFence.holds`: a leader that lost its lease writes nothing more). While an
  upstream's VIPs are not all known, deletes are held. A new WorkloadEntry gets the
  `Healthy` condition the table this cluster follows gives it
  and weight (`Reconciler.first_target`), never `True` blindly;
- with `spec.policy.rollout`, renders a changed template only into the clusters the
  rollout has reached (`accesspoints.rollout`: the AP's status shows the gate held
  in the cluster before); the others are not touched, their entries say why, and
  `status.rollout` says where it stands (written by whichever leader writes last,
  from the same entries);
- sweeps: an object of its own clusters labelled as gtm's for an AP that no longer
  exists in that namespace (and the list was whole) is deleted. An AP that does not
  parse still exists: its objects are kept;
- writes its own clusters' entries of `status.clusters[]`, the AP's discovered
  VIPs and conditions through `/status`: read-modify-write on resourceVersion,
  re-read and redone on a conflict, so another region's leader writing the same
  AP loses nothing. The other regions' entries are kept as they are.

Conditions, computed by whichever leader writes from what it can see (every
cluster's Services, every region's entries):
`L4Ready` (each cluster of the scope has a VIP), `CertificateReady` (every
Secret a Gateway names, in every cluster, holds a certificate valid for
`accesspoints.certificate_days` more days: each leader checks its own clusters
and writes what it found in their entries; `gtm.service.certificates`),
`UpstreamsResolved` (each upstream has a VIP), `Applied` (every cluster of the
scope applied its current revision), `Onboarded` (an AP with `spec.gtm`: its
service is answered in DNS, or why not: `gtm.service.onboarding`), `Degraded`
(any of them not true).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from accesspoints import (
    LABEL_ACCESSPOINT,
    LABEL_MANAGED,
    AccessPoint,
    AccessPointError,
    parse_accesspoint,
)
from accesspoints.rollout import Progress, Resume, progress, started, template_revision
from failover import Reconciler, WriteFence, WriteStopped
from gtm.config import Inventory
from gtm.service import certificates
from gtm.service.accesspoint_apply import (
    Applied,
    Catalog,
    ClusterObjects,
    Discovered,
    Healthy,
    Snapshot,
    apply_plan,
    cluster_of,
    discover,
    open_objects,
    plan_step,
    service_name,
    until_gtm_decides,
)
from gtm.service.accesspoint_watch import Wakeup, watches
from gtm.service.certificates import Certificate
from kube import MERGE_PATCH, Client, Conflict, KubeError, NotFound

log = structlog.get_logger("gtm.accesspoints")

GROUP, VERSION, PLURAL = "gtm.io", "v1alpha1", "accesspoints"
# whether an AP's service is answered (True, how) or not (False, why); None: not yet known
Onboarded = Callable[[str], tuple[bool, str] | None]
STATUS_ATTEMPTS = 8  # reads and writes of one AP's status, on conflicts with other writers


class AccessPointMetrics:
    """What the leader's AccessPoint controller exports (one per member, every term's)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.syncs = Counter(
            "gtm_accesspoint_syncs",
            "Passes over every AccessPoint, by result (ok; failed: the home cluster or a status "
            "write failed, nothing rendered was touched; stopped: the lease was lost)",
            ["result"],
            registry=registry,
        )
        self.last_sync = Gauge(
            "gtm_accesspoint_last_sync_timestamp_seconds",
            "When the last whole pass over every AccessPoint ended (0: none yet this process)",
            registry=registry,
        )
        self.condition = Gauge(
            "gtm_accesspoint_condition",
            "An AccessPoint's condition as this region's leader last wrote it: 1 True, 0 False "
            "(Unknown: no series)",
            ["namespace", "accesspoint", "condition"],
            registry=registry,
        )
        self.certificate_expiry = Gauge(
            "gtm_accesspoint_certificate_expiry_timestamp_seconds",
            "When the certificate a Gateway of the AccessPoint names expires, in each cluster "
            "of its scope, as its status holds it",
            ["namespace", "accesspoint", "cluster", "secret"],
            registry=registry,
        )
        self._shown: dict[Gauge, set[tuple[str, ...]]] = {
            self.condition: set(),
            self.certificate_expiry: set(),
        }

    def show(
        self,
        conditions: Mapping[tuple[str, str, str], bool],
        expiries: Mapping[tuple[str, str, str, str], float],
    ) -> None:
        """This pass's values; series of APs, clusters or Secrets no longer seen are removed."""
        for gauge, values in (
            (self.condition, {k: 1.0 if v else 0.0 for k, v in conditions.items()}),
            (self.certificate_expiry, dict(expiries)),
        ):
            for labels in self._shown[gauge] - set(values):
                gauge.remove(*labels)
            for labels, value in values.items():
                gauge.labels(*labels).set(value)
            self._shown[gauge] = set(values)


class HomeAccessPoints:
    """The AccessPoints of the home cluster: listed, and their status written."""

    def __init__(self, client: Client, namespaces: Sequence[str]) -> None:
        self._client = client
        self.namespaces = tuple(namespaces)

    @property
    def client(self) -> Client:
        return self._client

    async def list(self) -> list[dict[str, Any]]:
        """Every AP of the namespaces; `KubeError` when any cannot be read (no partial list)."""
        out: list[dict[str, Any]] = []
        for ns in self.namespaces:
            call = partial(
                self._client.custom_objects.list_namespaced_custom_object,
                GROUP, VERSION, ns, PLURAL,
            )  # fmt: skip
            page = await self._client.request("list", call, what=f"AccessPoint {ns}")
            out += page.get("items") or []
        return out

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        call = partial(
            self._client.custom_objects.get_namespaced_custom_object,
            GROUP, VERSION, namespace, PLURAL, name,
        )  # fmt: skip
        try:
            return await self._client.request("get", call, what=f"AccessPoint {namespace}/{name}")
        except NotFound:
            return None

    async def annotate(
        self, namespace: str, name: str, key: str, value: str, resource_version: str
    ) -> None:
        """Set one annotation of the AP as it was read (`Conflict`: it changed since)."""
        body = {"metadata": {"resourceVersion": resource_version, "annotations": {key: value}}}
        call = partial(
            self._client.custom_objects.patch_namespaced_custom_object,
            GROUP, VERSION, namespace, PLURAL, name, body, _content_type=MERGE_PATCH,
        )  # fmt: skip
        await self._client.request("patch", call, what=f"AccessPoint {namespace}/{name}")

    async def update_status(
        self,
        namespace: str,
        name: str,
        change: Callable[[Mapping[str, Any]], dict[str, Any]],
        fence: WriteFence,
        listed: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Read the AP (`listed`: as just listed, the first time), `change(ap)` -> its new
        status; write it (unless the AP holds it already) on the resourceVersion read; on a
        conflict, read it again. Returns the status the AP holds now, None when it is gone."""
        for attempt in range(STATUS_ATTEMPTS):
            ap = listed if attempt == 0 and listed is not None else await self.get(namespace, name)
            if ap is None:
                return None
            status = change(ap)
            old = ap.get("status") or {}
            if all(old.get(k) == _stored(v) for k, v in status.items()):
                return status
            version = (ap.get("metadata") or {}).get("resourceVersion")
            body = {"metadata": {"resourceVersion": version}, "status": status}
            call = partial(
                self._client.custom_objects.patch_namespaced_custom_object_status,
                GROUP, VERSION, namespace, PLURAL, name, body, _content_type=MERGE_PATCH,
            )  # fmt: skip
            fence.holds()
            try:
                await self._client.request(
                    "patch", call, what=f"AccessPoint {namespace}/{name}/status"
                )
                return status
            except Conflict:
                continue  # another region's leader wrote it meanwhile: read it again
            except NotFound:
                return None
        raise KubeError(
            f"AccessPoint {namespace}/{name}/status: still conflicting after "
            f"{STATUS_ATTEMPTS} attempts"
        )


def _stored(value: Any) -> Any:
    """`value` as the API server keeps it after a merge patch: a null removes its field."""
    if isinstance(value, Mapping):
        return {k: _stored(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_stored(v) for v in value]
    return value


@dataclass
class ClusterResult:
    """One AP in one of this region's clusters, after a sync."""

    name: str
    region: str
    revision: str
    applied: bool  # the cluster holds the current revision, nothing failed, held or refused
    message: str
    certificates: list[Certificate] | list[Mapping[str, Any]] | None = None  # None: unchecked
    changed: int = 0  # changes made in this pass
    template: str | None = None  # the template revision the cluster took (`rollout`)
    template_since: str | None = None  # when it took it

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "region": self.region,
            "revision": self.revision,
            "applied": self.applied,
            "message": self.message,
        }
        if self.template is not None:
            out["template"] = self.template
            out["templateSince"] = self.template_since
        if self.certificates is not None:
            out["certificates"] = [
                c.entry() if isinstance(c, Certificate) else dict(c) for c in self.certificates
            ]
        return out

    @staticmethod
    def held(name: str, region: str, old: Mapping[str, Any], why: str) -> ClusterResult:
        """A cluster the rollout has not reached: left as it is, its entry kept."""
        return ClusterResult(
            name, region, str(old.get("revision") or ""), False, why,
            old.get("certificates"), template=old.get("template"),
            template_since=old.get("templateSince"),
        )  # fmt: skip


@dataclass
class Synced:
    """What one sync did."""

    accesspoints: int = 0
    invalid: dict[str, str] = field(default_factory=dict)  # ns/name -> why it does not parse
    results: dict[str, list[ClusterResult]] = field(default_factory=dict)  # ns/name -> clusters
    swept: list[str] = field(default_factory=list)  # objects of deleted APs, deleted
    unwritten: list[str] = field(default_factory=list)  # ns/name: status not written this pass


def _outcome(applied: Applied, revision: str, refused: Sequence[str]) -> tuple[bool, str]:
    if refused:
        return False, "refused: " + "; ".join(refused)
    parts = []
    if applied.done:
        parts.append(f"{len(applied.done)} change(s) applied")
    for what, lines in (
        ("failed", applied.failed),
        ("conflict", applied.conflicts),
        ("held", applied.held),
        ("waiting", applied.waiting),
    ):
        parts += [f"{what}: {line}" for line in lines]
    return applied.ok, "; ".join(parts) or f"revision {revision} in place"


def _condition(
    kind: str, ok: bool | None, reason: str, message: str, old: Sequence[Mapping[str, Any]], at: str
) -> dict[str, Any]:
    status = "Unknown" if ok is None else "True" if ok else "False"
    before = next((c for c in old if isinstance(c, Mapping) and c.get("type") == kind), None)
    since = at
    if before is not None and before.get("status") == status and before.get("lastTransitionTime"):
        since = str(before["lastTransitionTime"])
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }


def _export(
    namespace: str,
    name: str,
    status: Mapping[str, Any],
    conditions: dict[tuple[str, str, str], bool],
    expiries: dict[tuple[str, str, str, str], float],
) -> None:
    """An AP's status as metric values: its known conditions, its certificates' ends."""
    for c in status.get("conditions") or []:
        if c.get("status") in ("True", "False"):
            conditions[(namespace, name, str(c["type"]))] = c["status"] == "True"
    for entry in status.get("clusters") or []:
        for cert in entry.get("certificates") or []:
            if cert.get("notAfter"):
                end = datetime.fromisoformat(str(cert["notAfter"]).replace("Z", "+00:00"))
                key = (namespace, name, str(entry.get("name")), str(cert.get("secret")))
                expiries[key] = end.timestamp()


def gate_failing(
    ap: AccessPoint,
    revision: str,
    by_name: Mapping[str, Mapping[str, Any]],
    found: Mapping[str, Discovered],
) -> Callable[[str], list[str]]:
    """The rollout gate's conditions not true in a cluster, each with why."""
    rollout = ap.spec.policy.rollout
    gates = rollout.gate.conditions if rollout is not None else ("Applied",)
    with_vip = {v.cluster for v in found.get(ap.name, Discovered()).vips}
    unresolved = [
        u.access_point
        for u in ap.spec.upstreams
        if not found.get(u.access_point, Discovered()).vips
    ]

    def failing(cluster: str) -> list[str]:
        entry = by_name.get(cluster) or {}
        out = []
        for gate in gates:
            if gate == "Applied" and not (
                entry.get("template") == revision and entry.get("applied")
            ):
                out.append(f"Applied ({entry.get('message') or 'not yet'})")
            elif gate == "L4Ready" and service_name(ap) is not None and cluster not in with_vip:
                out.append("L4Ready (no VIP in the Service's status)")
            elif gate == "CertificateReady":
                certs = entry.get("certificates")
                if certs is None:
                    out.append("CertificateReady (not checked yet)")
                elif any(c.get("problem") for c in certs):
                    out.append(
                        f"CertificateReady ({'; '.join(c['problem'] for c in certs if c.get('problem'))})"
                    )
            elif gate == "UpstreamsResolved" and unresolved:
                out.append(f"UpstreamsResolved (no VIP for {', '.join(unresolved)})")
        return out

    return failing


def rollout_of(
    ap_doc: Mapping[str, Any],
    ap: AccessPoint,
    by_name: Mapping[str, Mapping[str, Any]],
    found: Mapping[str, Discovered],
    at: datetime,
) -> Progress:
    """Where the rollout of the AP's template stands, from each cluster's entry."""
    revision = template_revision(ap)
    return progress(
        ap,
        revision,
        by_name,
        gate_failing(ap, revision, by_name, found),
        last=(ap_doc.get("status") or {}).get("rollout"),
        resume=Resume.of(ap_doc),
        now=at,
    )


def status_of(
    ap_doc: Mapping[str, Any],
    *,
    ap: AccessPoint | None,
    mine: Sequence[ClusterResult],
    problem: str | None,
    found: Mapping[str, Discovered],
    at: datetime,
    onboarded: tuple[bool, str] | None = None,
) -> dict[str, Any]:
    """The AP's new status over `ap_doc` (the AP as just read): this region's entries in place of the old ones, the others kept;
    the VIPs and conditions from what this leader sees."""
    old = ap_doc.get("status") or {}
    ours = {r.name for r in mine}
    entries = [
        e for e in old.get("clusters") or [] if isinstance(e, Mapping) and e.get("name") not in ours
    ]
    own = [r.entry() for r in mine]
    if ap is not None and ap.spec.gtm is not None and onboarded is not None:
        for e in own:  # this region's members' view: answered, or why not
            e["onboarded"] = {"answered": onboarded[0], "message": onboarded[1]}
    entries = sorted([*entries, *own], key=lambda e: str(e.get("name")))
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    before = old.get("conditions") or []
    generation = (ap_doc.get("metadata") or {}).get("generation")
    status: dict[str, Any] = {"clusters": entries}
    if isinstance(generation, int):
        status["observedGeneration"] = generation
    if ap is None:  # it does not parse: say so, keep the rest
        status["conditions"] = [
            _condition("Applied", False, "Invalid", problem or "", before, stamp),
            _condition("Degraded", True, "Invalid", problem or "", before, stamp),
        ]
        return status
    discovered = found.get(ap.name, Discovered())
    status["vips"] = [
        {"cluster": v.cluster, "region": v.region, "ip": v.ip} for v in discovered.vips
    ]
    scope = list(ap.spec.scope.clusters)
    conditions = []
    if service_name(ap) is not None:
        with_vip = {v.cluster for v in discovered.vips}
        missing = [c for c in scope if c not in with_vip and c not in discovered.unread]
        unread = sorted(discovered.unread)
        if missing:
            l4 = _condition(
                "L4Ready", False, "NoAddress",
                f"no VIP in the Service's status in {', '.join(missing)}", before, stamp,
            )  # fmt: skip
        elif unread:
            l4 = _condition(
                "L4Ready", None, "Unreachable",
                f"cannot read {', '.join(unread)}", before, stamp,
            )  # fmt: skip
        else:
            l4 = _condition("L4Ready", True, "Addressed", "a VIP in every cluster", before, stamp)
        conditions.append(l4)
    unresolved = [
        u.access_point
        for u in ap.spec.upstreams
        if not found.get(u.access_point, Discovered()).vips
    ]
    conditions.append(
        _condition(
            "UpstreamsResolved",
            not unresolved,
            "NoUpstreamVip" if unresolved else "Resolved",
            (f"no VIP discovered for {', '.join(unresolved)}" if unresolved else "every upstream"),
            before,
            stamp,
        )
    )
    by_name = {str(e.get("name")): e for e in entries}
    conditions.append(_certificates(scope, by_name, before, stamp))
    pending = [c for c in scope if not (by_name.get(c) or {}).get("applied")]
    reason = "NotApplied" if pending else "Applied"
    message = "; ".join(f"{c}: {(by_name.get(c) or {}).get('message', 'not yet')}" for c in pending)
    if ap.spec.policy.rollout is not None:
        rollout = rollout_of(ap_doc, ap, by_name, found, at)
        status["rollout"] = rollout.status()
        if pending and rollout.phase != "Complete":
            # held by the rollout, on purpose: Degraded only when it aborted
            reason = {"Aborted": "RolloutAborted", "Paused": "RolloutPaused"}.get(
                rollout.phase, "RollingOut"
            )
            message = f"rollout step {rollout.step}: {rollout.message}"
    conditions.append(
        _condition(
            "Applied",
            not pending,
            reason,
            message or "every cluster holds its revision",
            before,
            stamp,
        )
    )
    if ap.spec.gtm is not None:
        conditions.append(_onboarded(scope, by_name, before, stamp))
    bad = [
        c
        for c in conditions
        if c["status"] != "True" and c["reason"] not in ("RollingOut", "RolloutPaused")
    ]
    conditions.append(
        _condition(
            "Degraded",
            bool(bad),
            bad[0]["reason"] if bad else "AsExpected",
            "; ".join(f"{c['type']}: {c['message']}" for c in bad) or "",
            before,
            stamp,
        )
    )
    status["conditions"] = conditions
    return status


def _onboarded(
    scope: Sequence[str],
    by_name: Mapping[str, Mapping[str, Any]],
    before: Sequence[Mapping[str, Any]],
    stamp: str,
) -> dict[str, Any]:
    """Onboarded from each region's entries: what that region's members answer. Each
    leader reports its own region, so the condition does not flip with the last writer."""
    said: dict[str, Mapping[str, Any] | None] = {}
    for cluster in scope:
        entry = by_name.get(cluster) or {}
        region = str(entry.get("region") or cluster)
        if said.get(region) is None:
            said[region] = entry.get("onboarded")
    refused = [
        f"{r}: {v.get('message')}" for r, v in sorted(said.items()) if v and not v.get("answered")
    ]
    if refused:
        return _condition("Onboarded", False, "Refused", "; ".join(refused), before, stamp)
    pending = sorted(r for r, v in said.items() if not v)
    if pending:
        why = f"not onboarded yet in {', '.join(pending)} (VIPs and a port are needed)"
        return _condition("Onboarded", None, "Pending", why, before, stamp)
    how = sorted({str(v.get("message")) for v in said.values() if v})
    return _condition("Onboarded", True, "Answered", "; ".join(how), before, stamp)


def _certificates(
    scope: Sequence[str],
    by_name: Mapping[str, Mapping[str, Any]],
    before: Sequence[Mapping[str, Any]],
    stamp: str,
) -> dict[str, Any]:
    """CertificateReady from each cluster's entry: every Secret there, valid long enough."""
    problems, unknown, fewest = [], [], None
    for cluster in scope:
        certificates = (by_name.get(cluster) or {}).get("certificates")
        if certificates is None:
            unknown.append(cluster)
            continue
        for c in certificates:
            if c.get("problem"):
                problems.append(f"{cluster}: {c['problem']}")
            elif isinstance(c.get("daysLeft"), int) and (
                fewest is None or c["daysLeft"] < fewest[0]
            ):
                fewest = (c["daysLeft"], cluster, c.get("secret"))
    if problems:
        return _condition(
            "CertificateReady", False, "CertificateProblem", "; ".join(problems), before, stamp
        )
    if unknown:
        return _condition(
            "CertificateReady", None, "NotChecked",
            f"not checked yet in {', '.join(unknown)}", before, stamp,
        )  # fmt: skip
    if fewest is None:
        return _condition(
            "CertificateReady", True, "NoCertificate", "no Gateway names a credentialName",
            before, stamp,
        )  # fmt: skip
    days, cluster, secret = fewest
    return _condition(
        "CertificateReady", True, "Valid",
        f"fewest days left: {days} ({cluster}, Secret {secret})", before, stamp,
    )  # fmt: skip


class AccessPointController:
    """One term's AccessPoints for one region (see the module)."""

    def __init__(
        self,
        inventory: Inventory,
        region: str,
        home: HomeAccessPoints,
        objects: Mapping[str, ClusterObjects],
        fence: WriteFence,
        *,
        reconcilers: Sequence[Reconciler] = (),
        metrics: AccessPointMetrics | None = None,
        onboarding: Onboarded = lambda key: None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._inventory = inventory
        self._metrics = metrics
        self._onboarding = onboarding
        self._region = region
        self._home = home
        self._objects = objects
        self._fence = fence
        self._reconcilers = {r.settings.name: r for r in reconcilers}
        self._now = now
        self._clusters = {name: cluster_of(name, inventory) for name in objects}
        self.own = sorted(n for n, c in self._clusters.items() if c.region == region)

    def _first(self, cluster: str) -> tuple[Healthy, Callable[[Mapping[str, Any]], int | None]]:
        """A new WLE's `Healthy` condition and weight, as the table this cluster follows
        gives them (`Reconciler.first_target`); else out until gtm decides, rendered weight."""
        reconciler = self._reconcilers.get(cluster)

        def healthy(wle: Mapping[str, Any]) -> tuple[bool, str]:
            said = reconciler.first_target(wle) if reconciler is not None else None
            return (said.healthy, said.message or "") if said else until_gtm_decides(wle)

        def weight(wle: Mapping[str, Any]) -> int | None:
            said = reconciler.first_target(wle) if reconciler is not None else None
            return said.weight if said is not None and said.healthy else None

        return healthy, weight

    async def sync(self) -> Synced:
        """One pass over every AP (`KubeError`: the home cluster could not be listed: nothing
        was changed; `WriteStopped`: the lease is lost)."""
        docs = await self._home.list()
        out = Synced(accesspoints=len(docs))
        aps: list[tuple[Mapping[str, Any], AccessPoint | None, str | None]] = []
        for doc in docs:
            meta = doc.get("metadata") or {}
            key = f"{meta.get('namespace')}/{meta.get('name')}"
            try:
                aps.append((doc, parse_accesspoint(doc), None))
            except AccessPointError as e:
                why = "; ".join(f"{'.'.join(map(str, p))}: {m}" for p, m in e.problems)
                out.invalid[key] = why
                aps.append((doc, None, why))
                log.warning("accesspoint.invalid", accesspoint=key, problems=why)
        parsed = [ap for _, ap, _ in aps if ap is not None]
        found = await discover(parsed, self._objects, self._clusters)
        conditions: dict[tuple[str, str, str], bool] = {}
        expiries: dict[tuple[str, str, str, str], float] = {}
        snapshots = await self._snapshots()
        catalog = Catalog.of(parsed)

        async def one(doc: Mapping[str, Any], ap: AccessPoint | None, problem: str | None) -> None:
            mine: list[ClusterResult] = []
            if ap is not None:
                mine = await self._render(ap, doc, catalog, found, snapshots)
                out.results[f"{ap.namespace}/{ap.name}"] = mine
            meta = doc.get("metadata") or {}
            ns, name = str(meta.get("namespace")), str(meta.get("name"))
            change = partial(
                status_of,
                ap=ap,
                mine=mine,
                problem=problem,
                found=found,
                at=self._now(),
                onboarded=self._onboarding(f"{ns}/{name}"),
            )
            try:
                status = await self._home.update_status(ns, name, change, self._fence, doc)
            except KubeError as e:  # this AP's status waits for the next pass, the rest go on
                log.warning(
                    "accesspoint.status_not_written", accesspoint=f"{ns}/{name}", error=str(e)
                )
                out.unwritten.append(f"{ns}/{name}")
                return
            if status is not None:
                _export(ns, name, status, conditions, expiries)

        limit = asyncio.Semaphore(self._inventory.config.accesspoints.concurrency)

        async def bounded(entry: tuple[Mapping[str, Any], AccessPoint | None, str | None]) -> None:
            async with limit:
                await one(*entry)

        try:
            async with asyncio.TaskGroup() as tasks:
                for entry in aps:
                    tasks.create_task(bounded(entry))
        except BaseExceptionGroup as group:  # the first that stopped the pass, as itself
            stopped = group.subgroup(WriteStopped)
            raise (stopped or group).exceptions[0] from None
        out.swept = await self._sweep(docs, snapshots)
        if self._metrics is not None:
            self._metrics.show(conditions, expiries)
        return out

    async def _render(
        self,
        ap: AccessPoint,
        doc: Mapping[str, Any],
        catalog: Catalog,
        found: Mapping[str, Discovered],
        snapshots: Mapping[str, Snapshot | None],
    ) -> list[ClusterResult]:
        entries = {
            str(e.get("name")): e
            for e in (doc.get("status") or {}).get("clusters") or []
            if isinstance(e, Mapping)
        }
        now = self._now()
        rollout = rollout_of(doc, ap, entries, found, now)
        results = []
        for cluster in ap.spec.scope.clusters:
            if cluster not in self.own:
                continue
            region = self._clusters[cluster].region
            old = entries.get(cluster) or {}
            if not started(old, rollout.revision) and cluster not in rollout.may_start:
                why = (
                    f"held by the rollout ({rollout.phase}, step {rollout.step}): {rollout.message}"
                )
                results.append(ClusterResult.held(cluster, region, old, why))
                continue
            since = (
                str(old.get("templateSince"))
                if started(old, rollout.revision) and old.get("templateSince")
                else now.strftime("%Y-%m-%dT%H:%M:%SZ")
            )
            objects = self._objects[cluster]
            snapshot = snapshots.get(cluster)
            try:
                step = await plan_step(
                    ap, catalog, cluster, found, objects, self._inventory, self._now(), snapshot
                )
            except KubeError as e:  # nothing written: the entry keeps what the cluster took
                results.append(ClusterResult.held(cluster, region, old, f"cannot read: {e}"))
                continue
            plan = step.plan
            healthy, weight = self._first(cluster)
            applied = await apply_plan(
                objects,
                plan,
                step.current,
                healthy,
                weight=weight,
                fence=self._fence,
                now=self._now,
            )
            ok, message = _outcome(applied, plan.revision, plan.problems)
            for line in applied.done:
                log.info("accesspoint.changed", accesspoint=ap.name, cluster=cluster, change=line)
            min_days = self._inventory.config.accesspoints.certificate_days
            try:
                certs = await certificates.check(
                    snapshot or objects, step.rendered.objects, self._now(), min_days
                )
            except KubeError as e:
                log.warning("accesspoint.certificates_unread", cluster=cluster, error=str(e))
                certs = None
            results.append(
                ClusterResult(
                    cluster,
                    region,
                    plan.revision,
                    ok,
                    message,
                    certs,
                    changed=len(applied.done),
                    template=rollout.revision,
                    template_since=since,
                )
            )
        return results

    async def _sweep(
        self, docs: Sequence[Mapping[str, Any]], snapshots: Mapping[str, Snapshot | None]
    ) -> list[str]:
        """Delete what this region's clusters hold for APs that are gone (the list was whole;
        a cluster that could not be read is swept at a later pass)."""
        alive: set[tuple[str, str]] = set()
        for doc in docs:
            meta = doc.get("metadata") or {}
            alive.add((str(meta.get("namespace")), str(meta.get("name"))))
        swept = []
        for cluster in self.own:
            snapshot = snapshots.get(cluster)
            if snapshot is None:
                continue
            for obj in snapshot.labelled():
                meta = obj.get("metadata") or {}
                labels = meta.get("labels") or {}
                ns, owner = str(meta.get("namespace")), labels.get(LABEL_ACCESSPOINT)
                if labels.get(LABEL_MANAGED) != "true" or (ns, owner) in alive:
                    continue
                key = (str(obj["apiVersion"]), str(obj["kind"]), ns, str(meta.get("name")))
                self._fence.holds()
                try:
                    await snapshot.objects.delete(key)
                except KubeError as e:
                    log.warning("accesspoint.sweep_failed", cluster=cluster, error=str(e))
                    continue
                line = f"{cluster}: delete {key[1]} {ns}/{key[3]} (AccessPoint {owner} gone)"
                log.info("accesspoint.swept", change=line)
                swept.append(line)
        return swept

    async def _snapshots(self) -> dict[str, Snapshot | None]:
        """Each own cluster's objects in the AP namespaces (None: it could not be read)."""
        out: dict[str, Snapshot | None] = {}
        for cluster in self.own:
            try:
                out[cluster] = await Snapshot.take(self._objects[cluster], self._home.namespaces)
            except KubeError as e:
                log.warning("accesspoint.cluster_unread", cluster=cluster, error=str(e))
                out[cluster] = None
        return out

    async def run(self, every: float, gap: float = 1.0) -> None:
        """Sync at once, then every `every` seconds or when a watch wakes it (at most once
        per `gap` seconds: `accesspoint_watch`), until cancelled or the lease is lost."""
        wake = Wakeup()
        follows = [
            asyncio.create_task(w)
            for w in watches(self._home.client, self._home.namespaces, self._objects, wake)
        ]
        try:
            await self._loop(every, gap, wake)
        finally:
            for task in follows:
                task.cancel()
            await asyncio.gather(*follows, return_exceptions=True)

    async def _loop(self, every: float, gap: float, wake: Wakeup) -> None:
        while True:
            started = time.monotonic()
            result = "failed"
            try:
                done = await self.sync()
                result = "failed" if done.unwritten else "ok"
                log.info(
                    "accesspoint.synced",
                    region=self._region,
                    accesspoints=done.accesspoints,
                    invalid=len(done.invalid),
                    swept=len(done.swept),
                    seconds=round(time.monotonic() - started, 3),
                )
            except WriteStopped as e:
                result = "stopped"
                log.warning("accesspoint.stopped", why=str(e))
                return
            except KubeError as e:
                # the home cluster (or a status write) failed: nothing rendered is touched
                log.warning("accesspoint.sync_failed", region=self._region, error=str(e))
            finally:
                if self._metrics is not None:
                    self._metrics.syncs.labels(result).inc()
                    if result == "ok":
                        self._metrics.last_sync.set(time.time())
            await asyncio.sleep(max(0.0, gap - (time.monotonic() - started)))
            why = await wake.wait(every)
            if why:
                log.info("accesspoint.woken", region=self._region, why=why[:5], more=len(why) - 5)


async def open_home(
    inventory: Inventory, stack: AsyncExitStack, *, only_home: bool = False
) -> tuple[HomeAccessPoints, dict[str, ClusterObjects]] | None:
    """The home cluster's AccessPoints and a client for each of the estate's clusters (only
    the home one with `only_home`), closed by `stack`; None: the estate names no home."""
    settings = inventory.config.accesspoints
    if settings.cluster is None:
        return None
    objects = await open_objects(inventory, stack, {settings.cluster} if only_home else None)
    return HomeAccessPoints(objects[settings.cluster].client, settings.namespaces), objects


async def open_controller(
    inventory: Inventory,
    region: str,
    fence: WriteFence,
    reconcilers: Sequence[Reconciler],
    stack: AsyncExitStack,
    metrics: AccessPointMetrics,
    onboarding: Onboarded,
) -> AccessPointController | None:
    """The term's AccessPoint controller, its clients closed by `stack` (None: the estate
    names no home cluster for AccessPoints)."""
    opened = await open_home(inventory, stack)
    if opened is None:
        return None
    home, objects = opened
    return AccessPointController(
        inventory,
        region,
        home,
        objects,
        fence,
        reconcilers=reconcilers,
        metrics=metrics,
        onboarding=onboarding,
    )
