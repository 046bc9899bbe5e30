"""Who is asking: the bearer token, checked against the token book before any handler runs.

Each route names the role it needs (None: open, for the kubelet's probes
and Prometheus). Anything else — unknown routes included — needs a token,
so the route list itself is not open to strangers. The token is read from
`Authorization: Bearer <token>` only (never a query string, which ends up
in logs) and is never logged; the request carries the token's `Grant`.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from aiohttp.web import AbstractRoute

from gtm.api.errors import Handler, HttpProblem
from gtm.api.tokens import Grant, Role, TokenBook

TOKENS = web.AppKey("tokens", TokenBook)
ROUTE_ROLES = web.AppKey("route_roles", dict[AbstractRoute, Role | None])
GRANT = web.RequestKey("grant", Grant)  # the caller's grant, once authenticated

_CHALLENGE = 'Bearer realm="gtm"'


def grant_of(request: web.Request) -> Grant:
    grant = request.get(GRANT)
    if grant is None:  # a route without a role never asks
        raise RuntimeError(f"{request.path} is served without authentication")
    return grant


def needed_role(request: web.Request, roles: Mapping[AbstractRoute, Role | None]) -> Role | None:
    route = request.match_info.route
    return roles[route] if route in roles else "viewer"


def _token(request: web.Request) -> str:
    header = request.headers.get("Authorization")
    if header is None:
        raise HttpProblem(
            401,
            "no token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": _CHALLENGE},
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise HttpProblem(
            401,
            "malformed Authorization header: expected 'Bearer <token>'",
            headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_request"'},
        )
    return token


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    needed = needed_role(request, request.app[ROUTE_ROLES])
    if needed is None:
        return await handler(request)
    grant = request.app[TOKENS].lookup(_token(request))
    if grant is None:
        raise HttpProblem(
            401,
            "unknown token",
            headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
        )
    request[GRANT] = grant
    if not grant.allows(needed):
        raise HttpProblem(
            403,
            f"token {grant.name!r} has role {grant.role}; this needs {needed}",
            {"who": grant.name, "role": grant.role, "needs": needed},
        )
    return await handler(request)
