"""One AccessPoint rendered for one cluster: its template, its overrides, its upstreams.

    rendered = render(ap, Cluster("dc2-k8s", "dc2", "region02/az01"), vips, (98, 1))

- The template's objects (Service, Gateway, VirtualService, DestinationRule) get
  their kind's apiVersion, the AP's name and namespace unless they name their own,
  and the ownership labels (`gtm.io/accesspoint`, `gtm.io/managed`); then the
  overrides that name this cluster apply (`patches`).
- For each upstream: one WorkloadEntry per VIP of the upstream in every cluster of
  its scope (`address` the VIP, `locality` that cluster's region, `weight` by the
  split seen from this cluster's region, the health-checks annotation, labels that
  the reconciler and the upstream's ServiceEntry select on), and one ServiceEntry
  (`MESH_INTERNAL`, `STATIC`, one host: `upstream_host`) that selects them.
- A VirtualService destination written `host: upstream:NAME` becomes that host.
- `revision` is a hash of the rendered set: the same inputs give the same revision.

Problems (an override that fails, an unknown upstream in a route) are collected:
a rendered set with problems must not be applied in that cluster.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from accesspoints.model import AccessPoint, Upstream
from accesspoints.patches import PatchError, apply_overrides
from accesspoints.weights import split_weights

LABEL_ACCESSPOINT = "gtm.io/accesspoint"
LABEL_MANAGED = "gtm.io/managed"
LABEL_UPSTREAM = "gtm.io/upstream"
LABEL_SERVICE = "gtm.io/service"  # the gtm service whose table rows weigh a WLE
HEALTH_CHECKS = "proxy.istio.io/health-checks-enabled"
UPSTREAM_PREFIX = "upstream:"
HOST_ZONE = "ap.gtm.internal"  # upstream hosts: <upstream>.<namespace>.ap.gtm.internal

ISTIO = "networking.istio.io/v1"
KINDS: Mapping[str, tuple[str, str]] = {  # template key -> (apiVersion, kind)
    "service": ("v1", "Service"),
    "gateway": (ISTIO, "Gateway"),
    "virtualService": (ISTIO, "VirtualService"),
    "destinationRule": (ISTIO, "DestinationRule"),
}


@dataclass(frozen=True, slots=True)
class Cluster:
    name: str
    region: str
    locality: str  # region/zone, as WLEs carry it


@dataclass(frozen=True, slots=True)
class UpstreamVip:
    """One VIP of an upstream AP, discovered from its Service's status in one cluster."""

    cluster: str
    region: str
    locality: str
    ip: str


@dataclass(frozen=True)
class Rendered:
    cluster: str
    objects: tuple[dict[str, Any], ...]
    revision: str
    problems: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = field(default=())  # upstreams with no VIP discovered yet

    def by_key(self) -> dict[tuple[str, str, str, str], dict[str, Any]]:
        return {object_key(o): o for o in self.objects}


def object_key(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (
        str(obj.get("apiVersion")),
        str(obj.get("kind")),
        meta.get("namespace", ""),
        meta["name"],
    )


def upstream_host(upstream: str, namespace: str) -> str:
    """The ServiceEntry host a downstream reaches an upstream AP by."""
    return f"{upstream}.{namespace}.{HOST_ZONE}"


def render(
    ap: AccessPoint,
    cluster: Cluster,
    vips: Mapping[str, Sequence[UpstreamVip]],
    default_weights: tuple[int, int] = (98, 1),
    *,
    services: Mapping[str, str] | None = None,
) -> Rendered:
    """`vips`: upstream AP name -> its discovered VIPs; `services`: upstream name -> the gtm
    service name its WLEs follow (an upstream with `spec.gtm`)."""
    problems: list[str] = []
    labels = {LABEL_ACCESSPOINT: ap.name, LABEL_MANAGED: "true"}
    document = {
        key: _template_object(ap, key, obj, labels)
        for key, obj in ap.spec.traffic_template.objects().items()
    }
    mine = [(i, o) for i, o in enumerate(ap.spec.overrides) if cluster.name in o.clusters]
    try:
        document = apply_overrides(document, mine)
    except PatchError as e:
        problems.append(str(e))
    objects: list[dict[str, Any]] = []
    for key in KINDS:
        obj = document.get(key)
        if obj is None:
            continue
        if key == "virtualService":
            problems += _resolve_routes(ap, obj)
        objects.append(obj)
    unresolved = []
    for upstream in ap.spec.upstreams:
        found = list(vips.get(upstream.access_point, ()))
        if not found:
            unresolved.append(upstream.access_point)
        weights = upstream.weights
        local, remote = (weights.local, weights.remote) if weights else default_weights
        objects += _upstream_objects(ap, upstream, cluster, found, local, remote, services or {})
    canonical = json.dumps(objects, sort_keys=True, separators=(",", ":"))
    revision = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    return Rendered(cluster.name, tuple(objects), revision, tuple(problems), tuple(unresolved))


def _template_object(
    ap: AccessPoint, key: str, obj: Mapping[str, Any], labels: Mapping[str, str]
) -> dict[str, Any]:
    api_version, kind = KINDS[key]
    given = json.loads(json.dumps(dict(obj)))  # a deep copy of plain JSON values
    meta = {"name": ap.name, "namespace": ap.namespace, **(given.pop("metadata", None) or {})}
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    head = {"apiVersion": given.pop("apiVersion", api_version), "kind": given.pop("kind", kind)}
    return {**head, "metadata": meta, **given}


def _resolve_routes(ap: AccessPoint, vs: dict[str, Any]) -> list[str]:
    """Replace `host: upstream:NAME` in every route destination with the upstream's host."""
    known = {u.access_point: ap.upstream_namespace(u) for u in ap.spec.upstreams}
    problems = []
    for protocol in ("http", "tls", "tcp"):
        for i, rule in enumerate((vs.get("spec") or {}).get(protocol) or ()):
            for j, route in enumerate(rule.get("route") or ()):
                dest = route.get("destination") or {}
                host = dest.get("host")
                if not isinstance(host, str) or not host.startswith(UPSTREAM_PREFIX):
                    continue
                name = host[len(UPSTREAM_PREFIX) :]
                if name not in known:
                    problems.append(
                        f"virtualService.spec.{protocol}[{i}].route[{j}]: {host!r} names no"
                        f" upstream of {ap.name} (upstreams: {', '.join(known) or 'none'})"
                    )
                    continue
                dest["host"] = upstream_host(name, known[name])
    return problems


def _upstream_objects(
    ap: AccessPoint,
    upstream: Upstream,
    cluster: Cluster,
    vips: Sequence[UpstreamVip],
    local: int,
    remote: int,
    services: Mapping[str, str],
) -> list[dict[str, Any]]:
    name = upstream.access_point
    namespace = ap.namespace  # a workloadSelector selects WLEs in the SE's own namespace
    select = {LABEL_ACCESSPOINT: ap.name, LABEL_UPSTREAM: name}
    labels = {**select, LABEL_MANAGED: "true"}
    if name in services:
        labels[LABEL_SERVICE] = services[name]
    counts: dict[str, int] = {}
    for v in vips:
        counts[v.region] = counts.get(v.region, 0) + 1
    weight_of = split_weights(counts, cluster.region, local, remote)
    port = upstream.port
    out: list[dict[str, Any]] = []
    for v in sorted(vips, key=lambda v: (v.region, v.cluster, v.ip)):
        out.append(
            {
                "apiVersion": ISTIO,
                "kind": "WorkloadEntry",
                "metadata": {
                    "name": _wle_name(ap.name, name, v),
                    "namespace": namespace,
                    "labels": dict(labels),
                    "annotations": {HEALTH_CHECKS: "true"},
                },
                "spec": {
                    "address": v.ip,
                    "locality": v.locality,
                    "weight": weight_of[v.region],
                    "labels": dict(select),
                    "ports": {port.name: port.number},
                },
            }
        )
    out.append(
        {
            "apiVersion": ISTIO,
            "kind": "ServiceEntry",
            "metadata": {
                "name": f"{ap.name}-{name}"[:253],
                "namespace": namespace,
                "labels": {LABEL_ACCESSPOINT: ap.name, LABEL_MANAGED: "true", LABEL_UPSTREAM: name},
            },
            "spec": {
                "hosts": [upstream_host(name, ap.upstream_namespace(upstream))],
                "location": "MESH_INTERNAL",
                "resolution": "STATIC",
                "ports": [{"number": port.number, "name": port.name, "protocol": port.protocol}],
                "workloadSelector": {"labels": dict(select)},
            },
        }
    )
    return out


def _wle_name(ap: str, upstream: str, v: UpstreamVip) -> str:
    address = v.ip.replace(".", "-").replace(":", "-")
    return f"{ap}-{upstream}-{v.cluster}-{address}"[:253].rstrip("-").lower()
