"""AccessPoints in a drill: the documents its steps apply, what those steps do, what a sample sees.

    docs, problems = accesspoint_rules(drill, path, inventory, estate_data)   # load time
    driver = ApDriver(estate, docs, port_offset)    # accesspoint_apply / _delete, l4_withdraw
    observer = ApObserver(docs, inventory, estate.cluster_urls)   # in every sample

Load time: each `accesspoint_apply` step's documents (its `file`, relative to the
drill file, or its inline `accesspoints`) are read with the estate config's loader
and checked as `gtm validate` checks an AccessPoint file (the clusters of its scope
must be the estate's), and against the drill's estate: it has an `accesspoints`
section, the AP's namespace is one of `accesspoints.namespaces` (else no member
would ever see it), its gtm policy is one of the estate's. `accesspoint_delete`
and `l4_withdraw` must name an AP an earlier step applied; `l4_withdraw` a cluster
of the estate in the AP's scope, and an AP with a Service. A `region_exit` (or any
action) may name the service an AP with `spec.gtm` onboards.

Run time (`ApDriver`): the documents are created in the home cluster
(`accesspoints.cluster` of the members' configs), or replaced there on the
resourceVersion read when they exist, through `kube.Client` as `kubectl apply`
would; the ports of each AP's Service move by the offset the drill moves the
estate's VIPs by, into the drill's own port block (the simulated L4 controllers
answer on every VIP they announce: two drills must not meet on one). A delete
goes through the same API; a withdraw through the region's simulated L4
controller (`chaos.estate.l4`: the Service's ingress cleared, its listeners closed).

Observation (`ApObserver`): in every sample, each cluster's objects as the
simulator stores them (`/_sim/objects`, which API faults do not touch): the
objects of the AccessPoint kinds in the APs' namespaces as `KubeObject`s, and the
home cluster's AccessPoints with their status. An AP with `spec.gtm` becomes a
service of the drill's facts as soon as its Service shows a VIP, as gtm's
onboarding makes it one (`<AP>/<region>/<ip>:<port>`): from then on the sampler
asks DNS for its FQDN, and the WorkloadEntries other APs make for it are mapped
to its VIPs. VIPs once seen stay in the facts (a withdrawn one is still named).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from accesspoints import (
    LABEL_ACCESSPOINT,
    LABEL_MANAGED,
    LABEL_UPSTREAM,
    AccessPoint,
    AccessPointError,
    parse_accesspoint,
)
from chaos.drills.facts import policy_facts
from chaos.drills.samples import (
    ApState,
    EstateFacts,
    KubeObject,
    PolicyFacts,
    Sample,
    ServiceFacts,
)
from chaos.drills.steps import (
    AccesspointApply,
    AccesspointDelete,
    L4Withdraw,
    Step,
)
from chaos.estate import SimulatedEstate
from chaos.estate.clusters import client_configuration
from gtm.config import ConfigError, Inventory, load
from gtm.config.accesspoints import cluster_regions, read_accesspoints
from gtm.config.errors import FieldPath
from gtm.config.inventory import _policy as build_policy
from gtm.config.source import read
from gtm.service.accesspoint_apply import KINDS, service_name
from kube import Client, NotFound

GROUP, VERSION, PLURAL = "gtm.io", "v1alpha1", "accesspoints"
OBJECT_KINDS = frozenset(kind for _, kind in KINDS)  # Service and the Istio kinds an AP renders


@dataclass(frozen=True)
class ApDoc:
    """One AccessPoint a step applies: the document as written, and its checked value."""

    doc: Mapping[str, Any]
    ap: AccessPoint

    @property
    def key(self) -> str:
        return f"{self.ap.namespace}/{self.ap.name}"


ApDocs = Mapping[str, tuple[ApDoc, ...]]  # step id -> the APs it applies


def key_of(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


# --- load time ------------------------------------------------------------------------------


def _documents(data: Any) -> list[Any]:
    if isinstance(data, Mapping) and data.get("kind") == "List":
        return list(data.get("items") or [])
    return [data]


def _from_file(
    step: AccesspointApply, base: Path, inventory: Inventory
) -> tuple[list[ApDoc], list[str]]:
    path = Path(step.file or "")
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        why = "no such file" if not path.exists() else "not a file"
        return [], [f"cannot read {step.file} ({path}): {why}"]
    try:
        found = read_accesspoints(path, inventory)
        raw = _documents(read(path).data)
    except ConfigError as e:
        return [], [str(p) for p in e.problems]
    return [ApDoc(dict(d), ap) for d, ap in zip(raw, found, strict=True)], []


def _inline(
    step: AccesspointApply, inventory: Inventory
) -> tuple[list[ApDoc], list[tuple[FieldPath, str]]]:
    out: list[ApDoc] = []
    problems: list[tuple[FieldPath, str]] = []
    known = cluster_regions(inventory)
    for j, doc in enumerate(step.accesspoints or []):
        try:
            ap = parse_accesspoint(doc)
        except AccessPointError as e:
            problems += [(("accesspoints", j, *p), m) for p, m in e.problems]
            continue
        for k, c in enumerate(ap.spec.scope.clusters):
            if c not in known:
                where = ("accesspoints", j, "spec", "scope", "clusters", k)
                problems.append((where, f"{c!r} is not a cluster of the estate ({_list(known)})"))
        out.append(ApDoc(dict(doc), ap))
    return out, problems


def accesspoint_rules(
    steps: Sequence[Step],
    when: Callable[[Step, bool], float],
    drill_file: Path,
    inventory: Inventory,
    estate_data: Mapping[str, Any],
) -> tuple[dict[str, tuple[ApDoc, ...]], list[tuple[FieldPath, str]]]:
    """The documents of each `accesspoint_apply` step, and every problem of the AP steps
    (field paths from `timeline`)."""
    docs: dict[str, tuple[ApDoc, ...]] = {}
    problems: list[tuple[FieldPath, str]] = []
    settings = inventory.config.accesspoints
    has_section = isinstance(estate_data.get("accesspoints"), Mapping)
    policies = {p.name for p in inventory.config.policies}
    clusters = cluster_regions(inventory)
    for i, s in enumerate(steps):
        if not isinstance(s, AccesspointApply):
            continue
        at: FieldPath = ("timeline", i)
        if not has_section:
            problems.append(
                (
                    (*at, "do"),
                    "the estate has no `accesspoints` section (where the AccessPoints live):"
                    " set estate.overrides.accesspoints.namespaces",
                )
            )
        if s.file is not None:
            found, said = _from_file(s, drill_file.parent, inventory)
            problems += [((*at, "file"), p) for p in said]
        else:
            found, inline = _inline(s, inventory)
            problems += [((*at, *p), m) for p, m in inline]
        for j, d in enumerate(found):
            ap = d.ap
            where: FieldPath = (*at, "file") if s.file is not None else (*at, "accesspoints", j)
            if has_section and ap.namespace not in settings.namespaces:
                problems.append(
                    (
                        where,
                        f"AccessPoint {d.key}: namespace {ap.namespace!r} is not one of the"
                        f" estate's accesspoints.namespaces ({_list(settings.namespaces)}):"
                        " no member would see it",
                    )
                )
            if ap.spec.gtm is not None and ap.spec.gtm.policy not in policies:
                problems.append(
                    (
                        where,
                        f"AccessPoint {d.key}: spec.gtm.policy {ap.spec.gtm.policy!r} is not a"
                        f" policy of the estate ({_list(policies)})",
                    )
                )
        docs[s.id] = tuple(found)
    for i, s in enumerate(steps):
        if not isinstance(s, AccesspointDelete | L4Withdraw):
            continue
        at = ("timeline", i)
        earlier = [
            d
            for j, t in enumerate(steps)
            if isinstance(t, AccesspointApply)
            and j != i
            and all(when(t, short) <= when(s, short) for short in (False, True))
            for d in docs.get(t.id, ())
        ]
        named = [d for d in earlier if d.ap.name == s.accesspoint]
        if s.namespace is not None:
            named = [d for d in named if d.ap.namespace == s.namespace]
        if not named:
            applied = _list({d.key for d in earlier}) or "none"
            problems.append(
                (
                    (*at, "accesspoint"),
                    f"no AccessPoint {s.accesspoint!r}"
                    + (f" in namespace {s.namespace!r}" if s.namespace else "")
                    + f" is applied by an earlier step (applied: {applied})",
                )
            )
            continue
        if len({d.key for d in named}) > 1:
            problems.append(
                (
                    (*at, "namespace"),
                    f"AccessPoint {s.accesspoint!r} is applied in several namespaces"
                    f" ({_list({d.ap.namespace for d in named})}): name one",
                )
            )
        if isinstance(s, L4Withdraw):
            ap = named[-1].ap
            if s.cluster not in clusters:
                problems.append(
                    ((*at, "cluster"), f"no cluster {s.cluster!r} (clusters: {_list(clusters)})")
                )
            elif s.cluster not in ap.spec.scope.clusters:
                problems.append(
                    (
                        (*at, "cluster"),
                        f"{s.cluster!r} is not in the scope of AccessPoint {ap.name}"
                        f" ({_list(ap.spec.scope.clusters)})",
                    )
                )
            if service_name(ap) is None:
                problems.append(
                    ((*at, "accesspoint"), f"AccessPoint {ap.name} has no Service: no VIP")
                )
    return docs, problems


def gtm_services(docs: ApDocs) -> set[str]:
    """The services the drill's APs onboard (their names)."""
    return {d.ap.name for found in docs.values() for d in found if d.ap.spec.gtm is not None}


def every_ap(docs: ApDocs) -> dict[str, AccessPoint]:
    """namespace/name -> the AP as last applied by a step (in file order)."""
    return {d.key: d.ap for found in docs.values() for d in found}


def named(docs: ApDocs, name: str, namespace: str | None = None) -> AccessPoint | None:
    """The AP of that name (and namespace) the drill applies; `name` may be `ns/name`."""
    if "/" in name:
        namespace, name = name.split("/", 1)
    for ap in every_ap(docs).values():
        if ap.name == name and (namespace is None or ap.namespace == namespace):
            return ap
    return None


def step_accesspoints(step: Step, docs: ApDocs) -> list[AccessPoint]:
    """The APs a step applies, deletes or withdraws a VIP of."""
    if isinstance(step, AccesspointApply):
        return [d.ap for d in docs.get(step.id, ())]
    if isinstance(step, AccesspointDelete | L4Withdraw):
        ap = named(docs, step.accesspoint, step.namespace)
        return [] if ap is None else [ap]
    return []


def _list(values: Iterable[str]) -> str:
    return ", ".join(sorted(values))


# --- run time ---------------------------------------------------------------------------------


def move_ports(doc: Mapping[str, Any], offset: int) -> dict[str, Any]:
    """A copy of an AP document whose Service ports are moved by `offset`."""
    out = copy.deepcopy(dict(doc))
    if not offset:
        return out
    template = (out.get("spec") or {}).get("trafficTemplate") or {}
    spec = (template.get("service") or {}).get("spec") or {}
    for port in spec.get("ports") or []:
        if isinstance(port, dict) and isinstance(port.get("port"), int):
            port["port"] += offset
    return out


class ApDriver:
    """What the AP steps do to a simulated estate (see the module)."""

    def __init__(self, estate: SimulatedEstate, docs: ApDocs, port_offset: int = 0) -> None:
        self.estate = estate
        self.docs = docs
        self.port_offset = port_offset
        self._home: tuple[str, Client] | None = None
        self._stack = AsyncExitStack()

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._home = None

    async def home(self) -> tuple[str, Client]:
        """The home cluster's name and a client for it (opened once)."""
        if self._home is None:
            member = next(iter(self.estate.member_configs.values()))
            cluster = load(member).config.accesspoints.cluster
            if cluster is None:
                raise RuntimeError("the members have no accesspoints.cluster: no home cluster")
            configuration = await client_configuration(self.estate.kubeconfig, cluster)
            client = await self._stack.enter_async_context(Client(configuration, timeout=10.0))
            self._home = (cluster, client)
        return self._home

    async def apply(self, step: AccesspointApply) -> str:
        cluster, client = await self.home()
        api = client.custom_objects
        done = []
        for d in self.docs.get(step.id, ()):
            ns, name = d.ap.namespace, d.ap.name
            body = move_ports(d.doc, self.port_offset)
            body.setdefault("metadata", {})["namespace"] = ns
            what = f"AccessPoint {ns}/{name}"
            try:
                old = await client.request(
                    "get",
                    partial(api.get_namespaced_custom_object, GROUP, VERSION, ns, PLURAL, name),
                    what=what,
                )
            except NotFound:
                old = None
            if old is None:
                create = partial(
                    api.create_namespaced_custom_object, GROUP, VERSION, ns, PLURAL, body
                )
                await client.request("create", create, what=what)
                done.append(f"{ns}/{name} created")
                continue
            body["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            put = partial(
                api.replace_namespaced_custom_object, GROUP, VERSION, ns, PLURAL, name, body
            )
            await client.request("replace", put, what=what)
            done.append(f"{ns}/{name} replaced")
        moved = f" (Service ports +{self.port_offset})" if self.port_offset else ""
        return f"in {cluster}: {', '.join(done)}{moved}"

    async def delete(self, step: AccesspointDelete) -> str:
        ap = self._ap(step)
        cluster, client = await self.home()
        call = partial(
            client.custom_objects.delete_namespaced_custom_object,
            GROUP, VERSION, ap.namespace, PLURAL, ap.name,
        )  # fmt: skip
        await client.request("delete", call, what=f"AccessPoint {ap.namespace}/{ap.name}")
        return f"AccessPoint {ap.namespace}/{ap.name} deleted from {cluster}"

    async def withdraw(self, step: L4Withdraw) -> tuple[str, Callable[[], Awaitable[str]] | None]:
        """Withdraw the VIP; and what gives it back (after `restore_after`), if asked."""
        ap = self._ap(step)
        service = service_name(ap) or ap.name
        controller = self.estate.l4(step.cluster)
        had = controller.vips().get((ap.namespace, service))
        if had is None:
            raise RuntimeError(
                f"{step.cluster}'s L4 controller gave Service {ap.namespace}/{service} no VIP"
            )
        await controller.withdraw(ap.namespace, service)
        detail = f"VIP {had} of Service {ap.namespace}/{service} withdrawn in {step.cluster}"
        if step.restore_after is None:
            return detail, None

        async def restore() -> str:
            await controller.restore(ap.namespace, service)
            return f"VIP {had} of Service {ap.namespace}/{service} back in {step.cluster}"

        return detail, restore

    def _ap(self, step: AccesspointDelete | L4Withdraw) -> AccessPoint:
        ap = named(self.docs, step.accesspoint, step.namespace)
        if ap is None:  # refused when the drill loaded
            raise RuntimeError(f"no AccessPoint {step.accesspoint} in the drill")
        return ap


# --- observation ------------------------------------------------------------------------------

Get = Callable[[str], Awaitable[Any]]


def kube_object(o: Mapping[str, Any]) -> KubeObject:
    meta = o.get("metadata") or {}
    labels = meta.get("labels") or {}
    spec = o.get("spec") or {}
    status = o.get("status") or {}
    kind = str(o.get("kind", ""))
    ingress: tuple[str, ...] = ()
    port = address = message = None
    healthy: bool | None = None
    if kind == "Service":
        entries = (status.get("loadBalancer") or {}).get("ingress") or []
        ingress = tuple(str(e["ip"]) for e in entries if isinstance(e, Mapping) and e.get("ip"))
        ports = spec.get("ports") or []
        first = ports[0].get("port") if ports and isinstance(ports[0], Mapping) else None
        port = first if isinstance(first, int) else None
    elif kind == "WorkloadEntry":
        address = str(spec.get("address", "")) or None
        for c in status.get("conditions") or []:
            if isinstance(c, Mapping) and c.get("type") == "Healthy":
                healthy = c.get("status") == "True"
                message = c.get("message")
    owner = labels.get(LABEL_ACCESSPOINT)
    upstream = labels.get(LABEL_UPSTREAM)
    return KubeObject(
        digest=digest(kind, meta, spec),
        kind=kind,
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        owner=None if owner is None else str(owner),
        managed=labels.get(LABEL_MANAGED) == "true",
        upstream=None if upstream is None else str(upstream),
        ingress=ingress,
        port=port,
        address=address,
        healthy=healthy,
        message=None if message is None else str(message),
    )


def digest(kind: str, meta: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    """What an object holds that a writer changes on purpose: its spec (a WorkloadEntry's
    weight aside: the reconciler's), labels and annotations; not its status."""
    if kind == "WorkloadEntry":
        spec = {k: v for k, v in spec.items() if k != "weight"}
    content = {"spec": spec, "labels": meta.get("labels"), "annotations": meta.get("annotations")}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ap_vips(sample: Sample, ap: AccessPoint) -> dict[str, tuple[str, ...]]:
    """Per cluster of the AP's scope read in this sample, the VIPs its Service shows."""
    service = service_name(ap)
    out: dict[str, tuple[str, ...]] = {}
    for cluster in ap.spec.scope.clusters:
        objects = sample.objects.get(cluster)
        if objects is None:
            continue
        out[cluster] = next(
            (
                o.ingress
                for o in objects
                if o.kind == "Service" and o.namespace == ap.namespace and o.name == service
            ),
            (),
        )
    return out


class ApObserver:
    """Looks at the AccessPoints of a drill in every sample (see the module)."""

    def __init__(
        self,
        docs: ApDocs,
        inventory: Inventory,
        urls: Mapping[str, str],
        home: str | None = None,
    ) -> None:
        self.aps = every_ap(docs)
        self.urls = dict(urls)
        # as the members' configs say: the estate's, else the first region's (`write_members`)
        self.home = home or inventory.config.accesspoints.cluster or next(iter(self.urls), "")
        self.namespaces = set(inventory.config.accesspoints.namespaces) | {
            ap.namespace for ap in self.aps.values()
        }
        self.regions = cluster_regions(inventory)
        regions = inventory.region_names
        # every policy of the estate, one no service of the file uses too (gtm's own builder)
        self.policies: dict[str, PolicyFacts] = {
            p.name: policy_facts(build_policy(p, regions)) for p in inventory.config.policies
        }

    async def look(self, get: Get) -> tuple[dict[str, tuple[KubeObject, ...]], dict[str, ApState]]:
        """Each cluster's objects in the AP namespaces (a cluster that did not answer is
        left out), and the home cluster's AccessPoints."""
        names = list(self.urls)
        dumps = await asyncio.gather(
            *(get(self.urls[c] + "/_sim/objects") for c in names), return_exceptions=True
        )
        objects: dict[str, tuple[KubeObject, ...]] = {}
        accesspoints: dict[str, ApState] = {}
        for cluster, dump in zip(names, dumps, strict=True):
            if isinstance(dump, BaseException) or not isinstance(dump, Mapping):
                continue
            items = [o for o in dump.get("items") or [] if isinstance(o, Mapping)]
            objects[cluster] = tuple(
                sorted(
                    (
                        kube_object(o)
                        for o in items
                        if o.get("kind") in OBJECT_KINDS
                        and (o.get("metadata") or {}).get("namespace") in self.namespaces
                    ),
                    key=lambda k: (k.kind, k.namespace, k.name),
                )
            )
            if cluster == self.home:
                for o in items:
                    if o.get("kind") != "AccessPoint":
                        continue
                    meta = o.get("metadata") or {}
                    ns, name = str(meta.get("namespace")), str(meta.get("name"))
                    generation = meta.get("generation")
                    accesspoints[key_of(ns, name)] = ApState(
                        ns,
                        name,
                        generation if isinstance(generation, int) else None,
                        dict(o.get("status") or {}),
                    )
        return objects, accesspoints

    def facts(self, facts: EstateFacts, objects: Mapping[str, Sequence[KubeObject]]) -> EstateFacts:
        """`facts` with each gtm AP's VIPs as its Service shows them (added, never removed)."""
        services = dict(facts.services)
        changed = False
        for key, ap in self.aps.items():
            gtm = ap.spec.gtm
            policy = None if gtm is None else self.policies.get(gtm.policy)
            if gtm is None or policy is None:
                continue
            known = services.get(ap.name)
            if known is not None and known.accesspoint != key:
                continue  # a service of the estate file by that name: gtm refuses the AP's
            vips = dict(known.vips) if known else {}
            addresses = dict(known.addresses) if known else {}
            wanted = service_name(ap)
            for cluster in ap.spec.scope.clusters:
                region = self.regions.get(cluster)
                for o in objects.get(cluster, ()):
                    if region is None or o.port is None:
                        continue
                    if o.kind != "Service" or o.namespace != ap.namespace or o.name != wanted:
                        continue
                    for ip in o.ingress:
                        vip = f"{ap.name}/{region}/{ip}:{o.port}"
                        if vip not in vips:
                            vips[vip] = region
                            addresses[ip] = vip
                            changed = True
            if vips and known is None:
                changed = True
            if vips:
                services[ap.name] = ServiceFacts(gtm.fqdn, policy, vips, addresses, key)
        return replace(facts, services=services) if changed else facts
