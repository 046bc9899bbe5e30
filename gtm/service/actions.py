"""What operators ask a member to do, and what it answers: the runbook's vocabulary.

The HTTP API validates request bodies into these values and hands them to the
member (`Member.act`); the runbook CLI prints the `ActionResult` it gets back, or the refusal's plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gtm.service.action_plan import ActionPlan


@dataclass(frozen=True, slots=True)
class Exit:
    """Take a region out of DNS, then of the mesh (all services, or the listed ones)."""

    region: str
    reason: str
    services: frozenset[str] | None = None
    ticket: str | None = None
    expires_in: float | None = None  # seconds; the exit ends by itself
    force: bool = False  # bypass guardrails and blast-radius limits (`reason` says why)


@dataclass(frozen=True, slots=True)
class Enter:
    """Bring a region back: the mesh first, then DNS, ramping over `ramp` seconds."""

    region: str
    reason: str
    services: frozenset[str] | None = None
    ramp: float | None = None  # None: the policy's ramp
    ticket: str | None = None


@dataclass(frozen=True, slots=True)
class Drain:
    """Take one or more services out of a region."""

    region: str
    services: frozenset[str]
    reason: str
    ticket: str | None = None
    expires_in: float | None = None
    force: bool = False


@dataclass(frozen=True, slots=True)
class Rollout:
    """Hold a region's cells within the policy's rollout bounds for a window."""

    region: str
    window: float  # seconds
    reason: str
    services: frozenset[str] | None = None
    ticket: str | None = None


@dataclass(frozen=True, slots=True)
class Remove:
    """End one override by id (an exit, drain or rollout) before its expiry."""

    override_id: str
    reason: str


Action = Exit | Enter | Drain | Rollout | Remove


@dataclass(frozen=True)
class ActionResult:
    """An action's plan (`ActionPlan`: DNS rows, WLE patches per cluster, share of DNS
    traffic moved, checks), and what became of it: `accepted` — stored, or for a dry
    run, would be — and the intent version it was planned on or stored as."""

    plan: ActionPlan
    accepted: bool
    dry_run: bool
    intent_version: int = 0

    @property
    def override_ids(self) -> tuple[str, ...]:
        return self.plan.override_ids


class ActionError(Exception):
    """An action that cannot be taken; `status` is the HTTP status the API answers."""

    status = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class Refused(ActionError):
    """A guardrail or a blast-radius limit refused the action; nothing changed.

    `result` carries the plan with its checks (`accepted` False)."""

    status = 409

    def __init__(self, message: str, result: ActionResult) -> None:
        super().__init__(message)
        self.result = result


class BadAction(ActionError):
    """The action names an unknown region, service or override."""

    status = 422
