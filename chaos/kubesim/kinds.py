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
from dataclasses import replace
from functools import cache
from typing import Any

from chaos.kubesim.crd import access_point
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

INT_OR_STRING = Schema("int-or-string")

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


def _port_protocol(name: str) -> Schema:
    return Schema(
        "object",
        properties={
            "number": integer(1, 65535),
            "protocol": STRING,
            "name": STRING,
            "targetPort": integer(1, 65535),
        },
        required=(name,),
    )


GATEWAY_TLS = Schema(
    "object",
    properties={
        "mode": string(
            enum=(
                "PASSTHROUGH",
                "SIMPLE",
                "MUTUAL",
                "AUTO_PASSTHROUGH",
                "ISTIO_MUTUAL",
                "OPTIONAL_MUTUAL",
            )
        ),
        "credentialName": STRING,
        "httpsRedirect": BOOLEAN,
    },
    preserve_unknown=True,  # Istio's ServerTLSSettings has many more; kept as sent
)
GATEWAY_SPEC = Schema(
    "object",
    properties={
        "selector": STRING_MAP,
        "servers": Schema(
            "array",
            items=Schema(
                "object",
                properties={
                    "port": _port_protocol("number"),
                    "bind": STRING,
                    "hosts": Schema("array", items=STRING, min_items=1),
                    "tls": GATEWAY_TLS,
                    "name": STRING,
                    "defaultEndpoint": STRING,
                },
                required=("port", "hosts"),
            ),
        ),
    },
)
VIRTUAL_SERVICE_SPEC = Schema(
    "object",
    properties={
        "hosts": STRING_LIST,
        "gateways": STRING_LIST,
        "http": Schema("array", items=PRESERVED),
        "tls": Schema("array", items=PRESERVED),
        "tcp": Schema("array", items=PRESERVED),
        "exportTo": STRING_LIST,
    },
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

SERVICE_PORT_V1 = Schema(
    "object",
    properties={
        "name": STRING,
        "protocol": Schema("string", enum=("SCTP", "TCP", "UDP"), default="TCP"),
        "appProtocol": STRING,
        "port": integer(1, 65535),
        "targetPort": INT_OR_STRING,
        "nodePort": integer(0, 65535),
    },
    required=("port",),
    description="ServicePort contains information on service's port.",
)
SERVICE_SPEC_V1 = Schema(
    "object",
    properties={
        # strategic merge patch merges ports by `port`; server-side apply keys them by
        # (port, protocol): both as in k8s.io/api/core/v1 ServiceSpec
        "ports": Schema(
            "array",
            items=SERVICE_PORT_V1,
            list_type="map",
            list_keys=("port", "protocol"),
            patch_strategy="merge",
            patch_key="port",
            description="The list of ports that are exposed by this service.",
        ),
        "selector": STRING_MAP,
        "clusterIP": STRING,
        "clusterIPs": STRING_LIST,
        "type": string(enum=("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")),
        "externalIPs": STRING_LIST,
        "sessionAffinity": string(enum=("ClientIP", "None")),
        "loadBalancerIP": STRING,
        "loadBalancerSourceRanges": STRING_LIST,
        "externalName": STRING,
        "externalTrafficPolicy": string(enum=("Cluster", "Local")),
        "healthCheckNodePort": integer(0, 65535),
        "publishNotReadyAddresses": BOOLEAN,
        "sessionAffinityConfig": PRESERVED,
        "ipFamilies": STRING_LIST,
        "ipFamilyPolicy": string(enum=("PreferDualStack", "RequireDualStack", "SingleStack")),
        "allocateLoadBalancerNodePorts": BOOLEAN,
        "loadBalancerClass": Schema(
            "string",
            description="The class of the load balancer implementation this Service belongs"
            " to; immutable once set on a Service of type LoadBalancer.",
        ),
        "internalTrafficPolicy": string(enum=("Cluster", "Local")),
        "trafficDistribution": STRING,
    },
)
CONDITIONS_V1 = Schema(
    "array",
    items=Schema(
        "object",
        properties={
            "type": STRING,
            "status": STRING,
            "observedGeneration": integer(),
            "lastTransitionTime": STRING,
            "reason": STRING,
            "message": STRING,
        },
        required=("type", "status"),
    ),
    list_type="map",
    list_keys=("type",),
    patch_strategy="merge",
    patch_key="type",
)
SERVICE_STATUS_V1 = Schema(
    "object",
    properties={
        "loadBalancer": Schema(
            "object",
            properties={
                "ingress": Schema(
                    "array",
                    items=Schema(
                        "object",
                        properties={
                            "ip": STRING,
                            "hostname": STRING,
                            "ipMode": string(enum=("VIP", "Proxy")),
                            "ports": Schema("array", items=PRESERVED),
                        },
                    ),
                ),
            },
        ),
        "conditions": CONDITIONS_V1,
    },
)
NAMESPACE_SPEC_V1 = Schema("object", properties={"finalizers": STRING_LIST})
NAMESPACE_STATUS_V1 = Schema(
    "object",
    properties={
        "phase": string(enum=("Active", "Terminating")),
        "conditions": CONDITIONS_V1,
    },
)


def _builtin(**fields: Schema) -> Schema:
    return Schema(
        "object",
        properties={"apiVersion": STRING, "kind": STRING, "metadata": ANY, **fields},
    )


SCHEMAS: dict[str, Schema] = {
    "WorkloadEntry": _custom(WORKLOAD_ENTRY_SPEC),
    "ServiceEntry": _custom(SERVICE_ENTRY_SPEC),
    "DestinationRule": _custom(DESTINATION_RULE_SPEC),
    "Gateway": _custom(GATEWAY_SPEC),
    "VirtualService": _custom(VIRTUAL_SERVICE_SPEC),
    "AccessPoint": access_point().schema,
    "Service": _builtin(spec=SERVICE_SPEC_V1, status=SERVICE_STATUS_V1),
    "Namespace": _builtin(spec=NAMESPACE_SPEC_V1, status=NAMESPACE_STATUS_V1),
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


# ObjectMeta as strategic merge patch and server-side apply see it (k8s.io/apimachinery)
OBJECT_META = Schema(
    "object",
    properties={
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
        "ownerReferences": Schema(
            "array",
            items=PRESERVED,
            list_type="map",
            list_keys=("uid",),
            patch_strategy="merge",
            patch_key="uid",
        ),
        "finalizers": Schema("array", items=STRING, list_type="set", patch_strategy="merge"),
    },
    preserve_unknown=True,
)


@cache
def merge_schema(kind: str) -> Schema:
    """The kind's schema with a typed `metadata`: what merges and field sets walk."""
    schema = schema_for(kind)
    return replace(schema, properties={**schema.properties, "metadata": OBJECT_META})
