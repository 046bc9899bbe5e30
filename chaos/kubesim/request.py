"""What an API request addresses and asks, read off its URL, query and body.

`Target` is the resolved `/api[s]/…/namespaces/<ns>/<plural>/<name>/<sub>`
path; `read_verb` names the Kubernetes verb; the `parse_*` functions read
query parameters and bodies the way the apiserver does (Go's ParseBool for
booleans, 400 for what does not parse).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from chaos.kubesim.errors import bad_request, unknown_path, unsupported_media_type
from chaos.kubesim.resources import Resource, ResourceTable

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
WRITE_TYPES = ("application/json", "application/yaml")


@dataclass(frozen=True)
class Target:
    resource: Resource
    version: str
    namespace: str | None  # None: across all namespaces
    name: str | None  # None: the collection
    subresource: str | None = None

    @property
    def label(self) -> str:
        """The resource as counted in stats: `workloadentries` or `workloadentries/status`."""
        if self.subresource:
            return f"{self.resource.plural}/{self.subresource}"
        return self.resource.plural

    def present(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A stored object as served in this request's version."""
        return {
            "apiVersion": self.resource.api_version(self.version),
            "kind": self.resource.kind,
            **{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")},
        }


def resolve(table: ResourceTable, match: Mapping[str, str]) -> Target:
    group = match.get("group", "")
    version = match.get("version", "v1")
    resource = table.find(group, version, match["plural"])
    if resource is None:
        raise unknown_path()
    subresource = match.get("subresource")
    if subresource is not None and not (subresource == "status" and resource.status_subresource):
        raise unknown_path()
    namespace = match.get("namespace")
    if not resource.namespaced:  # cluster-scoped: no namespace in the path, "" in the store
        if namespace is not None:
            raise unknown_path()
        namespace = ""
    elif namespace is None and match.get("name") is not None:
        raise unknown_path()
    return Target(resource, version, namespace, match.get("name"), subresource)


def read_verb(method: str, match: Mapping[str, str], query: Mapping[str, str]) -> str:
    """The Kubernetes verb of a resource request (what RBAC and stats count)."""
    collection = "name" not in match
    match method:
        case "GET" | "HEAD":
            if parse_bool(query.get("watch"), "watch"):
                return "watch"
            return "list" if collection else "get"
        case "POST":
            return "create"
        case "PUT":
            return "update"
        case "PATCH":
            return "patch"
        case "DELETE":
            return "deletecollection" if collection else "delete"
    return method.lower()


def parse_bool(value: str | None, name: str) -> bool:
    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise bad_request(f"invalid value for {name}: {value!r} is not a boolean")


def parse_int(value: str | None, name: str, *, minimum: int = 0) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {value!r} is not an integer") from None
    if number < minimum:
        raise bad_request(f"invalid value for {name}: must be >= {minimum}")
    return number


def parse_resource_version(value: str | None) -> int | None:
    """None for "" and absent (meaning: the latest); an int otherwise."""
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise bad_request(f"invalid resource version: {value!r}")
    return int(value)


def parse_dry_run(query: Mapping[str, str]) -> bool:
    value = query.get("dryRun")
    if value in (None, ""):
        return False
    if value != "All":
        raise bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return True


def field_manager(query: Mapping[str, str], user_agent: str) -> str:
    """`fieldManager`, or the user agent's product name as the apiserver defaults it."""
    manager = query.get("fieldManager")
    if manager:
        if len(manager) > 128:
            raise bad_request("fieldManager: Too long: may not be more than 128 bytes")
        return manager
    return user_agent.split("/", 1)[0] or "unknown"


def decode_body(raw: bytes, content_type: str, accepted: tuple[str, ...]) -> Any:
    """A request body as JSON values; 415 for a media type not served, 400 for bad bytes."""
    if content_type not in accepted:
        raise unsupported_media_type(content_type, accepted)
    if not raw.strip():
        raise bad_request("the body of the request is empty")
    try:
        if content_type.endswith("yaml"):
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as error:
        raise bad_request(f"the body of the request could not be decoded: {error}") from None


def check_type(target: Target, body: Any) -> dict[str, Any]:
    """A POST/PUT body must be an object of this resource's kind, in a served version.

    Custom resources must say their apiVersion and kind; built-ins default them.
    """
    resource = target.resource
    if not isinstance(body, dict):
        raise bad_request(f"the body must be a {resource.kind} object, got {type(body).__name__}")
    kind = body.get("kind")
    api_version = body.get("apiVersion")
    if resource.custom and not kind:
        raise bad_request(f"Object 'Kind' is missing in '{json.dumps(body)[:200]}'")
    if resource.custom and not api_version:
        raise bad_request(f"Object 'apiVersion' is missing in '{json.dumps(body)[:200]}'")
    if kind and kind != resource.kind:
        raise bad_request(
            f"the kind in the data ({kind}) does not match the expected kind ({resource.kind})"
        )
    expected = resource.api_version(target.version)
    if api_version and api_version != expected:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API"
            f" version ({expected})"
        )
    return {
        **body,
        "apiVersion": resource.api_version(resource.storage_version),
        "kind": resource.kind,
    }
