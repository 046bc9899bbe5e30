"""The operator's writes: region exit/enter, drain, rollout, and ending an override.

Each validates its body into an action and hands it to the member, which
plans it and — unless it is a dry run — stores it (the leader only). The
answer is the plan (`views.result_json`), 200 for a dry run that would pass. A
refused action, dry run or not, answers 409 with the refusals (each check's
rule and numbers) and the plan, and changed nothing; a standby answers 503 with the leader's
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
from gtm.api.views import json_response, result_json
from gtm.service.actions import Action, ActionResult, BadAction, Refused, Remove

log = structlog.get_logger("gtm.api")

_BODIES: dict[str, type[ExitBody | EnterBody | DrainBody | RolloutBody]] = {
    "exit": ExitBody,
    "enter": EnterBody,
    "drain": DrainBody,
    "rollout": RolloutBody,
}


async def _act(request: web.Request, action: Action, dry_run: bool) -> web.Response:
    who = grant_of(request).name
    try:
        result = await request.app[MEMBER].act(action, who=who, dry_run=dry_run)
    except BadAction as e:
        if isinstance(action, Remove):
            raise HttpProblem(404, str(e), e.details or None) from None
        raise
    except Refused as e:
        _logged(action, who, e.result)
        doc = result_json(e.result)
        raise HttpProblem(409, str(e), {"refusals": doc["refusals"], "plan": doc}) from None
    _logged(action, who, result)
    return json_response(result_json(result))


def _logged(action: Action, who: str, result: ActionResult) -> None:
    log.info(
        "api.action",
        action=type(action).__name__.lower(),
        who=who,
        region=getattr(action, "region", None),
        accepted=result.accepted,
        dry_run=result.dry_run,
        overrides=list(result.override_ids),
    )


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
    return await _act(request, body.action(request.match_info["id"]), body.dry_run)
