"""Operator actions of a drill, posted to the API as the runbook CLI posts them.

    runbook = Runbook(["http://127.0.0.1:8080", …], token)
    outcome = await runbook.act(step, reason)      # exit, enter, drain, rollout, remove
    leader = await runbook.leader_of("dc1", members)

The same bodies as `gtm region exit|enter`, `gtm drain`, `POST /v1/rollout`,
through the runbook's own client (`gtm.client.http.ApiClient`: a standby's
503 is followed to the leader once). The first member that answers at all
takes the action: a killed member is skipped, as an operator would retry
another one. A refusal (409) is an outcome, not an error: the drill says
whether it expected one, and which guardrail rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaos.drills.facts import MemberEndpoint
from chaos.drills.steps import (
    Action,
    DrainAction,
    RegionEnter,
    RegionExit,
    RemoveAction,
    RolloutAction,
)
from gtm.client.http import ApiClient, ApiError, Connection


@dataclass(frozen=True)
class ActionOutcome:
    status: int  # HTTP status (0: no member answered)
    accepted: bool
    override_ids: tuple[str, ...] = ()
    rule: str | None = None  # the first refusal's guardrail rule
    message: str = ""
    server: str = ""


def body_of(step: Action, reason: str) -> tuple[str, str, dict[str, Any]]:
    """Method, path and body of an action (the override to remove comes later)."""
    common: dict[str, Any] = {"reason": reason}
    if step.ticket:
        common["ticket"] = step.ticket
    if isinstance(step, RegionExit):
        body = {"region": step.region, "services": step.services, "force": step.force}
        body["expires_in"] = step.expires_in
        return "POST", "/v1/region/exit", _clean({**body, **common})
    if isinstance(step, RegionEnter):
        body = {"region": step.region, "services": step.services, "ramp": step.ramp}
        return "POST", "/v1/region/enter", _clean({**body, **common})
    if isinstance(step, DrainAction):
        body = {"region": step.region, "services": step.services, "force": step.force}
        body["expires_in"] = step.expires_in
        return "POST", "/v1/drain", _clean({**body, **common})
    if isinstance(step, RolloutAction):
        body = {"region": step.region, "window": step.window, "services": step.services}
        return "POST", "/v1/rollout", _clean({**body, **common})
    if isinstance(step, RemoveAction):
        return "DELETE", "/v1/overrides/{id}", {"reason": reason}
    raise TypeError(f"not an operator action: {type(step).__name__}")


def _clean(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None and v is not False}


class Runbook:
    def __init__(self, servers: Sequence[str], token: str, *, ca_file: str | None = None) -> None:
        self.servers = [s.rstrip("/") for s in servers]
        self._token = token
        self._ca_file = ca_file

    def _client(self, server: str) -> ApiClient:
        return ApiClient(Connection(server, self._token, self._ca_file, "drill"), timeout=5.0)

    async def act(
        self, step: Action, reason: str, *, override_id: str | None = None
    ) -> ActionOutcome:
        method, path, body = body_of(step, reason)
        if override_id is not None:
            path = path.replace("{id}", override_id)
        last = ActionOutcome(0, False, message="no member to ask")
        for server in self.servers:
            async with self._client(server) as api:
                try:
                    doc = await api.write(method, path, body)
                except ApiError as e:
                    last = _refusal(e, server)
                    if e.status == 0:
                        continue  # gone: ask the next one
                    return last
            return ActionOutcome(
                200,
                bool(doc.get("accepted")),
                tuple(doc.get("override_ids", ())),
                message=str(doc.get("message") or ""),
                server=api.base,
            )
        return last

    async def statuses(self, members: Sequence[MemberEndpoint]) -> dict[str, dict[str, Any]]:
        """The status of each member that answers (viewer or operator token)."""

        async def one(m: MemberEndpoint) -> tuple[str, dict[str, Any] | None]:
            async with self._client(m.api) as api:
                try:
                    return m.name, await api.get("/v1/status")
                except ApiError:
                    return m.name, None

        got = await asyncio.gather(*(one(m) for m in members))
        return {name: doc for name, doc in got if doc is not None}

    async def leader_of(self, region: str, members: Sequence[MemberEndpoint]) -> str | None:
        """The member of `region` that says it leads (asked over the API)."""
        mine = [m for m in members if m.region == region]
        for name, doc in (await self.statuses(mine)).items():
            if doc.get("role") == "leader":
                return name
        return None


def _refusal(e: ApiError, server: str) -> ActionOutcome:
    details = e.details if isinstance(e.details, dict) else {}
    refusals = details.get("refusals") or []
    rule = next((str(r.get("rule")) for r in refusals if isinstance(r, dict)), None)
    return ActionOutcome(e.status, False, rule=rule, message=e.error, server=server)
