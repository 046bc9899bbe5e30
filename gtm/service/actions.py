"""What operators ask a member to do, and what it answers: the runbook's vocabulary.

The HTTP API validates request bodies into these values and hands them to the
member (`Member.act`); the runbook CLI prints the `ActionResult` it gets back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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
    """The plan of an action and whether it was accepted.

    `dns` lists the DNS rows that change (service, source, old -> new weights);
    `mesh` the WorkloadEntry patches per cluster (as printable lines), and
    `moved_share` the share of DNS traffic the change moves. A refused action
    carries the refusals and changed nothing.
    """

    accepted: bool
    dry_run: bool
    override_ids: tuple[str, ...] = ()
    dns: tuple[Mapping[str, Any], ...] = ()
    mesh: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    moved_share: float = 0.0
    refusals: tuple[Mapping[str, Any], ...] = ()
    message: str = ""
    intent_version: int = 0


class ActionError(Exception):
    """An action that cannot be taken; `status` is the HTTP status the API answers."""

    status = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class NotLeader(ActionError):
    """Writes go to the leader; `leader` / `address` say where it is, when known."""

    status = 503


class Refused(ActionError):
    """A guardrail or the blast-radius limit refused the action; nothing changed."""

    status = 409


class BadAction(ActionError):
    """The action names an unknown region, service or override."""

    status = 422
