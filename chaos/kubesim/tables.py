"""Server-side printing: the `meta.k8s.io` Table that `kubectl get` asks for.

kubectl asks with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io, …`
and prints the columns the server sends. A custom resource's columns are its
CRD's `additionalPrinterColumns` after `Name` (Istio's: ServiceEntry Hosts,
Location, Resolution, Age; WorkloadEntry Age, Address; DestinationRule Host,
Age), or `Name` and `Created At` for a CRD that declares none; a built-in's
are its Go printer's (Lease Holder, ConfigMap Data, Secret Type and Data, Service Type, Cluster-IP,
External-IP, Port(s), Namespace Status). VirtualService shows Istio's
Gateways and Hosts, Gateway (no columns declared) Age; AccessPoint the
columns of its CRD manifest (`crd.py`), `priority: 1` ones with `-o wide`.

As the apiserver does: a `string` column is the JSONPath result as printed
(a list prints as JSON), a `date` column a human age (`5m10s`), a missing
value `null` (kubectl shows `<none>`); each row carries the object as
`PartialObjectMetadata` (`includeObject=Metadata`, the default), whole
(`Object`) or not at all (`None`). A watch asked as a Table (`kubectl get -w`)
sends each object as a one-row Table, the column definitions on the first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chaos.kubesim.crd import PrinterColumn, access_point
from chaos.kubesim.errors import bad_request
from chaos.kubesim.resources import Resource

TABLE_VERSIONS = ("v1", "v1beta1")
_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_CREATED_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC."
)


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # string | integer | number | boolean | date
    description: str
    cell: Callable[[Mapping[str, Any], datetime], Any]
    format: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


def human_duration(seconds: float) -> str:
    """An age as the apiserver prints it (k8s.io/apimachinery/pkg/util/duration)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _age(obj: Mapping[str, Any], now: datetime) -> str:
    created = (obj.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    try:
        at = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration((now - at).total_seconds())


def _path(*keys: str) -> Callable[[Mapping[str, Any], datetime], Any]:
    """A simple JSONPath (`.spec.hosts`) printed as a `string` column: text as is,
    anything else as JSON, missing as null."""

    def cell(obj: Mapping[str, Any], now: datetime) -> Any:
        value: Any = obj
        for key in keys:
            if not isinstance(value, Mapping) or key not in value:
                return None
            value = value[key]
        if isinstance(value, str):
            return value
        return json.dumps(value, separators=(",", ":"))

    return cell


def _raw(*keys: str) -> Callable[[Mapping[str, Any], datetime], Any]:
    """A number or boolean column: the value as is (kubectl formats it), missing as null."""

    def cell(obj: Mapping[str, Any], now: datetime) -> Any:
        value: Any = obj
        for key in keys:
            if not isinstance(value, Mapping) or key not in value:
                return None
            value = value[key]
        return value

    return cell


def _count(*fields: str) -> Callable[[Mapping[str, Any], datetime], Any]:
    return lambda obj, now: sum(len(obj.get(f) or {}) for f in fields)


def _external_ip(obj: Mapping[str, Any], now: datetime) -> str:
    """The Service printer's EXTERNAL-IP: ingress addresses, `<pending>` while none."""
    spec = obj.get("spec") or {}
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    addresses = [i.get("ip") or i.get("hostname") for i in ingress if isinstance(i, Mapping)]
    addresses += spec.get("externalIPs") or []
    kind = spec.get("type", "ClusterIP")
    if kind == "ExternalName":
        return str(spec.get("externalName", "<none>"))
    if kind == "LoadBalancer" and not addresses:
        return "<pending>"
    return ",".join(a for a in addresses if a) or "<none>"


def _ports(obj: Mapping[str, Any], now: datetime) -> str:
    shown = []
    for port in (obj.get("spec") or {}).get("ports") or []:
        node = f":{port['nodePort']}" if port.get("nodePort") else ""
        shown.append(f"{port.get('port')}{node}/{port.get('protocol', 'TCP')}")
    return ",".join(shown) or "<none>"


def _selector(obj: Mapping[str, Any], now: datetime) -> str:
    selector = (obj.get("spec") or {}).get("selector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


NAME = Column("Name", "string", _NAME_DOC, lambda o, now: o["metadata"]["name"], format="name")
AGE = Column("Age", "date", _CREATED_DOC, _age)

# kind -> columns after Name: Istio's additionalPrinterColumns, the built-ins' printers
COLUMNS: dict[str, tuple[Column, ...]] = {
    "ServiceEntry": (
        Column(
            "Hosts", "string", "The hosts associated with the ServiceEntry", _path("spec", "hosts")
        ),
        Column(
            "Location",
            "string",
            "Whether the service is external to the mesh or part of the mesh (MESH_EXTERNAL "
            "or MESH_INTERNAL)",
            _path("spec", "location"),
        ),
        Column(
            "Resolution",
            "string",
            "Service resolution mode for the hosts (NONE, STATIC, or DNS)",
            _path("spec", "resolution"),
        ),
        AGE,
    ),
    "WorkloadEntry": (
        AGE,
        Column(
            "Address",
            "string",
            "Address associated with the network endpoint.",
            _path("spec", "address"),
        ),
    ),
    "DestinationRule": (
        Column(
            "Host",
            "string",
            "The name of a service from the service registry",
            _path("spec", "host"),
        ),
        AGE,
    ),
    "Gateway": (AGE,),  # Istio's Gateway CRD declares no columns: the CRD default
    "VirtualService": (
        Column(
            "Gateways",
            "string",
            "The names of gateways and sidecars that should apply these routes",
            _path("spec", "gateways"),
        ),
        Column(
            "Hosts",
            "string",
            "The destination hosts to which traffic is being sent",
            _path("spec", "hosts"),
        ),
        AGE,
    ),
    "Service": (
        Column("Type", "string", "", _path("spec", "type")),
        Column("Cluster-IP", "string", "", _path("spec", "clusterIP")),
        Column("External-IP", "string", "", _external_ip),
        Column("Port(s)", "string", "", _ports),
        AGE,
        Column("Selector", "string", "", _selector, priority=1),
    ),
    "Namespace": (Column("Status", "string", "", _path("status", "phase")), AGE),
    "Lease": (
        Column("Holder", "string", "", _path("spec", "holderIdentity")),
        AGE,
    ),
    "ConfigMap": (Column("Data", "string", "", _count("data", "binaryData")), AGE),
    "Secret": (
        Column("Type", "string", "", _path("type")),
        Column("Data", "string", "", _count("data")),
        AGE,
    ),
}
CREATED_AT = Column("Created At", "date", _CREATED_DOC, _age)


def _crd_column(column: PrinterColumn) -> Column:
    """A CRD's additionalPrinterColumn (a simple JSONPath, as every one served here)."""
    keys = tuple(k for k in column.json_path.split(".") if k)
    if column.type == "date":
        stamp = _path(*keys)

        def age(obj: Mapping[str, Any], now: datetime) -> Any:
            value = stamp(obj, now)
            if value is None:
                return None
            return _age({"metadata": {"creationTimestamp": value}}, now)

        cell = age
    elif column.type in ("integer", "number", "boolean"):
        cell = _raw(*keys)
    else:
        cell = _path(*keys)
    return Column(column.name, column.type, column.description, cell, priority=column.priority)


COLUMNS[access_point().kind] = tuple(_crd_column(c) for c in access_point().columns)


def columns_of(resource: Resource) -> tuple[Column, ...]:
    return (NAME, *COLUMNS.get(resource.kind, (CREATED_AT,)))


def table_version(accept: str) -> str | None:
    """The meta.k8s.io version of the Table the Accept header asks for first, if any."""
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        options = dict(p.partition("=")[::2] for p in params)
        if media in ("application/json", "*/*", "application/*") and "as" not in options:
            return None  # the plain object comes first
        if (
            media == "application/json"
            and options.get("as") == "Table"
            and options.get("g") == "meta.k8s.io"
            and options.get("v") in TABLE_VERSIONS
        ):
            return options["v"]
    return None


def _row_object(
    obj: Mapping[str, Any], include: str, version: str, present: Mapping[str, Any]
) -> Any:
    if include == "None":
        return None
    if include == "Object":
        return dict(present)
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": obj.get("metadata", {}),
    }


def as_table(
    resource: Resource,
    objects: Sequence[Mapping[str, Any]],
    presented: Sequence[Mapping[str, Any]],
    *,
    version: str,
    metadata: Mapping[str, Any],
    include_object: str | None,
    headers: bool = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The Table of `objects` (as stored) with `presented` (as served) for includeObject;
    without `headers` (a watch's events after the first) no columnDefinitions."""
    include = include_object or "Metadata"
    if include not in ("None", "Metadata", "Object"):
        raise bad_request(f'includeObject: Unsupported value: "{include}"')
    at = now or datetime.now(UTC)
    columns = columns_of(resource)
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": dict(metadata),
        "columnDefinitions": [c.definition() for c in columns] if headers else [],
        "rows": [
            {
                "cells": [c.cell(obj, at) for c in columns],
                "object": _row_object(obj, include, version, shown),
            }
            for obj, shown in zip(objects, presented, strict=True)
        ],
    }
