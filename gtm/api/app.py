"""The HTTP API of one member: its routes, who may call them, and the middleware chain.

    app = make_app(member, TokenBook.from_file("tokens.yaml"), registry=member.registry)
    async with serve_api(app, "127.0.0.1:8080", tls) as served:
        ...

Middleware, outermost first: the access log (sees every final status), the
problem mapper (every error becomes JSON), authentication (token -> grant,
role check), then the handler.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web import AbstractRoute
from prometheus_client import CollectorRegistry

from gtm.api import openapi, reads, writes
from gtm.api.access_log import API_METRICS, ApiMetrics, access_log
from gtm.api.auth import ROUTE_ROLES, TOKENS, authenticate
from gtm.api.bodies import MAX_BODY
from gtm.api.errors import problems
from gtm.api.member import Member
from gtm.api.reads import CLOCK, MEMBER
from gtm.api.tokens import Role, TokenBook

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# method, path, handler, role needed (None: open to the kubelet, Prometheus and whoever
# reads the API's description; peer: what members pull from each other, which viewers and
# operators may read too). Each handler is described in `openapi.OPERATIONS`.
ROUTES: tuple[tuple[str, str, Handler, Role | None], ...] = (
    ("GET", "/healthz", reads.healthz, None),
    ("GET", "/readyz", reads.readyz, None),
    ("GET", "/metrics", reads.metrics, None),
    ("GET", "/v1/openapi.json", openapi.openapi_json, None),
    ("GET", "/v1/status", reads.status, "peer"),
    ("GET", "/v1/table", reads.table, "viewer"),
    ("GET", "/v1/health", reads.health, "viewer"),
    ("GET", "/v1/overrides", reads.overrides, "peer"),
    ("GET", "/v1/history", reads.history, "viewer"),
    ("GET", "/v1/observations", reads.observations, "peer"),
    ("GET", "/v1/explain", reads.explain, "viewer"),
    ("GET", "/v1/answer", reads.answer, "viewer"),
    ("POST", "/v1/plan", reads.plan, "viewer"),
    ("POST", "/v1/region/exit", writes.exit_region, "operator"),
    ("POST", "/v1/region/enter", writes.enter_region, "operator"),
    ("POST", "/v1/drain", writes.drain, "operator"),
    ("POST", "/v1/rollout", writes.rollout, "operator"),
    ("DELETE", "/v1/overrides/{id}", writes.remove_override, "operator"),
)


def make_app(
    member: Member,
    tokens: TokenBook,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The API of `member`; its request metrics go to `registry` (default: the member's).

    `clock` dates what-if overrides of `POST /v1/plan`.
    """
    app = web.Application(
        middlewares=[access_log, problems, authenticate], client_max_size=MAX_BODY
    )
    app[MEMBER] = member
    app[TOKENS] = tokens
    app[CLOCK] = clock
    app[openapi.ROUTE_TABLE] = ROUTES
    app[API_METRICS] = ApiMetrics(registry if registry is not None else member.registry)
    roles: dict[AbstractRoute, Role | None] = {}
    for method, path, handler, role in ROUTES:
        route = app.router.add_route(method, path, handler)
        roles[route] = role
        if method == "GET":  # aiohttp answers HEAD on GET routes; same role
            roles[app.router.add_route("HEAD", path, handler)] = role
    app[ROUTE_ROLES] = roles
    return app
