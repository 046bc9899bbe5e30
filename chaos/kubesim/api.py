"""The resource verbs over HTTP: get, list, create, update, patch, delete, deletecollection.

Turns a resolved request into store calls and the store's answers into the
JSON a kube-apiserver sends; a get or list whose Accept asks for a
meta.k8s.io Table (kubectl) gets one (`tables`). Watches are served by
`watchstream`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from chaos.kubesim.errors import bad_request, expired, not_found, unprocessable
from chaos.kubesim.kinds import merge_schema, schema_for
from chaos.kubesim.patch import APPLY_PATCH, patch_object
from chaos.kubesim.request import (
    WRITE_TYPES,
    Target,
    check_type,
    decode_body,
    field_manager,
    parse_bool,
    parse_dry_run,
    parse_int,
    parse_resource_version,
)
from chaos.kubesim.selectors import ObjectFilter
from chaos.kubesim.store import Preconditions, Store
from chaos.kubesim.tables import as_table, table_version


def reply(
    body: Mapping[str, Any], status: int = 200, warnings: list[str] | None = None
) -> web.Response:
    response = web.json_response(body, status=status, dumps=json.dumps)
    for warning in warnings or ():  # RFC 7234 warn-text: a quoted-string
        text = warning.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{text}"')
    return response


def check_fields(target: Target, obj: dict[str, Any], query: Mapping[str, str]) -> list[str]:
    """`fieldValidation`: unknown fields are refused (Strict, 400), warned of (Warn, the
    default: a `Warning` header) or dropped silently (Ignore); pruned in every case."""
    mode = query.get("fieldValidation") or "Warn"
    if mode not in ("Ignore", "Warn", "Strict"):
        raise bad_request(
            f'fieldValidation: Unsupported value: "{mode}": supported values: "Ignore",'
            ' "Strict", "Warn"'
        )
    if mode == "Ignore":
        return []
    unknown = [
        f'unknown field "{path}"'
        for path in schema_for(target.resource.kind).unknown_fields(
            {k: v for k, v in obj.items() if k != "metadata"}
        )
    ]
    if unknown and mode == "Strict":
        kind = target.resource.kind
        raise bad_request(
            f'{kind} in version "{target.version}" cannot be handled as a {kind}: strict'
            " decoding error: " + ", ".join(unknown)
        )
    return unknown


def _encode_continue(resource_version: int, after: tuple[str, str]) -> str:
    raw = json.dumps({"rv": resource_version, "after": list(after)}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), (str(data["after"][0]), str(data["after"][1]))
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error):
        raise bad_request(f"continue key is not valid: {token!r}") from None


class ResourceApi:
    """Serves the verbs on one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, target: Target, request: web.Request) -> web.Response:
        assert target.name is not None and target.namespace is not None
        obj = self.store.get(target.resource, target.namespace, target.name)
        if table := _table(target, request, [obj], {"resourceVersion": _rv(obj)}):
            return reply(table)
        return reply(target.present(obj))

    async def list(self, target: Target, request: web.Request) -> web.Response:
        query = request.query
        selection = ObjectFilter.parse(query.get("labelSelector"), query.get("fieldSelector"))
        parse_resource_version(query.get("resourceVersion"))
        limit = parse_int(query.get("limit"), "limit")
        list_rv = self.store.resource_version
        meta: dict[str, Any] = {}
        after = None
        if token := query.get("continue"):
            list_rv, after = _decode_continue(token)
            if list_rv < self.store.hub.oldest_resumable:
                raise expired(
                    "The provided continue parameter is too old to display a consistent list"
                    " result. You can start a new list without the continue parameter."
                )
        items, more = self.store.page(target.resource, target.namespace, selection, after, limit)
        if more:
            meta["continue"] = _encode_continue(list_rv, _key(items[-1]))
            meta["remainingItemCount"] = more
        meta["resourceVersion"] = str(list_rv)
        if table := _table(target, request, items, meta):
            return reply(table)
        return reply(
            {
                "apiVersion": target.resource.api_version(target.version),
                "kind": f"{target.resource.kind}List",
                "metadata": meta,
                "items": [target.present(o) for o in items],
            }
        )

    async def create(self, target: Target, request: web.Request) -> web.Response:
        if target.namespace is None:
            raise bad_request("a namespaced object must be created in a namespace")
        body = check_type(
            target, decode_body(await request.read(), request.content_type, WRITE_TYPES)
        )
        warnings = check_fields(target, body, request.query)
        created = self.store.create(
            target.resource,
            target.namespace,
            body,
            manager=field_manager(request.query, request.headers.get("User-Agent", "")),
            dry_run=parse_dry_run(request.query),
        )
        return reply(target.present(created), status=201, warnings=warnings)

    async def update(self, target: Target, request: web.Request) -> web.Response:
        assert target.name is not None and target.namespace is not None
        body = check_type(
            target, decode_body(await request.read(), request.content_type, WRITE_TYPES)
        )
        warnings = check_fields(target, body, request.query)
        result = self.store.update(
            target.resource,
            target.namespace,
            target.name,
            body,
            manager=field_manager(request.query, request.headers.get("User-Agent", "")),
            subresource=target.subresource,
            dry_run=parse_dry_run(request.query),
        )
        return reply(
            target.present(result.object),
            status=201 if result.created else 200,
            warnings=warnings,
        )

    async def patch(self, target: Target, request: web.Request) -> web.Response:
        assert target.name is not None and target.namespace is not None
        resource, query = target.resource, request.query
        content_type = request.content_type
        body = decode_body(await request.read(), content_type, resource.patch_types)
        apply = content_type == APPLY_PATCH
        force = query.get("force")
        if force is not None and not apply:
            raise unprocessable(
                'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified'
                " for non-apply patch"
            )
        parse_bool(force, "force")
        if apply and not query.get("fieldManager"):
            raise unprocessable(
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required'
                " for apply patch"
            )
        manager = field_manager(query, request.headers.get("User-Agent", ""))
        dry_run = parse_dry_run(query)
        if apply:
            applied = check_type(target, body)
            warnings = check_fields(target, applied, query)
            result = self.store.apply(
                resource,
                target.namespace,
                target.name,
                applied,
                manager=manager,
                force=parse_bool(force, "force"),
                subresource=target.subresource,
                dry_run=dry_run,
            )
            return reply(
                target.present(result.object),
                status=201 if result.created else 200,
                warnings=warnings,
            )
        current = self.store.find(resource, target.namespace, target.name)
        if current is None:
            raise not_found(resource.group_resource, target.name)
        patched = patch_object(
            content_type, target.present(current), body, merge_schema(resource.kind)
        )
        if not isinstance(patched, dict):
            raise unprocessable("the patched document is not an object")
        patched = check_type(target, patched)
        warnings = check_fields(target, patched, query)
        result = self.store.update(
            resource,
            target.namespace,
            target.name,
            patched,
            manager=manager,
            subresource=target.subresource,
            patched=True,
            dry_run=dry_run,
        )
        return reply(target.present(result.object), warnings=warnings)

    async def delete(self, target: Target, request: web.Request) -> web.Response:
        assert target.name is not None and target.namespace is not None
        preconditions = await _preconditions(request)
        gone = self.store.delete(
            target.resource,
            target.namespace,
            target.name,
            preconditions,
            dry_run=parse_dry_run(request.query),
        )
        if target.resource.custom:
            return reply(target.present(gone))
        return reply(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": target.name,
                    "kind": target.resource.plural,
                    "uid": gone["metadata"].get("uid"),
                },
            }
        )

    async def delete_collection(self, target: Target, request: web.Request) -> web.Response:
        query = request.query
        selection = ObjectFilter.parse(query.get("labelSelector"), query.get("fieldSelector"))
        dry_run = parse_dry_run(query)
        gone = [
            self.store.delete(
                target.resource,
                obj["metadata"].get("namespace", ""),
                obj["metadata"]["name"],
                dry_run=dry_run,
            )
            for obj in self.store.select(target.resource, target.namespace, selection)
        ]
        return reply(
            {
                "apiVersion": target.resource.api_version(target.version),
                "kind": f"{target.resource.kind}List",
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": [target.present(o) for o in gone],
            }
        )


def _rv(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion", ""))


def _table(
    target: Target, request: web.Request, items: list[dict[str, Any]], meta: dict[str, Any]
) -> dict[str, Any] | None:
    """The Table kubectl asks for (None: the client asked for the objects)."""
    version = table_version(request.headers.get("Accept", ""))
    if version is None:
        return None
    return as_table(
        target.resource,
        items,
        [target.present(o) for o in items],
        version=version,
        metadata=meta,
        include_object=request.query.get("includeObject"),
    )


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


async def _preconditions(request: web.Request) -> Preconditions:
    """DeleteOptions.preconditions from the body, if one was sent."""
    raw = await request.read()
    if not raw.strip():
        return Preconditions()
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad_request("the DeleteOptions body could not be decoded") from None
    found = (body or {}).get("preconditions") if isinstance(body, dict) else None
    if not isinstance(found, dict):
        return Preconditions()
    rv = found.get("resourceVersion")
    uid = found.get("uid")
    return Preconditions(uid=str(uid) if uid else None, resource_version=str(rv) if rv else None)
