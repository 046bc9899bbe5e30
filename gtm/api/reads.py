"""Routes that change nothing: probes, metrics, and the member's views for viewers and peers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gtm.api.auth import grant_of
from gtm.api.bodies import (
    AnswerQuery,
    ExplainQuery,
    HistoryQuery,
    ObservationsQuery,
    PlanBody,
    TableQuery,
    json_body,
    parse,
    parse_query,
)
from gtm.api.errors import HttpProblem
from gtm.api.member import Member
from gtm.api.views import json_built_aside, json_response, plan_json, table_json, unknown
from gtm.dns.lookup import BadLookup, UnknownName
from gtm.service.explain import UnknownService
from intent import BadCursor

MEMBER = web.AppKey("member", Member)
CLOCK = web.AppKey("clock", Callable[[], float])


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its loop answers."""
    return json_response({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    """Has a table to serve; leadership does not matter (a standby serves DNS too)."""
    member = request.app[MEMBER]
    causes = member.unready()
    if causes:
        detail = {"role": member.role(), "causes": causes}
        raise HttpProblem(503, f"not ready: {'; '.join(causes)}", detail)
    return json_response({"ready": True, "role": member.role()})


async def metrics(request: web.Request) -> web.Response:
    # tens of thousands of series at 4,000 services: Python work that would hold the loop
    # for a tenth of a second; in a thread, the loop runs every switch interval. The
    # metrics lock what they export, and the DNS collectors read values the loop replaces
    # whole, never changes in place.
    body = await asyncio.to_thread(generate_latest, request.app[MEMBER].registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def status(request: web.Request) -> web.Response:
    return json_response(request.app[MEMBER].status().to_json())


async def table(request: web.Request) -> web.Response:
    query = parse_query(TableQuery, request.query, many=("service",))
    current = request.app[MEMBER].table()
    if current is None:
        raise HttpProblem(503, "no table yet")
    services = query.services()
    missing = unknown(services, current.rows)
    if missing:
        raise HttpProblem(404, f"no service named {', '.join(missing)}", {"services": missing})
    return await json_built_aside(lambda: table_json(current, services))


async def health(request: web.Request) -> web.Response:
    return json_response(request.app[MEMBER].health())


async def explain(request: web.Request) -> web.Response:
    """Why a service stands where it does: its VIPs' vantages, its cells, their decisions."""
    query = parse_query(ExplainQuery, request.query)
    try:
        doc = request.app[MEMBER].explain(query.service, query.region)
    except UnknownService as e:
        raise HttpProblem(404, str(e)) from None
    return json_response(doc)


async def answer(request: web.Request) -> web.Response:
    """What the served table answers a client subnet for a name, and from which row."""
    query = parse_query(AnswerQuery, request.query)
    try:
        found = request.app[MEMBER].lookup(query.name, query.subnet)
    except UnknownName as e:
        raise HttpProblem(404, str(e)) from None
    except BadLookup as e:
        raise HttpProblem(400, str(e)) from None
    if found is None:
        raise HttpProblem(503, "no table yet")
    return json_response(found.to_json())


async def overrides(request: web.Request) -> web.Response:
    """The intent state as this member holds it: peers merge it (anti-entropy)."""
    return await json_built_aside(request.app[MEMBER].intent().to_dict)


async def history(request: web.Request) -> web.Response:
    query = parse_query(HistoryQuery, request.query)
    try:
        page = await request.app[MEMBER].history(query.limit, query.since, query.before)
    except BadCursor as e:
        raise HttpProblem(400, str(e)) from None
    return await json_built_aside(
        lambda: {"entries": [e.to_dict() for e in page], "next": page.next}
    )


async def observations(request: web.Request) -> web.Response:
    """This member's own probe results after a cursor, for its peers' quorum."""
    query = parse_query(ObservationsQuery, request.query)
    rows, cursor = request.app[MEMBER].observations(query.since, query.limit)
    return await json_built_aside(lambda: {"observations": rows, "next": cursor})


async def plan(request: web.Request) -> web.Response:
    """What the table would be with these extra overrides; changes nothing."""
    body = parse(PlanBody, await json_body(request))
    member = request.app[MEMBER]
    base = member.table()
    evaluation = member.what_if(body.what_if(grant_of(request).name, request.app[CLOCK]()))
    return await json_built_aside(lambda: plan_json(evaluation, base))
