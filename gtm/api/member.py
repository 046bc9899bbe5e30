"""What one running member of an HA pair offers the HTTP API: the API's contract.

The API depends only on this protocol; the composition root above it
(`gtm.member.MemberRuntime`) implements it, and the API's tests run it
against that real member.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

from prometheus_client import CollectorRegistry

from gtm.dns.lookup import Lookup
from gtm.service.actions import Action, ActionResult
from gtm.status import MemberStatus
from intent import AuditPage, IntentState
from policies import Evaluation, Override, WeightTable

MemberRole = Literal["starting", "leader", "standby"]  # (`Role` is a token's role)


class Member(Protocol):
    identity: str  # "dc1-a"
    region: str  # the region it runs in (its vantage)
    registry: CollectorRegistry  # served at /metrics

    def role(self) -> MemberRole: ...

    def ready(self) -> bool:
        """Has a table to serve (readiness)."""
        ...

    def unready(self) -> list[str]:
        """Why it is not ready, one cause a line ([] when ready): `/readyz` says them."""
        ...

    def status(self) -> MemberStatus:
        """What it serves, holds and sees now (`gtm.status.MemberStatus`)."""
        ...

    def table(self) -> WeightTable | None:
        """The table this member's DNS serves now."""
        ...

    def health(self) -> dict[str, Any]:
        """JSON-able health per VIP and per (service, region), with since and reason."""
        ...

    def explain(self, service: str, region: str | None) -> dict[str, Any]:
        """Why `service` (in `region`) stands where it does: every VIP's vantages, the
        cells of its rows and the decision behind each (gtm.service.explain).
        Raises `UnknownService`."""
        ...

    def lookup(self, name: str, subnet: str) -> Lookup | None:
        """What the served table answers clients in `subnet` for `name` (None: no table
        yet). Raises `BadLookup` (`UnknownName` for a name no service answers)."""
        ...

    def intent(self) -> IntentState:
        """The overrides as this member last read them (peers merge this)."""
        ...

    async def history(
        self, limit: int, since: float | None, before: str | None = None
    ) -> AuditPage:
        """A page of the audit, newest first; `before` is a page's `next` (raises
        `BadCursor` for one the audit did not hand out)."""
        ...

    def observations(self, since: int, limit: int) -> tuple[list[list[Any]], int]:
        """This member's own probe results after cursor `since`, as compact rows
        `[target_id, ok, latency, wall, reason]`, and the next cursor (peer exchange)."""
        ...

    def what_if(self, overrides: Sequence[Override]) -> Evaluation:
        """The table these extra overrides would give now, changing nothing."""
        ...

    async def act(self, action: Action, *, who: str, dry_run: bool) -> ActionResult:
        """Plan an operator action and, unless `dry_run`, store it (leader only).

        Raises `NotLeader`, `Refused` or `BadAction` (gtm.service.actions)."""
        ...
