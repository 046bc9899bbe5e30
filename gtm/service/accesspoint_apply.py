"""AccessPoints against real clusters: discover upstream VIPs, read what is there, apply a plan.

- `ClusterObjects(client)`: the kinds an AccessPoint renders (v1 Service; Istio
  Gateway, VirtualService, DestinationRule, WorkloadEntry, ServiceEntry) read,
  created, merge-patched with a resourceVersion precondition and deleted through
  the one Kubernetes client (`kube.Client`: paced, bounded, retried).
- `discover(...)`: each AP's VIPs, from its Service's `status.loadBalancer.ingress[].ip`
  in every cluster of its scope (any region's clusters may be read; one list of Services
  per cluster and namespace), and the clusters that could not be read: while any could not, nothing is deleted downstream
  (`Discovered.held`, `plan_cluster(hold_deletes=…)`).
- `current_objects(...)`: what a cluster holds under the rendered keys, and every
  object labelled as the AP's there (for garbage collection).
- `apply_plan(...)`: the plan's creates, updates and deletes, in that order; a
  WorkloadEntry created is given its `Healthy` condition through `/status` at
  once (a WLE with the health-checks annotation and no condition is excluded
  by istiod), as `healthy(wle)` says — never `True` blindly; an update never
  writes the WLE reconciler's fields (`spec.weight`, `status`). A VIP that left
  discovery: its WLE goes `Healthy=False` (`VIP Withdrawn`) and is stamped first,
  deleted only after the DNS TTL plus the exit margin (`plan_cluster`). Conflicts are
  reported, not fought. Each change's failure is kept and the rest go on.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog

from accesspoints import (
    LABEL_ACCESSPOINT,
    AccessPoint,
    Cluster,
    ClusterPlan,
    Rendered,
    UpstreamVip,
    plan_cluster,
    render,
)
from accesspoints.plan import WITHDRAWN_AT, Key
from accesspoints.render import LABEL_SERVICE, object_key
from failover import VIP_WITHDRAWN, WriteFence
from gtm.config import Inventory
from gtm.config.accesspoints import cluster_regions
from gtm.config.checks import split_of
from gtm.service.backends import retry_settings
from kube import MERGE_PATCH, Client, KubeError, NotFound, load_configuration

log = structlog.get_logger("gtm.accesspoints")

ISTIO_GROUP = "networking.istio.io"
PLURALS = {
    "Gateway": "gateways",
    "VirtualService": "virtualservices",
    "DestinationRule": "destinationrules",
    "WorkloadEntry": "workloadentries",
    "ServiceEntry": "serviceentries",
}
KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "Service"),
    *((f"{ISTIO_GROUP}/v1", kind) for kind in PLURALS),
)
# (healthy, message): the Healthy condition a new WLE starts with
Healthy = Callable[[Mapping[str, Any]], tuple[bool, str]]
AWAITING = "Awaiting gtm"


def until_gtm_decides(wle: Mapping[str, Any]) -> tuple[bool, str]:
    """With no table at hand: a WLE of a gtm service starts out (its reconciler brings it in
    as the table says); one gtm does not weigh starts in (nothing else would)."""
    labels = (wle.get("metadata") or {}).get("labels") or {}
    return (False, AWAITING) if LABEL_SERVICE in labels else (True, "")


@dataclass
class Applied:
    cluster: str
    done: list[str] = field(default_factory=list)  # change lines that were applied
    failed: list[str] = field(default_factory=list)  # change lines with the error
    conflicts: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # deletes not made now, with why
    waiting: list[str] = field(default_factory=list)  # withdrawn VIPs' WLEs, deleted later

    @property
    def ok(self) -> bool:
        return not self.failed and not self.conflicts and not self.held


class ClusterObjects:
    """One cluster's AccessPoint objects, through `kube.Client`."""

    def __init__(self, client: Client, cluster: str) -> None:
        self._client = client
        self.cluster = cluster

    @property
    def client(self) -> Client:
        return self._client

    async def get(self, key: Key) -> dict[str, Any] | None:
        api, kind, ns, name = key
        try:
            if kind == "Service":
                call = partial(self._client.core.read_namespaced_service, name, ns)
            else:
                version = api.split("/", 1)[1]
                call = partial(
                    self._client.custom_objects.get_namespaced_custom_object,
                    ISTIO_GROUP, version, ns, PLURALS[kind], name,
                )  # fmt: skip
            return await self._client.request("get", call, what=f"{kind} {ns}/{name}")
        except NotFound:
            return None

    async def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        call = partial(self._client.core.read_namespaced_secret, name, namespace)
        try:
            return await self._client.request("get", call, what=f"Secret {namespace}/{name}")
        except NotFound:
            return None

    async def services(self, namespace: str) -> dict[str, dict[str, Any]]:
        """The namespace's Services by name (one list)."""
        call = partial(self._client.core.list_namespaced_service, namespace)
        page = await self._client.request("list", call, what=f"Service {namespace}")
        return {
            str((item.get("metadata") or {}).get("name")): item for item in page.get("items") or []
        }

    async def secrets(self, namespace: str) -> dict[str, dict[str, Any]]:
        """The namespace's Secrets by name (one list)."""
        call = partial(self._client.core.list_namespaced_secret, namespace)
        page = await self._client.request("list", call, what=f"Secret {namespace}")
        return {
            str((item.get("metadata") or {}).get("name")): item for item in page.get("items") or []
        }

    async def labelled(self, namespace: str, selector: str | None) -> list[dict[str, Any]]:
        """Every object of the AP kinds in `namespace` whose labels match `selector` (None:
        every one), one list per kind."""
        out: list[dict[str, Any]] = []
        by = {} if selector is None else {"label_selector": selector}
        for api, kind in KINDS:
            if kind == "Service":
                call = partial(self._client.core.list_namespaced_service, namespace, **by)
            else:
                call = partial(
                    self._client.custom_objects.list_namespaced_custom_object,
                    ISTIO_GROUP, api.split("/", 1)[1], namespace, PLURALS[kind], **by,
                )  # fmt: skip
            try:
                page = await self._client.request("list", call, what=f"{kind} {namespace}")
            except NotFound:  # the kind is not served in this cluster
                continue
            for item in page.get("items") or []:
                item.setdefault("apiVersion", api)
                item.setdefault("kind", kind)
                out.append(item)
        return out

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        api, kind, ns, name = object_key(obj)
        if kind == "Service":
            call = partial(self._client.core.create_namespaced_service, ns, dict(obj))
        else:
            call = partial(
                self._client.custom_objects.create_namespaced_custom_object,
                ISTIO_GROUP, api.split("/", 1)[1], ns, PLURALS[kind], dict(obj),
            )  # fmt: skip
        return await self._client.request("create", call, what=f"{kind} {ns}/{name}")

    async def patch(self, key: Key, body: Mapping[str, Any], *, status: bool = False) -> Any:
        """A merge patch (its body carries `metadata.resourceVersion` when it must not race)."""
        api, kind, ns, name = key
        if kind == "Service":
            fn = (
                self._client.core.patch_namespaced_service_status
                if status
                else self._client.core.patch_namespaced_service
            )
            call = partial(fn, name, ns, dict(body), _content_type=MERGE_PATCH)
        else:
            objects = self._client.custom_objects
            fn = (
                objects.patch_namespaced_custom_object_status
                if status
                else objects.patch_namespaced_custom_object
            )
            call = partial(
                fn, ISTIO_GROUP, api.split("/", 1)[1], ns, PLURALS[kind], name, dict(body),
                _content_type=MERGE_PATCH,
            )  # fmt: skip
        suffix = "/status" if status else ""
        return await self._client.request("patch", call, what=f"{kind} {ns}/{name}{suffix}")

    async def delete(self, key: Key) -> None:
        api, kind, ns, name = key
        if kind == "Service":
            call = partial(self._client.core.delete_namespaced_service, name, ns)
        else:
            call = partial(
                self._client.custom_objects.delete_namespaced_custom_object,
                ISTIO_GROUP, api.split("/", 1)[1], ns, PLURALS[kind], name,
            )  # fmt: skip
        try:
            await self._client.request("delete", call, what=f"{kind} {ns}/{name}")
        except NotFound:
            pass  # already gone: the plan's intent holds


def service_name(ap: AccessPoint) -> str | None:
    """The name of the AP's L4 Service, if its template has one."""
    service = ap.spec.traffic_template.service
    if service is None:
        return None
    return str((service.get("metadata") or {}).get("name") or ap.name)


@dataclass(frozen=True)
class Discovered:
    """An AP's VIPs as found, and the clusters of its scope that could not be read (with
    the error): their VIPs are unknown, not gone."""

    vips: tuple[UpstreamVip, ...] = ()
    unread: Mapping[str, str] = field(default_factory=dict)

    def held(self, ap: str) -> str | None:
        """Why deletions must wait, for a downstream of `ap` (None: discovery is whole)."""
        if not self.unread:
            return None
        where = "; ".join(f"{c}: {e}" for c, e in sorted(self.unread.items()))
        return f"upstream {ap}'s VIPs not all known ({where}); deletes wait for a whole discovery"


async def discover(
    aps: Collection[AccessPoint],
    objects: Mapping[str, ClusterObjects],
    clusters: Mapping[str, Cluster],
) -> dict[str, Discovered]:
    """Each AP's VIPs: its Service's ingress IPs in each cluster of its scope. One list of
    Services per (cluster, namespace), whatever the number of APs."""
    wanted: dict[tuple[str, str], list[AccessPoint]] = {}
    for ap in aps:
        if service_name(ap) is None:
            continue
        for c in ap.spec.scope.clusters:
            if c in objects and c in clusters:
                wanted.setdefault((c, ap.namespace), []).append(ap)
    found: dict[str, list[UpstreamVip]] = {ap.name: [] for ap in aps}
    unread: dict[str, dict[str, str]] = {ap.name: {} for ap in aps}
    for (cluster_name, namespace), here in sorted(wanted.items(), key=lambda kv: kv[0]):
        cluster = clusters[cluster_name]
        try:
            services = await objects[cluster_name].services(namespace)
        except KubeError as e:
            log.warning(
                "accesspoint.discovery_failed",
                cluster=cluster_name,
                namespace=namespace,
                error=str(e),
            )
            for ap in here:
                unread[ap.name][cluster_name] = str(e)
            continue
        for ap in here:
            service = services.get(str(service_name(ap)))
            status = (service or {}).get("status") or {}
            for entry in (status.get("loadBalancer") or {}).get("ingress") or []:
                ip = entry.get("ip") if isinstance(entry, Mapping) else None
                if ip:
                    found[ap.name].append(
                        UpstreamVip(cluster.name, cluster.region, cluster.locality, str(ip))
                    )
    return {ap.name: Discovered(tuple(found[ap.name]), unread[ap.name]) for ap in aps}


def cluster_of(name: str, inventory: Inventory) -> Cluster:
    """The estate's cluster `name`, with its region and that region's locality."""
    region = cluster_regions(inventory)[name]
    return Cluster(name, region, inventory.regions[region].locality)


@dataclass(frozen=True)
class Catalog:
    """The APs of one pass, looked up by name once (not once per AP rendered)."""

    by_name: Mapping[str, AccessPoint]
    services: Mapping[str, str]  # AP name -> the gtm service its WLEs follow (`spec.gtm`)

    @classmethod
    def of(cls, aps: Collection[AccessPoint]) -> Catalog:
        return cls(
            {a.name: a for a in aps}, {a.name: a.name for a in aps if a.spec.gtm is not None}
        )


def default_weights(ap: AccessPoint, catalog: Catalog, inventory: Inventory) -> tuple[int, int]:
    """The default upstream split: the upstream's gtm policy (else `default`), never 0."""
    policy = "default"
    for u in ap.spec.upstreams:
        up = catalog.by_name.get(u.access_point)
        if up is not None and up.spec.gtm is not None:
            policy = up.spec.gtm.policy
            break
    found = next((p for p in inventory.config.policies if p.name == policy), None)
    if found is None:
        return 98, 1
    local, remote = split_of(found, len(inventory.regions))
    return max(1, local), max(1, remote)


async def open_objects(
    inventory: Inventory, stack: AsyncExitStack, names: Collection[str] | None = None
) -> dict[str, ClusterObjects]:
    """A client for each of the estate's clusters (`names`: only these), closed by `stack`."""
    out: dict[str, ClusterObjects] = {}
    for c in inventory.config.kubernetes.clusters:
        if names is not None and c.name not in names:
            continue
        client = Client(
            await load_configuration(c),
            timeout=c.timeout,
            retry=retry_settings(c.retry),
            qps=c.qps,
            burst=c.burst,
            concurrency=c.concurrency,
            context={"cluster": c.name},
        )
        await stack.enter_async_context(client)
        out[c.name] = ClusterObjects(client, c.name)
    return out


@dataclass(frozen=True)
class Step:
    """One AP in one cluster: what is rendered, what the cluster holds, and the plan."""

    rendered: Rendered
    current: list[dict[str, Any]]
    plan: ClusterPlan


async def plan_step(
    ap: AccessPoint,
    catalog: Catalog,
    cluster: str,
    found: Mapping[str, Discovered],
    objects: ClusterObjects,
    inventory: Inventory,
    now: datetime | None = None,
    snapshot: Snapshot | None = None,
) -> Step:
    """Render `ap` for `cluster` with its upstreams' VIPs as `found`, read what the cluster
    holds, plan. While an upstream is not wholly discovered, deletes are held."""
    upstreams = {u.access_point: found.get(u.access_point, Discovered()) for u in ap.spec.upstreams}
    vips = {name: list(d.vips) for name, d in upstreams.items()}
    held = [why for name, d in upstreams.items() if (why := d.held(name))]
    rendered = render(
        ap,
        cluster_of(cluster, inventory),
        vips,
        default_weights(ap, catalog, inventory),
        services=catalog.services,
    )
    keys = [object_key(o) for o in rendered.objects]
    current = await current_objects(objects, ap, keys, snapshot)
    dns = inventory.config.dns
    plan = plan_cluster(
        ap.name,
        rendered,
        current,
        overwrite=ap.spec.conflict_resolution == "Overwrite",
        hold_deletes="; ".join(held) or None,
        withdraw_after=dns.ttl + dns.exit_margin,  # what clients may still hold of the VIP
        now=now,
    )
    return Step(rendered, current, plan)


class Snapshot:
    """What one cluster holds of the AP kinds, and its Secrets, in some namespaces: one list
    per kind and namespace for a whole pass over every AP, in place of several requests per
    AP. Outside those namespaces it reads through `objects`."""

    def __init__(
        self,
        objects: ClusterObjects,
        namespaces: Collection[str],
        items: Sequence[dict[str, Any]],
        secrets: Mapping[tuple[str, str], dict[str, Any]],
    ) -> None:
        self.objects = objects
        self.namespaces = frozenset(namespaces)
        self.items = {object_key(o): o for o in items}
        self._secrets = dict(secrets)
        self._owned: dict[str, list[dict[str, Any]]] = {}  # AP name -> its labelled objects
        for obj in self.items.values():
            owner = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_ACCESSPOINT)
            if owner is not None:
                self._owned.setdefault(str(owner), []).append(obj)

    @classmethod
    async def take(cls, objects: ClusterObjects, namespaces: Collection[str]) -> Snapshot:
        items: list[dict[str, Any]] = []
        secrets: dict[tuple[str, str], dict[str, Any]] = {}
        for ns in sorted(namespaces):
            items += await objects.labelled(ns, None)
            secrets |= {(ns, name): s for name, s in (await objects.secrets(ns)).items()}
        return cls(objects, namespaces, items, secrets)

    def labelled(self, ap: str | None = None) -> list[dict[str, Any]]:
        """The objects labelled as `ap`'s (None: as any AP's)."""
        if ap is not None:
            return list(self._owned.get(ap, ()))
        return [obj for owned in self._owned.values() for obj in owned]

    async def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        if namespace in self.namespaces:
            return self._secrets.get((namespace, name))
        return await self.objects.secret(namespace, name)


async def current_objects(
    objects: ClusterObjects,
    ap: AccessPoint,
    keys: Sequence[Key],
    snapshot: Snapshot | None = None,
) -> list[dict[str, Any]]:
    """What the cluster holds under `keys` and every object labelled as `ap`'s (read from
    `snapshot` when it covers their namespaces)."""
    namespaces = {k[2] for k in keys} | {ap.namespace}
    if snapshot is not None and namespaces <= snapshot.namespaces:
        held = {
            object_key(o): o
            for o in snapshot.labelled(ap.name)
            if (o.get("metadata") or {}).get("namespace") in namespaces
        }
        held |= {k: snapshot.items[k] for k in keys if k in snapshot.items}
        return list(held.values())
    have: dict[Key, dict[str, Any]] = {}
    for ns in sorted(namespaces):
        for obj in await objects.labelled(ns, f"{LABEL_ACCESSPOINT}={ap.name}"):
            have[object_key(obj)] = obj
    for key in keys:
        if key not in have:
            obj = await objects.get(key)
            if obj is not None:
                obj.setdefault("apiVersion", key[0])
                obj.setdefault("kind", key[1])
                have[key] = obj
    return list(have.values())


async def apply_plan(
    objects: ClusterObjects,
    plan: ClusterPlan,
    current: Sequence[Mapping[str, Any]],
    healthy: Healthy,
    *,
    weight: Callable[[Mapping[str, Any]], int | None] = lambda obj: None,
    fence: WriteFence | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Applied:
    """`healthy` and `weight`: a new WorkloadEntry's `Healthy` condition and weight (None:
    the rendered one); `fence`: asked before every write; a lost lease stops the apply
    (`WriteStopped` goes to the caller: what was not written stays as it was)."""
    result = Applied(plan.cluster)
    if plan.problems:
        result.failed += [f"refused: {p}" for p in plan.problems]
        return result
    have = {object_key(o): o for o in current}
    order = {
        "create": 0, "restore": 1, "update": 2, "withdraw": 3, "delete": 4, "conflict": 5,
        "hold": 6, "wait": 7,
    }  # fmt: skip
    for change in sorted(plan.changes, key=lambda c: order[c.action]):
        line = change.line()
        try:
            if change.action == "conflict":
                result.conflicts.append(line)
                continue
            if change.action == "hold":
                result.held.append(line)
                continue
            if change.action == "wait":
                result.waiting.append(line)
                continue
            if fence is not None:
                fence.holds()
            if change.action == "create":
                assert change.object is not None
                body = dict(change.object)
                if change.key[1] == "WorkloadEntry" and (w := weight(body)) is not None:
                    body["spec"] = {**(body.get("spec") or {}), "weight": w}
                created = await objects.create(body)
                if change.key[1] == "WorkloadEntry":
                    await _set_healthy(objects, change.key, created, healthy(created), now())
            elif change.action == "update":
                assert change.object is not None
                await objects.patch(change.key, _owned(change.object, have.get(change.key)))
            elif change.action == "withdraw":  # out of traffic first, then stamped
                old = have[change.key]
                marked = await _set_healthy(objects, change.key, old, (False, VIP_WITHDRAWN), now())
                # to the microsecond: the wait before the delete counts from it
                stamp = {"annotations": {WITHDRAWN_AT: now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}
                await objects.patch(change.key, {"metadata": {**stamp, **_version(marked)}})
            elif change.action == "restore":  # the VIP is back: unstamped, in as if new
                assert change.object is not None
                body = _owned(change.object, have.get(change.key))
                meta = body.setdefault("metadata", {})
                meta["annotations"] = {**(meta.get("annotations") or {}), WITHDRAWN_AT: None}
                restored = await objects.patch(change.key, body)
                await _set_healthy(objects, change.key, restored, healthy(restored), now())
            elif change.action == "delete":
                await objects.delete(change.key)
            else:
                raise ValueError(f"{line}: not a change apply_plan knows")
            result.done.append(line)
        except KubeError as e:
            result.failed.append(f"{line}: {e}")
            log.warning(
                "accesspoint.change_failed", cluster=plan.cluster, change=line, error=str(e)
            )
    return result


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _version(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The resourceVersion precondition of a write over `obj` as read."""
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return {"resourceVersion": version} if version else {}


async def _set_healthy(
    objects: ClusterObjects,
    key: Key,
    obj: Mapping[str, Any],
    health: tuple[bool, str],
    at: datetime,
) -> Any:
    """Write the WLE's `Healthy` condition through `/status`, over `obj` as read."""
    up, message = health
    stamp = _stamp(at)
    condition: dict[str, Any] = {
        "type": "Healthy",
        "status": "True" if up else "False",
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }
    if not up:
        condition |= {"reason": "unhealthy", "message": message}
    body = {"metadata": _version(obj), "status": {"conditions": [condition]}}
    return await objects.patch(key, body, status=True)


def _owned(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any]:
    """The update's body: what gtm renders, without the reconciler's fields, with the
    resourceVersion it read (a concurrent writer makes it a 409, not a lost write)."""
    body = {k: v for k, v in obj.items() if k not in ("status",)}
    if obj.get("kind") == "WorkloadEntry":
        body["spec"] = {k: v for k, v in (obj.get("spec") or {}).items() if k != "weight"}
    version = ((old or {}).get("metadata") or {}).get("resourceVersion")
    if version:
        body["metadata"] = {**(body.get("metadata") or {}), "resourceVersion": version}
    return body
