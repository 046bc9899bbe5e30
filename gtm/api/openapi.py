"""`GET /v1/openapi.json`: the API's OpenAPI 3.1 document, built from the routes themselves.

    doc = document(ROUTES)            # a dict; served as JSON, built once per route table

Each route of `app.ROUTES` (method, path, handler, role) is described by its
handler's `Operation` in `OPERATIONS`: a summary, the query model or body model the
handler parses (`bodies`), the type of its answer (`schemas`), and the errors it
answers besides those every route of its kind answers (400 for a bad query or body,
401 without a token, 403 for too low a role, 413 for a body over `MAX_BODY`). A route
whose handler has no `Operation` is an error naming it: no route goes undocumented.

`components.schemas` are pydantic's JSON Schemas of those types, requests as pydantic
validates them, answers as they are written, their `$defs` hoisted into one set of
components; a query model's fields become the query parameters. The security is one
bearer scheme, asked of every route with a role (`x-gtm-role` names it) and of none
of the open ones.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from gtm.api import reads, writes
from gtm.api.bodies import (
    MAX_BODY,
    AnswerQuery,
    Body,
    DrainBody,
    EnterBody,
    ExitBody,
    ExplainQuery,
    HistoryQuery,
    ObservationsQuery,
    PlanBody,
    Query,
    RemoveBody,
    RolloutBody,
    TableQuery,
)
from gtm.api.errors import Handler
from gtm.api.schemas import (
    ActionResultJson,
    Alive,
    ExplainJson,
    HealthJson,
    HistoryJson,
    IntentStateJson,
    LookupJson,
    ObservationsJson,
    OpenApiJson,
    PlanJson,
    Problem,
    Ready,
    RefusedProblem,
    WeightTableJson,
)
from gtm.api.tokens import Role
from gtm.status import MemberStatus

OPENAPI = "3.1.0"
JSON = "application/json"
REF = "#/components/schemas/{model}"

Route = tuple[str, str, Handler, Role | None]


@dataclass(frozen=True)
class Operation:
    """What one handler takes and answers (see the module doc).

    `errors`: status -> when it is answered, for the errors of this handler's own;
    a tuple `(when, type)` when the problem's details have a shape of their own.
    """

    summary: str
    answers: Any  # the type of the 200 answer
    query: type[Query] | None = None
    body: type[Body] | None = None
    errors: Mapping[int, str | tuple[str, Any]] = field(default_factory=dict)
    path: Mapping[str, str] = field(default_factory=dict)  # path parameter -> what it is
    media_type: str = JSON
    description: str | None = None


class UndocumentedRoute(LookupError):
    """Routes whose handler has no `Operation` (or whose path parameters it does not name)."""


_NOT_LEADER = (
    "a standby, or a member still starting: `details` names the leader and its address "
    "to ask there; or the intent store refused to store (`details.cause`)"
)
_UNKNOWN = "it names an unknown region or service, or an enter has nothing to end"
_REFUSED = (
    "a guardrail or a blast-radius limit refused it (a dry run too): `details` holds the "
    "failed checks with their numbers and the plan; nothing changed",
    RefusedProblem,
)
_WRITE_ERRORS: Mapping[int, str | tuple[str, Any]] = {
    409: _REFUSED,
    422: _UNKNOWN,
    503: _NOT_LEADER,
}
_WRITE = (
    "Plans the action and, unless `dry_run`, stores it (the leader only). Answers the plan: "
    "the DNS rows that change, the WorkloadEntry changes per cluster, the share of DNS "
    "traffic moved and every check with its numbers."
)


async def openapi_json(request: web.Request) -> web.Response:
    """This document, built on first use (in a thread: some 60 ms the loop need not wait)."""
    routes = request.app[ROUTE_TABLE]
    body = _built.get(routes)
    if body is None:
        body = await asyncio.to_thread(_encoded, routes)
    return web.Response(body=body, content_type=JSON)


ROUTE_TABLE = web.AppKey("route_table", tuple[Route, ...])
_built: dict[tuple[Route, ...], bytes] = {}

OPERATIONS: Mapping[Handler, Operation] = {
    openapi_json: Operation(
        "This document: the API in OpenAPI 3.1, built from its routes and models", OpenApiJson
    ),
    reads.healthz: Operation("The process is alive and its loop answers", Alive),
    reads.readyz: Operation(
        "The member has a table to serve (a standby too)",
        Ready,
        errors={503: "not ready: `details.causes` says why, one cause a line"},
    ),
    reads.metrics: Operation(
        "Prometheus metrics",
        str,
        media_type="text/plain",
        description="The Prometheus text exposition format (version 0.0.4).",
    ),
    reads.status: Operation(
        "What this member serves, holds and sees now (`gtm status`, `--wait`)", MemberStatus
    ),
    reads.table: Operation(
        "The weight table this member's DNS serves",
        WeightTableJson,
        query=TableQuery,
        errors={404: "no service of a name in `service`", 503: "no table yet"},
    ),
    reads.health: Operation(
        "Health for traffic of every VIP and every service's region", HealthJson
    ),
    reads.overrides: Operation(
        "The intent: the overrides in force and the ended ones (what peers merge)",
        IntentStateJson,
    ),
    reads.history: Operation(
        "A page of the audit, newest first (`gtm history`)",
        HistoryJson,
        query=HistoryQuery,
        errors={400: "a bad query, or a `before` the audit did not hand out"},
    ),
    reads.observations: Operation(
        "This member's own probe results after a cursor (peers' quorum)",
        ObservationsJson,
        query=ObservationsQuery,
    ),
    reads.explain: Operation(
        "Why a service stands where it does: its VIPs' vantages, its cells, their decisions",
        ExplainJson,
        query=ExplainQuery,
        errors={404: "no such service, or none of its VIPs in `region`"},
    ),
    reads.answer: Operation(
        "What the served table answers clients in a subnet for a name, and from which row",
        LookupJson,
        query=AnswerQuery,
        errors={
            400: "a bad query, or `subnet` is not a subnet",
            404: "no service answers `name`",
            503: "no table yet",
        },
    ),
    reads.plan: Operation(
        "The table these what-if overrides would give now; changes nothing (`gtm plan`)",
        PlanJson,
        body=PlanBody,
    ),
    writes.exit_region: Operation(
        "Take a region (or some of its services) out of DNS, then the mesh",
        ActionResultJson,
        body=ExitBody,
        errors=_WRITE_ERRORS,
        description=_WRITE,
    ),
    writes.enter_region: Operation(
        "End a region's exits (and named services' drains): the mesh first, then DNS ramps",
        ActionResultJson,
        body=EnterBody,
        errors=_WRITE_ERRORS,
        description=_WRITE,
    ),
    writes.drain: Operation(
        "Take some services of a region out",
        ActionResultJson,
        body=DrainBody,
        errors=_WRITE_ERRORS,
        description=_WRITE,
    ),
    writes.rollout: Operation(
        "Hold a region's cells within the policy's rollout bounds for a window",
        ActionResultJson,
        body=RolloutBody,
        errors=_WRITE_ERRORS,
        description=_WRITE,
    ),
    writes.remove_override: Operation(
        "End an override in force before its expiry",
        ActionResultJson,
        body=RemoveBody,
        errors={
            404: "no override of that id is in force",
            409: _REFUSED,
            503: _NOT_LEADER,
        },
        path={"id": "the override's id, as `gtm override list` shows it"},
        description=_WRITE,
    ),
}


def _encoded(routes: tuple[Route, ...]) -> bytes:
    body = _built.get(routes)
    if body is None:
        body = _built[routes] = json.dumps(document(routes), separators=(",", ":")).encode()
    return body


def document(routes: Sequence[Route]) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of `routes`; raises `UndocumentedRoute` naming every gap."""
    gaps = [gap for m, p, h, _ in routes if (gap := _gap(m, p, h)) is not None]
    if gaps:
        raise UndocumentedRoute("; ".join(gaps))
    schemas, components = _schemas(OPERATIONS[h] for _, _, h, _ in routes)
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler, role in routes:
        paths.setdefault(path, {})[method.lower()] = _path_item(
            handler, role, OPERATIONS[handler], schemas
        )
    return {
        "openapi": OPENAPI,
        "info": {
            "title": "gtm member API",
            "version": _version(),
            "description": (
                "The HTTP API of one gtm member. Reads need a viewer token (peers' routes a "
                "peer token too), writes an operator token, sent as `Authorization: Bearer "
                "<token>`; `/healthz`, `/readyz`, `/metrics` and this document need none. "
                "Every error answers `{error, details}` as JSON."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token of the member's token book; its role is what "
                    "`x-gtm-role` of an operation needs (operator > viewer > peer).",
                }
            },
        },
    }


def _gap(method: str, path: str, handler: Handler) -> str | None:
    """Why the route cannot be documented, or None."""
    where = f"{method} {path} ({handler.__module__}.{handler.__qualname__})"
    op = OPERATIONS.get(handler)
    if op is None:
        return f"{where} has no Operation in gtm.api.openapi.OPERATIONS"
    named = sorted(re.findall(r"\{(\w+)(?::[^}]*)?\}", path))
    if named != sorted(op.path):
        return f"{where}: path parameters {named}, but its Operation describes {sorted(op.path)}"
    return None


def _key(t: Any) -> str:
    return f"{getattr(t, '__module__', '')}.{getattr(t, '__qualname__', repr(t))}"


def _schemas(ops: Iterable[Operation]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The schema (a `$ref` mostly) of every type the operations name, by `_key`, and the
    components they refer to."""
    inputs: dict[str, tuple[str, Any]] = {_key(Problem): ("serialization", Problem)}
    for op in ops:
        if op.media_type == JSON:
            inputs[_key(op.answers)] = ("serialization", op.answers)
        if op.body is not None:
            inputs[_key(op.body)] = ("validation", op.body)
        for answer in op.errors.values():
            if isinstance(answer, tuple):
                inputs[_key(answer[1])] = ("serialization", answer[1])
    found, defs = TypeAdapter.json_schemas(
        [(key, mode, TypeAdapter(t)) for key, (mode, t) in inputs.items()], ref_template=REF
    )
    return {key: schema for (key, _), schema in found.items()}, dict(defs.get("$defs", {}))


def _path_item(
    handler: Handler, role: Role | None, op: Operation, schemas: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "operationId": handler.__name__,
        "summary": op.summary,
        "tags": [role or "open"],
        "security": [] if role is None else [{"bearer": []}],
    }
    if op.description:
        item["description"] = op.description
    if role is not None:
        item["x-gtm-role"] = role
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": what,
            "schema": {"type": "string"},
        }
        for name, what in op.path.items()
    ]
    if op.query is not None:
        parameters += _query_parameters(op.query)
    if parameters:
        item["parameters"] = parameters
    if op.body is not None:
        item["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": schemas[_key(op.body)]}},
        }
    ok: dict[str, Any] = {"description": op.summary}
    if op.media_type == JSON:
        ok["content"] = {JSON: {"schema": schemas[_key(op.answers)]}}
    else:
        ok["content"] = {op.media_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {"200": ok}
    for status, answer in sorted(_errors(role, op).items()):
        when, shape = answer if isinstance(answer, tuple) else (answer, Problem)
        responses[str(status)] = {
            "description": when,
            "content": {JSON: {"schema": schemas[_key(shape)]}},
        }
    item["responses"] = responses
    return item


def _errors(role: Role | None, op: Operation) -> dict[int, str | tuple[str, Any]]:
    errors: dict[int, str | tuple[str, Any]] = {}
    if op.query is not None:
        errors[400] = "a bad query: `details.fields` lists every problem, each with its field"
    if op.body is not None:
        errors[400] = (
            "a bad body: not a JSON object, or `details.fields` lists every problem, each "
            "with its field"
        )
        errors[413] = f"the body is over {MAX_BODY / 2**20:g} MiB"
    if role is not None:
        errors[401] = "no token, a malformed Authorization header, or an unknown token"
    if role in ("viewer", "operator"):
        errors[403] = f"the token's role is below {role}"
    return {**errors, **op.errors}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One query parameter per field of `model`: a list field repeats (`?a=1&a=2`)."""
    schema = model.model_json_schema(ref_template=REF)
    if "$defs" in schema:  # a query parameter refers to nothing
        raise TypeError(f"{model.__name__}: a query field refers to {sorted(schema['$defs'])}")
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        prop = _without_null(prop)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in prop:
            parameter["description"] = prop.pop("description")
        parameter["schema"] = prop
        if prop.get("type") == "array":
            parameter["style"], parameter["explode"] = "form", True
        out.append(parameter)
    return out


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent rather than null: `X | None` is `X`."""
    prop = {k: v for k, v in prop.items() if k != "title" and not (k == "default" and v is None)}
    choices = [c for c in prop.get("anyOf", ()) if c != {"type": "null"}]
    if "anyOf" in prop and len(choices) == 1:
        del prop["anyOf"]
        prop = {**choices[0], **prop}
    return prop


def _version() -> str:
    try:
        return metadata.version("gtm-failover")
    except metadata.PackageNotFoundError:
        return "0"
