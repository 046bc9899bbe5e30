"""Every error of the API as JSON: `{"error": "<reason>", "details": …}`.

Handlers raise `HttpProblem` (or let an `ActionError` of the member through);
the `problems` middleware turns those, aiohttp's own HTTP errors (unknown
route, wrong method, body too large) and unexpected exceptions into one JSON
shape. An error answer never follows a change: handlers validate before they
call the member, and the member changes nothing when it raises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web

from gtm.api.views import json_response
from gtm.ha import NotLeader
from gtm.service.actions import ActionError
from intent import IntentError

log = structlog.get_logger("gtm.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpProblem(Exception):
    """An answer other than success, with its reason and details for the client."""

    def __init__(
        self,
        status: int,
        error: str,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.details = details
        self.headers = dict(headers or {})


def problem_response(p: HttpProblem) -> web.Response:
    response = json_response({"error": p.error, "details": p.details}, status=p.status)
    response.headers.update(p.headers)
    return response


def from_action_error(e: ActionError) -> HttpProblem:
    return HttpProblem(e.status, str(e), e.details or None)


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HttpProblem as p:
        return problem_response(p)
    except ActionError as e:
        return problem_response(from_action_error(e))
    except NotLeader as e:  # a standby: say where the leader is, for the client to ask there
        holder = e.holder
        where = {"leader": holder.identity, "address": holder.address} if holder else {}
        return problem_response(HttpProblem(503, str(e), where or None))
    except IntentError as e:  # the durable state refused: say why (ENOSPC, EROFS, corrupt file)
        log.error("api.intent_unavailable", method=request.method, path=request.path, error=str(e))
        cause = getattr(e, "cause", None)
        return problem_response(HttpProblem(503, str(e), {"cause": cause} if cause else None))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        reason = e.reason
        if e.status == 404:
            reason = f"no route {request.method} {request.path}"
        elif e.status == 405:
            reason = f"{request.method} is not allowed on {request.path}"
        headers = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
        return problem_response(HttpProblem(e.status, reason, None, headers))
    except Exception:
        log.exception("api.error", method=request.method, path=request.path)
        return problem_response(HttpProblem(500, "internal error (see the member's log)"))
