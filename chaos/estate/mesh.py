"""The mesh objects a region's cluster holds before gtm runs, as the seed's tooling made them. Pure.

Per service one ServiceEntry (MESH_INTERNAL, STATIC, `workloadSelector` on
the service label, hosts = the FQDN) and per VIP of every region one
WorkloadEntry in the same namespace:

- labels `gtm.io/managed: "true"`, `gtm.io/service: <name>`, `app: <name>`
  (on the object and in `spec.labels`, which istiod matches the selector to);
- annotation `proxy.istio.io/health-checks-enabled: "true"`;
- `spec.address`/`spec.ports` the VIP, `spec.locality` its region's locality;
- `spec.weight` the seed's split seen from the cluster's region: `local` (98)
  for the region's own VIPs and `remote` (1) for each other region, a
  region's part split over its VIPs by their weights and every weight scaled
  by the least common multiple of the regions' VIP weight sums, so the split
  is exact in integers and never 0 (the reconciler's rule, `failover.desired`);
- `status.conditions` Healthy True — which a real apiserver takes only
  through the status subresource (`healthy_status`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gtm.config import Inventory
from policies import Service, Vip

GROUP = "networking.istio.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
WLE_PLURAL = "workloadentries"
SE_PLURAL = "serviceentries"

MANAGED_LABEL = "gtm.io/managed"
SERVICE_LABEL = "gtm.io/service"
SELECTOR = f"{MANAGED_LABEL}=true"
HEALTH_CHECKS = "proxy.istio.io/health-checks-enabled"
NAMESPACE = "gtm-mesh"

# probe kind -> (port name, protocol, service port; None: the VIPs' port)
_PORTS: dict[str, tuple[str, str, int | None]] = {
    "http": ("http", "HTTP", 80),
    "https": ("https", "HTTPS", 443),
    "tls": ("tls", "TLS", 443),
    "tcp": ("tcp", "TCP", None),
    "dns": ("dns", "UDP", 53),
}


@dataclass(frozen=True)
class MeshSeed:
    """How the seed's tooling laid the mesh out."""

    namespace: str = NAMESPACE
    local: int = 98
    remote: int = 1

    def __post_init__(self) -> None:
        if self.local < 1 or self.remote < 1:
            raise ValueError("seed weights must be >= 1 (Istio turns 0 into 1)")


@dataclass(frozen=True)
class MeshObjects:
    """One cluster's objects, as create bodies (no status)."""

    region: str
    service_entries: tuple[dict[str, Any], ...]
    workload_entries: tuple[dict[str, Any], ...]


def wle_name(vip: Vip) -> str:
    """`foo-dc1-127-0-1-1-18080`: service, region, address and port, DNS-1123."""
    address = "".join(c if c.isalnum() else "-" for c in vip.address.lower())
    return f"{vip.service}-{vip.region}-{address}-{vip.port}"


def seed_weights(service: Service, region: str, seed: MeshSeed = MeshSeed()) -> dict[str, int]:
    """VIP id -> `spec.weight` of its WLE in `region`'s cluster."""
    parts = {
        target: (seed.local if target == region else seed.remote, vips)
        for target, vips in service.vips.items()
        if vips
    }
    if not parts:
        return {}
    lcm = math.lcm(*(sum(v.weight for v in vips) for _, vips in parts.values()))
    return {
        v.id: cell * v.weight * (lcm // sum(x.weight for x in vips))
        for cell, vips in parts.values()
        for v in vips
    }


def _labels(name: str) -> dict[str, str]:
    return {MANAGED_LABEL: "true", SERVICE_LABEL: name, "app": name}


def service_entry(service: Service, probe_kind: str, seed: MeshSeed) -> dict[str, Any]:
    port_name, protocol, number = _PORTS[probe_kind]
    if number is None:
        number = next(v.port for vips in service.vips.values() for v in vips)
    return {
        "apiVersion": API_VERSION,
        "kind": "ServiceEntry",
        "metadata": {
            "name": service.name,
            "namespace": seed.namespace,
            "labels": {SERVICE_LABEL: service.name, "app": service.name},
        },
        "spec": {
            "hosts": [service.fqdn],
            "location": "MESH_INTERNAL",
            "resolution": "STATIC",
            "ports": [{"number": number, "name": port_name, "protocol": protocol}],
            "workloadSelector": {"labels": {SERVICE_LABEL: service.name}},
        },
    }


def workload_entry(
    vip: Vip, locality: str, weight: int, probe_kind: str, seed: MeshSeed
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkloadEntry",
        "metadata": {
            "name": wle_name(vip),
            "namespace": seed.namespace,
            "labels": _labels(vip.service),
            "annotations": {HEALTH_CHECKS: "true"},
        },
        "spec": {
            "address": vip.address,
            "ports": {_PORTS[probe_kind][0]: vip.port},
            "locality": locality,
            "weight": weight,
            "labels": _labels(vip.service),
        },
    }


def healthy_status(now: datetime) -> dict[str, Any]:
    """The status a seeded WLE holds: Healthy True (to write through `/status`)."""
    at = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "conditions": [
            {"type": "Healthy", "status": "True", "lastProbeTime": at, "lastTransitionTime": at}
        ]
    }


def mesh_objects(inventory: Inventory, region: str, seed: MeshSeed = MeshSeed()) -> MeshObjects:
    """The ServiceEntries and WorkloadEntries of `region`'s cluster."""
    if region not in inventory.regions:
        raise KeyError(f"no region {region!r}")
    localities = {r.name: r.locality for r in inventory.config.regions}
    entries: list[dict[str, Any]] = []
    wles: list[dict[str, Any]] = []
    for service in inventory.estate.services:
        kind = inventory.services[service.name].probe.kind
        entries.append(service_entry(service, kind, seed))
        weights = seed_weights(service, region, seed)
        for target, vips in service.vips.items():
            for vip in vips:
                wles.append(workload_entry(vip, localities[target], weights[vip.id], kind, seed))
    return MeshObjects(region, tuple(entries), tuple(wles))
