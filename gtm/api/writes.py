"""The operator's writes: region exit/enter, drain, rollout, and ending an override.

Each validates its body into an action and hands it to the member, which
plans it and — unless it is a dry run — stores it (the leader only). The
answer is the plan (`views.result_json`). A refused action answers 409 with
the refusals and changed nothing; a standby answers 503 with the leader's
identity and address, so the client can ask there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from gtm.api.auth import grant_of
from gtm.api.bodies import (
    DrainBody,
    EnterBody,
    ExitBody,
    RemoveBody,
    RolloutBody,
    json_body,
    parse,
)
from gtm.api.errors import HttpProblem
from gtm.api.reads import MEMBER
from gtm.api.views import json_response, refused_reason, result_json
from gtm.service.actions import Action, BadAction, Remove

log = structlog.get_logger("gtm.api")

_BODIES: dict[str, type[ExitBody | EnterBody | DrainBody | RolloutBody]] = {
    "exit": ExitBody,
    "enter": EnterBody,
    "drain": DrainBody,
    "rollout": RolloutBody,
}


async def _act(request: web.Request, action: Action, dry_run: bool) -> web.Response:
    who = grant_of(request).name
    kind = type(action).__name__.lower()
    try:
        result = await request.app[MEMBER].act(action, who=who, dry_run=dry_run)
    except BadAction as e:
        if isinstance(action, Remove):
            raise HttpProblem(404, str(e), e.details or None) from None
        raise
    doc = result_json(result)
    log.info(
        "api.action",
        action=kind,
        who=who,
        region=getattr(action, "region", None),
        accepted=result.accepted,
        dry_run=result.dry_run,
        overrides=list(result.override_ids),
    )
    if not result.accepted:
        raise HttpProblem(409, refused_reason(result), {"refusals": doc["refusals"], "plan": doc})
    return json_response(doc)


def _write(kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    model = _BODIES[kind]

    async def handler(request: web.Request) -> web.Response:
        body = parse(model, await json_body(request))
        return await _act(request, body.action(), body.dry_run)

    handler.__name__ = handler.__qualname__ = f"post_{kind}"
    return handler


exit_region = _write("exit")
enter_region = _write("enter")
drain = _write("drain")
rollout = _write("rollout")


async def remove_override(request: web.Request) -> web.Response:
    body = parse(RemoveBody, await json_body(request))
    return await _act(request, body.action(request.match_info["id"]), False)
