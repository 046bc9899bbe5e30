"""The schema of each served kind: Istio's CRDs and the built-in Go types.

WorkloadEntry and ServiceEntry follow Istio's CRD (v1 and v1beta1 share one
schema): `address` or `network` required, `weight` 0..2^32-1, ports
1..65535, `status` kept as is (x-kubernetes-preserve-unknown-fields).
DestinationRule is lighter: `host` required, `trafficPolicy` and each subset
kept as they are (no check of load-balancer settings), `exportTo` and
`workloadSelector` typed, other spec fields pruned. Lease,
ConfigMap and Secret follow their Go types: MicroTime fields need exactly six
fractional digits and a Z; Secret `data` is base64.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaos.kubesim.schema import (
    ANY,
    BOOLEAN,
    PRESERVED,
    STRING,
    STRING_LIST,
    STRING_MAP,
    Rule,
    Schema,
    integer,
    string,
)

UINT32_MAX = 4294967295
INT32_MAX = 2147483647


def _has_address(spec: Mapping[str, Any]) -> bool:
    return "address" in spec or "network" in spec


def _endpoints_or_selector(spec: Mapping[str, Any]) -> bool:
    return not (spec.get("workloadSelector") and spec.get("endpoints"))


WORKLOAD_ENTRY_SPEC = Schema(
    "object",
    properties={
        "address": string(256),
        "labels": Schema("map", items=STRING, max_items=256),
        "locality": string(2048),
        "network": string(2048),
        "ports": Schema("map", items=integer(1, 65535), max_items=128),
        "serviceAccount": string(253),
        "weight": integer(0, UINT32_MAX),
    },
    rules=(Rule(_has_address, "Address is required"),),
)

SERVICE_PORT = Schema(
    "object",
    properties={
        "number": integer(1, 65535),
        "protocol": STRING,
        "name": STRING,
        "targetPort": integer(1, 65535),
    },
    required=("number", "name"),
)

SERVICE_ENTRY_SPEC = Schema(
    "object",
    properties={
        "hosts": Schema("array", items=STRING, min_items=1, max_items=256),
        "addresses": Schema("array", items=string(64), max_items=256),
        "ports": Schema("array", items=SERVICE_PORT, max_items=256),
        "location": string(enum=("MESH_EXTERNAL", "MESH_INTERNAL")),
        "resolution": string(enum=("NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN")),
        "endpoints": Schema("array", items=WORKLOAD_ENTRY_SPEC, max_items=4096),
        "workloadSelector": Schema("object", properties={"labels": STRING_MAP}),
        "exportTo": STRING_LIST,
        "subjectAltNames": STRING_LIST,
    },
    required=("hosts",),
    rules=(Rule(_endpoints_or_selector, "only one of WorkloadSelector or Endpoints can be set"),),
)


DESTINATION_RULE_SPEC = Schema(
    "object",
    properties={
        "host": STRING,
        "trafficPolicy": PRESERVED,
        "subsets": Schema("array", items=PRESERVED),
        "exportTo": STRING_LIST,
        "workloadSelector": Schema("object", properties={"matchLabels": STRING_MAP}),
    },
    required=("host",),
)


def _custom(spec: Schema) -> Schema:
    return Schema(
        "object",
        properties={
            "apiVersion": STRING,
            "kind": STRING,
            "metadata": ANY,
            "spec": spec,
            "status": PRESERVED,
        },
        required=("spec",),
    )


def _micro_time() -> Schema:
    return string(fmt="micro-time")


LEASE_SPEC = Schema(
    "object",
    properties={
        "holderIdentity": STRING,
        "leaseDurationSeconds": integer(-INT32_MAX - 1, INT32_MAX),
        "acquireTime": _micro_time(),
        "renewTime": _micro_time(),
        "leaseTransitions": integer(-INT32_MAX - 1, INT32_MAX),
        "strategy": STRING,
        "preferredHolder": STRING,
    },
)

SCHEMAS: dict[str, Schema] = {
    "WorkloadEntry": _custom(WORKLOAD_ENTRY_SPEC),
    "ServiceEntry": _custom(SERVICE_ENTRY_SPEC),
    "DestinationRule": _custom(DESTINATION_RULE_SPEC),
    "Lease": Schema(
        "object",
        properties={"apiVersion": STRING, "kind": STRING, "metadata": ANY, "spec": LEASE_SPEC},
    ),
    "ConfigMap": Schema(
        "object",
        properties={
            "apiVersion": STRING,
            "kind": STRING,
            "metadata": ANY,
            "data": STRING_MAP,
            "binaryData": Schema("map", items=string(fmt="byte")),
            "immutable": BOOLEAN,
        },
    ),
    "Secret": Schema(
        "object",
        properties={
            "apiVersion": STRING,
            "kind": STRING,
            "metadata": ANY,
            "data": Schema("map", items=string(fmt="byte")),
            "stringData": STRING_MAP,
            "type": STRING,
            "immutable": BOOLEAN,
        },
    ),
}


def schema_for(kind: str) -> Schema:
    return SCHEMAS.get(kind, PRESERVED)
