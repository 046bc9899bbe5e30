"""`/openapi/v3` and `/openapi/v2`: the served kinds' schemas, as kubectl reads them.

What kubectl needs from them, and gets:
- `apply`/`create`/`replace` with the default `--validate=strict`: kubectl
  looks in the group-version's v3 document for a PATCH operation carrying the
  kind's `x-kubernetes-group-version-kind` and a `fieldValidation` query
  parameter; finding it, it leaves validation to the server (which refuses
  unknown fields with `fieldValidation=Strict`, see `api.check_fields`).
- client-side `apply` of a built-in kind computes a strategic merge patch
  from the kind's schema: `x-kubernetes-patch-strategy: merge` and
  `x-kubernetes-patch-merge-key: port` on a Service's `ports` make it send
  `$setElementOrder/ports` and `$patch: delete` items instead of a whole list.
- `explain`: the kind's schema (with `description`s) under
  `components.schemas`, found by its `x-kubernetes-group-version-kind`, `metadata`
  by `$ref` to ObjectMeta.

The v3 root lists one document per group-version with a content hash in its
URL (`?hash=`), as the apiserver does, so a client's cache never serves a
stale document. `/openapi/v2` is served as JSON with every kind, and in
protobuf (`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`,
gnostic's `openapi_v2.Document`, what client-go asks for) with its `swagger`
and `info` only: kubectl 1.32 reads v2 only where no v3 document names the
kind — a `kind: List` (`v1 List`) of objects given to `apply -f`. Finding no
kind in it either, kubectl leaves the validation of each item to the server
(`fieldValidation=Strict` on each create and patch, as against a real one);
answered 406, it refused the whole file.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from chaos.kubesim.crd import access_point
from chaos.kubesim.discovery import VERSION
from chaos.kubesim.kinds import schema_for
from chaos.kubesim.resources import Resource, ResourceTable
from chaos.kubesim.schema import to_openapi

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"  # asked for
V2_PROTOBUF_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"  # answered


def _pb_field(number: int, value: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2)."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    return varint(number << 3 | 2) + varint(len(value)) + value


def v2_protobuf() -> bytes:
    """gnostic's `openapi_v2.Document` with `swagger` (1) and `info` (2: title 1, version 2)."""
    info = _pb_field(1, b"Kubernetes") + _pb_field(2, VERSION["gitVersion"].encode())
    return _pb_field(1, b"2.0") + _pb_field(2, info)


_QUERY = {
    "dryRun": "When present, indicates that modifications should not be persisted.",
    "fieldManager": "fieldManager is a name associated with the actor or entity that is"
    " making these changes.",
    "fieldValidation": "fieldValidation instructs the server on how to handle objects in the"
    " request containing unknown or duplicate fields. Valid values are: Ignore, Warn"
    " (the default), Strict.",
}
_META_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string", "description": "Name must be unique within a namespace."},
    "generateName": {"type": "string", "description": "An optional prefix for a generated name."},
    "namespace": {"type": "string", "description": "The namespace of the object."},
    "labels": {
        "type": "object",
        "additionalProperties": {"type": "string", "default": ""},
        "description": "Map of string keys and values that can be used to organize and"
        " categorize (scope and select) objects.",
    },
    "annotations": {
        "type": "object",
        "additionalProperties": {"type": "string", "default": ""},
        "description": "Annotations is an unstructured key value map stored with a resource.",
    },
    "uid": {"type": "string"},
    "resourceVersion": {"type": "string"},
    "generation": {"type": "integer", "format": "int64"},
    "creationTimestamp": {"type": "string", "format": "date-time"},
    "deletionTimestamp": {"type": "string", "format": "date-time"},
    "finalizers": {
        "type": "array",
        "items": {"type": "string", "default": ""},
        "x-kubernetes-list-type": "set",
        "x-kubernetes-patch-strategy": "merge",
    },
    "ownerReferences": {
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["uid"],
        "x-kubernetes-patch-merge-key": "uid",
        "x-kubernetes-patch-strategy": "merge",
    },
    "managedFields": {
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def component_name(resource: Resource, version: str) -> str:
    """`io.k8s.api.core.v1.Service`, `io.istio.networking.v1.Gateway`, `io.gtm.v1alpha1.AccessPoint`."""
    if not resource.group:
        return f"io.k8s.api.core.{version}.{resource.kind}"
    if resource.group == "coordination.k8s.io":
        return f"io.k8s.api.coordination.{version}.{resource.kind}"
    reverse = ".".join(reversed(resource.group.split(".")))
    return f"{reverse}.{version}.{resource.kind}"


def _gvk(resource: Resource, version: str) -> dict[str, str]:
    return {"group": resource.group, "version": version, "kind": resource.kind}


def _kind_schema(resource: Resource, version: str, ref: str) -> dict[str, Any]:
    if resource.kind == access_point().kind:
        out = copy.deepcopy(dict(access_point().openapi))
    else:
        out = to_openapi(schema_for(resource.kind))
    properties = out.setdefault("properties", {})
    properties["metadata"] = {
        "description": "Standard object's metadata.",
        "allOf": [{"$ref": ref + OBJECT_META}],
        "default": {},
    }
    for name, why in (
        ("apiVersion", "APIVersion defines the versioned schema of this representation."),
        ("kind", "Kind is a string value representing the REST resource this object represents."),
    ):
        properties.setdefault(name, {"type": "string", "description": why})
    out["type"] = "object"
    out["x-kubernetes-group-version-kind"] = [_gvk(resource, version)]
    return out


def _v2_compatible(node: Any) -> Any:
    """Swagger 2.0 has no anyOf: an int-or-string is `type: string, format: int-or-string`."""
    if isinstance(node, dict):
        if node.get("x-kubernetes-int-or-string"):
            return {
                "type": "string",
                "format": "int-or-string",
                **{k: v for k, v in node.items() if k not in ("anyOf", "type", "format")},
            }
        return {k: _v2_compatible(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_v2_compatible(v) for v in node]
    return node


def _parameters(names: Iterable[str], v3: bool) -> list[dict[str, Any]]:
    out = []
    for name in names:
        param: dict[str, Any] = {"name": name, "in": "query", "description": _QUERY.get(name, "")}
        if v3:
            param["schema"] = {"type": "string", "uniqueItems": True}
        else:
            param["type"] = "string"
            param["uniqueItems"] = True
        out.append(param)
    return out


def _operation(
    resource: Resource, version: str, action: str, ref: str, v3: bool, *, sub: str = ""
) -> dict[str, Any]:
    target = ref + component_name(resource, version)
    noun = f"{resource.kind}{'Status' if sub else ''}"
    op: dict[str, Any] = {
        "description": f"{action} the specified {resource.kind}{' status' if sub else ''}",
        "operationId": f"{action}{noun}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(resource, version),
    }
    names: tuple[str, ...] = ()
    if action in ("patch", "put", "post"):
        names = ("dryRun", "fieldManager", "fieldValidation")
        if action == "patch":
            names = (*names, "force")
    op["parameters"] = _parameters(names, v3)
    if v3:
        op["responses"] = {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": {"$ref": target}}},
            }
        }
        if action == "patch":
            types = resource.patch_types
            op["requestBody"] = {
                "content": {t: {"schema": {"type": "object"}} for t in types},
                "required": True,
            }
    else:
        op["responses"] = {"200": {"description": "OK", "schema": {"$ref": target}}}
        if action == "patch":
            op["consumes"] = list(resource.patch_types)
    return op


def _paths(resource: Resource, version: str, ref: str, v3: bool) -> dict[str, Any]:
    base = f"/apis/{resource.group}/{version}" if resource.group else f"/api/{version}"
    scope = f"{base}/namespaces/{{namespace}}" if resource.namespaced else base
    collection = f"{scope}/{resource.plural}"
    item = f"{collection}/{{name}}"

    def op(action: str, sub: str = "") -> dict[str, Any]:
        return _operation(resource, version, action, ref, v3, sub=sub)

    out = {
        collection: {"get": op("list"), "post": op("post"), "delete": op("deletecollection")},
        item: {"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")},
    }
    if resource.status_subresource:
        out[f"{item}/status"] = {
            "get": op("get", "status"),
            "put": op("put", "status"),
            "patch": op("patch", "status"),
        }
    if resource.namespaced:
        out[f"{base}/{resource.plural}"] = {"get": op("list")}
    return out


def _meta_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "ObjectMeta is metadata that all persisted resources must have.",
        "properties": copy.deepcopy(_META_PROPERTIES),
    }


def group_version_document(table: ResourceTable, group: str, version: str) -> dict[str, Any]:
    """The OpenAPI v3 document of one group-version (`/openapi/v3/apis/<g>/<v>`)."""
    ref = "#/components/schemas/"
    served = table.in_group_version(group, version)
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {OBJECT_META: _meta_schema()}
    for resource in served:
        paths.update(_paths(resource, version, ref, v3=True))
        schemas[component_name(resource, version)] = _kind_schema(resource, version, ref)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _group_versions(table: ResourceTable) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for resource in table:
        for version in resource.versions:
            if (resource.group, version) not in out:
                out.append((resource.group, version))
    return out


def _hash(document: Mapping[str, Any]) -> str:
    raw = json.dumps(document, sort_keys=True).encode()
    return hashlib.sha512(raw).hexdigest()[:128].upper()


@cache
def _documents(table: ResourceTable) -> dict[str, tuple[dict[str, Any], str]]:
    out = {}
    for group, version in _group_versions(table):
        document = group_version_document(table, group, version)
        out[_key(group, version)] = (document, _hash(document))
    return out


def v3_root(table: ResourceTable) -> dict[str, Any]:
    return {
        "paths": {
            key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
            for key, (_, digest) in _documents(table).items()
        }
    }


def v3_document(table: ResourceTable, key: str) -> dict[str, Any] | None:
    found = _documents(table).get(key)
    return found[0] if found else None


@cache
def v2_document(table: ResourceTable) -> dict[str, Any]:
    """The whole API as one Swagger 2.0 document (`/openapi/v2`, JSON)."""
    ref = "#/definitions/"
    paths: dict[str, Any] = {}
    definitions: dict[str, Any] = {OBJECT_META: _meta_schema()}
    for group, version in _group_versions(table):
        for resource in table.in_group_version(group, version):
            paths.update(_paths(resource, version, ref, v3=False))
            definitions[component_name(resource, version)] = _v2_compatible(
                _kind_schema(resource, version, ref)
            )
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
        "definitions": definitions,
    }
