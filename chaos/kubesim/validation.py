"""Admission of an object about to be stored: decode, validate, normalize.

`admit` runs what the apiserver runs on every write: the body must decode
(for Go-typed kinds a wrong type or a bad MicroTime is a 400 on POST/PUT and a
422 on PATCH, exactly as kube-apiserver answers), object metadata must be
valid, the kind's schema and rules must hold (422 `Invalid` with causes),
and unknown fields are pruned.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from typing import Any

from chaos.kubesim.errors import Cause, bad_request, invalid
from chaos.kubesim.kinds import schema_for
from chaos.kubesim.resources import Resource
from chaos.kubesim.schema import TYPE_INVALID

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ANNOTATIONS_MAX_BYTES = 256 * 1024

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters,"
    " '-' or '.', and must start and end with an alphanumeric character"
)


def _qualified_name(key: str) -> str | None:
    """Why `key` is not a valid label or annotation key, or None if it is."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _SUBDOMAIN.match(prefix)):
        return f"prefix part {SUBDOMAIN_MESSAGE}"
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must"
            " start and end with an alphanumeric character, at most 63 characters"
        )
    return None


def _string_map(meta: dict[str, Any], field: str) -> tuple[dict[str, Any], list[Cause]]:
    value = meta.get(field) or {}
    if not isinstance(value, dict):
        return {}, [Cause(f"metadata.{field}", TYPE_INVALID, "Invalid value: must be a map")]
    wrong = [k for k, v in value.items() if not isinstance(v, str)]
    return value, [
        Cause(f"metadata.{field}[{k}]", TYPE_INVALID, "Invalid value: must be a string")
        for k in wrong
    ]


def metadata_causes(resource: Resource, obj: dict[str, Any]) -> list[Cause]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [Cause("metadata", TYPE_INVALID, "Invalid value: metadata must be an object")]
    causes: list[Cause] = []
    name = meta.get("name")
    if not name:
        causes.append(
            Cause(
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required",
            )
        )
    elif not isinstance(name, str) or len(name) > 253 or not _SUBDOMAIN.match(name):
        causes.append(
            Cause(
                "metadata.name",
                "FieldValueInvalid",
                f"Invalid value: {json.dumps(name)}: {SUBDOMAIN_MESSAGE}",
            )
        )
    namespace = meta.get("namespace")
    if resource.namespaced and (not isinstance(namespace, str) or not _DNS_LABEL.match(namespace)):
        causes.append(
            Cause(
                "metadata.namespace", "FieldValueInvalid", f"Invalid value: {json.dumps(namespace)}"
            )
        )
    labels, wrong = _string_map(meta, "labels")
    causes += wrong
    for key, value in labels.items():
        if why := _qualified_name(key):
            causes.append(
                Cause("metadata.labels", "FieldValueInvalid", f'Invalid value: "{key}": {why}')
            )
        if isinstance(value, str) and (len(value) > 63 or not _LABEL_VALUE.match(value)):
            causes.append(
                Cause(
                    f"metadata.labels[{key}]",
                    "FieldValueInvalid",
                    f'Invalid value: "{value}": a valid label must be an empty string or consist'
                    " of alphanumeric characters, '-', '_' or '.', and must start and end with"
                    " an alphanumeric character, at most 63 characters",
                )
            )
    annotations, wrong = _string_map(meta, "annotations")
    causes += wrong
    for key in annotations:
        if why := _qualified_name(key.lower()):
            causes.append(
                Cause("metadata.annotations", "FieldValueInvalid", f'Invalid value: "{key}": {why}')
            )
    size = sum(len(k) + len(str(v)) for k, v in annotations.items())
    if size > ANNOTATIONS_MAX_BYTES:
        causes.append(
            Cause(
                "metadata.annotations",
                "FieldValueTooLong",
                f"Too long: must have at most {ANNOTATIONS_MAX_BYTES} bytes",
            )
        )
    return causes


def _kind_causes(resource: Resource, obj: dict[str, Any]) -> list[Cause]:
    """Rules of the Go types' validation that a schema does not express."""
    causes: list[Cause] = []
    if resource.kind == "Lease":
        spec = obj.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        if isinstance(duration, int) and duration <= 0:
            causes.append(
                Cause(
                    "spec.leaseDurationSeconds",
                    "FieldValueInvalid",
                    f"Invalid value: {duration}: must be greater than 0",
                )
            )
        transitions = spec.get("leaseTransitions")
        if isinstance(transitions, int) and transitions < 0:
            causes.append(
                Cause(
                    "spec.leaseTransitions",
                    "FieldValueInvalid",
                    f"Invalid value: {transitions}: must be greater than or equal to 0",
                )
            )
    if resource.kind in ("ConfigMap", "Secret"):
        for field in ("data", "binaryData", "stringData"):
            for key in obj.get(field) or {}:
                if len(key) > 253 or not _CONFIG_KEY.match(key):
                    causes.append(
                        Cause(
                            f"{field}[{key}]",
                            "FieldValueInvalid",
                            f'Invalid value: "{key}": a valid config key must consist of'
                            " alphanumeric characters, '-', '_' or '.'",
                        )
                    )
        overlap = set(obj.get("data") or {}) & set(obj.get("binaryData") or {})
        causes += [
            Cause(
                f"data[{key}]",
                "FieldValueInvalid",
                "Invalid value: duplicate of key present in binaryData",
            )
            for key in sorted(overlap)
        ]
    return causes


def _service_causes(obj: dict[str, Any]) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    seen: dict[tuple[Any, Any], int] = {}
    names: set[str] = set()
    for index, port in enumerate(ports):
        where = f"spec.ports[{index}]"
        if len(ports) > 1 and not port.get("name"):
            causes.append(Cause(f"{where}.name", "FieldValueRequired", "Required value"))
        elif port.get("name") in names:
            causes.append(
                Cause(
                    f"{where}.name",
                    "FieldValueDuplicate",
                    f"Duplicate value: {json.dumps(port['name'])}",
                )
            )
        names.add(str(port.get("name", "")))
        key = (port.get("port"), port.get("protocol", "TCP"))
        if key in seen:
            shown = json.dumps({"port": key[0], "protocol": key[1]}, separators=(",", ":"))
            causes.append(Cause(where, "FieldValueDuplicate", f"Duplicate value: {shown}"))
        seen[key] = index
    kind = spec.get("type", "ClusterIP")
    if kind == "ClusterIP" and not ports and spec.get("clusterIP") != "None":
        causes.append(Cause("spec.ports", "FieldValueRequired", "Required value"))
    if spec.get("loadBalancerClass") is not None and kind != "LoadBalancer":
        causes.append(
            Cause(
                "spec.loadBalancerClass",
                "FieldValueForbidden",
                "Forbidden: may only be used when `type` is 'LoadBalancer'",
            )
        )
    return causes


def _secret_causes(obj: dict[str, Any]) -> list[Cause]:
    """A `kubernetes.io/tls` Secret must hold `tls.crt` and `tls.key` (core validation)."""
    if obj.get("type") != "kubernetes.io/tls":
        return []
    keys = set(obj.get("data") or {}) | set(obj.get("stringData") or {})
    return [
        Cause(f"data[{key}]", "FieldValueRequired", "Required value")
        for key in ("tls.crt", "tls.key")
        if key not in keys
    ]


def update_causes(resource: Resource, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """Rules that compare an update with the object it replaces (immutable fields)."""
    causes: list[Cause] = []
    if resource.kind == "Service":
        was, now = old.get("spec") or {}, new.get("spec") or {}
        both_lb = was.get("type") == "LoadBalancer" and now.get("type") == "LoadBalancer"
        if both_lb and was.get("loadBalancerClass") != now.get("loadBalancerClass"):
            value = now.get("loadBalancerClass")
            shown = json.dumps(value) if value is not None else "null"
            causes.append(
                Cause(
                    "spec.loadBalancerClass",
                    "FieldValueInvalid",
                    f"Invalid value: {shown}: may not change once set",
                )
            )
    if resource.kind == "Secret" and old.get("type", "Opaque") != new.get("type", "Opaque"):
        causes.append(
            Cause(
                "type",
                "FieldValueInvalid",
                f"Invalid value: {json.dumps(new.get('type'))}: field is immutable",
            )
        )
    return causes


def _drop_type_dependent_fields(old: dict[str, Any], new: dict[str, Any]) -> None:
    """A Service that stops being a LoadBalancer (or NodePort) sheds the fields only those
    types may carry, as the Service strategy's dropTypeDependentFields does."""
    was, now = old.get("spec") or {}, new.get("spec") or {}
    if not isinstance(now, dict):
        return
    before, after = was.get("type", "ClusterIP"), now.get("type", "ClusterIP")
    if before == after:
        return
    if before == "LoadBalancer" and after != "LoadBalancer":
        for field in ("loadBalancerClass", "allocateLoadBalancerNodePorts"):
            if field in now and now.get(field) == was.get(field):
                del now[field]
    if after in ("ClusterIP", "ExternalName") and before in ("NodePort", "LoadBalancer"):
        for port in now.get("ports") or []:
            if isinstance(port, dict):
                port.pop("nodePort", None)
        if now.get("externalTrafficPolicy") == was.get("externalTrafficPolicy"):
            now.pop("externalTrafficPolicy", None)
        now.pop("healthCheckNodePort", None)


def _stable(seed: str, span: int) -> int:
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big") % span


def _service_defaults(obj: dict[str, Any]) -> None:
    """What the apiserver fills in on a Service: type, protocols, target ports, a cluster IP."""
    meta = obj.get("metadata") or {}
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    kind = spec.setdefault("type", "ClusterIP")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])
            if kind in ("NodePort", "LoadBalancer") and "nodePort" not in port:
                seed = f"{meta.get('namespace')}/{meta.get('name')}/{port.get('port')}"
                port["nodePort"] = 30000 + _stable(seed, 2768)
    if kind == "ExternalName":
        return
    spec.setdefault("sessionAffinity", "None")
    if not spec.get("clusterIP"):
        at = _stable(f"{meta.get('namespace')}/{meta.get('name')}", 65534) + 1
        spec["clusterIP"] = f"10.96.{at // 256}.{at % 256}"
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if kind in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)


def _defaults(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    if resource.kind == "Service":
        _service_defaults(obj)
        status = obj.setdefault("status", {})
        if isinstance(status, dict):
            status.setdefault("loadBalancer", {})
    elif resource.kind == "Namespace":
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("finalizers", ["kubernetes"])
        status = obj.setdefault("status", {})
        if isinstance(status, dict):
            status.setdefault("phase", "Active")
    elif resource.custom:
        obj = schema_for(resource.kind).with_defaults(obj)
    return obj


def _normalize(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    obj = schema_for(resource.kind).prune(obj)
    if resource.kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(value.encode()).decode()
    return obj


def admit(
    resource: Resource,
    obj: dict[str, Any],
    *,
    patched: bool,
    old: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The object as it will be stored, or an ApiError saying why it cannot be.

    `patched`: the object is the result of a JSON or merge patch, whose decode
    failures are 422 (POST, PUT and apply patches report them as 400). `old`:
    the object an update replaces (immutable fields are checked against it).
    """
    obj = copy.deepcopy(obj)
    if old is not None and resource.kind == "Service" and not resource.group:
        _drop_type_dependent_fields(old, obj)
    obj = _defaults(resource, obj)
    meta = obj.get("metadata")
    name = str(meta.get("name", "")) if isinstance(meta, dict) else ""
    causes = schema_for(resource.kind).validate(obj, "") + metadata_causes(resource, obj)
    undecodable = [c for c in causes if c.reason == TYPE_INVALID]
    if undecodable and not resource.custom:
        if patched:  # the patched object does not decode: the apiserver blames the patch
            why = "; ".join(c.describe() for c in undecodable)
            cause = Cause("patch", "FieldValueInvalid", f"Invalid value: {json.dumps(obj)}: {why}")
            raise invalid("", "", [cause])
        version = obj.get("apiVersion", resource.api_version(resource.storage_version))
        raise bad_request(
            f'{resource.kind} in version "{version.rpartition("/")[2]}" cannot be handled as a'
            f" {resource.kind}: {'; '.join(c.describe() for c in undecodable)}"
        )
    causes += _kind_causes(resource, obj)
    if resource.kind == "Service":
        causes += _service_causes(obj)
    if resource.kind == "Secret":
        causes += _secret_causes(obj)
    if old is not None:
        causes += update_causes(resource, old, obj)
    if causes:
        raise invalid(resource.qualified_kind, name, causes)
    return _normalize(resource, obj)
