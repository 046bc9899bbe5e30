"""The append-only history of operator intent: accepted, refused, entered, removed, expired.

Entries are values. `transitions(before, after)` derives them from a store
write (the stores record them after each write they make); refusals come from
the operator actions (`gtm.service.operations`), which record one
`AuditEntry.refused(...)` per refused action: its plan's first failed rule, and
every reason. Entries derived from a state have ids made of their action and
the override's id, so recording one change twice (a
retried request, two members recording the same merge) can be recognised.

`FileAudit` is the embedded default: JSON Lines, each append one fsynced
`O_APPEND` write, with no lock: concurrent appenders do not interleave, and a
member paused mid-append blocks no other. An append that fails part-way (a
full disk) is cut back, so no torn line stays, and raises `StoreUnavailable`
naming the errno and the file. The ConfigMap backend lives in
`configmap_audit`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import structlog

from failover.intent.atomic_file import OS_DISK, Appended, Disk, append_lines, read_bytes, withdraw
from failover.intent.codec import override_from_dict, override_to_dict
from failover.intent.errors import StoreUnavailable
from failover.intent.state import Ending, IntentState, Tombstone
from policies.guardrails import Refusal
from policies.overrides import Kind, Override

log = structlog.get_logger(__name__)


class Action(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    ENTERED = "entered"
    REMOVED = "removed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    action: Action
    at: float  # when it happened (the override's creation, the tombstone's time)
    override_id: str
    who: str  # who did it ("gtm" for an expiry)
    why: str
    what: str  # the override, for people
    ticket: str | None = None
    rule: str | None = None  # refused: the guardrail's rule
    override: Override | None = None  # the override itself, when known

    @classmethod
    def accepted(cls, o: Override) -> AuditEntry:
        action = Action.ENTERED if o.kind is Kind.ENTER else Action.ACCEPTED
        return cls(
            id=f"{action.value}:{o.id}",
            action=action,
            at=o.created,
            override_id=o.id,
            who=o.who,
            why=o.why,
            what=o.describe(),
            ticket=o.ticket,
            override=o,
        )

    @classmethod
    def ended(cls, t: Tombstone, o: Override | None) -> AuditEntry:
        action = Action.EXPIRED if t.ending is Ending.EXPIRED else Action.REMOVED
        why = t.why if t.ending is not Ending.ENTERED else f"closed by {t.by}: {t.why}"
        return cls(
            id=f"{action.value}:{t.id}",
            action=action,
            at=t.when,
            override_id=t.id,
            who=t.who,
            why=why,
            what=o.describe() if o is not None else f"override {t.id}",
            ticket=o.ticket if o is not None else None,
            override=o,
        )

    @classmethod
    def refused(cls, o: Override, refusal: Refusal, at: float) -> AuditEntry:
        return cls(
            id=f"refused:{o.id}:{refusal.rule}:{at!r}",
            action=Action.REFUSED,
            at=at,
            override_id=o.id,
            who=o.who,
            why=refusal.message,
            what=o.describe(),
            ticket=o.ticket,
            rule=refusal.rule,
            override=o,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action.value,
            "at": self.at,
            "override_id": self.override_id,
            "who": self.who,
            "why": self.why,
            "what": self.what,
            "ticket": self.ticket,
            "rule": self.rule,
            "override": None if self.override is None else override_to_dict(self.override),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AuditEntry:
        try:
            o = d.get("override")
            return cls(
                id=str(d["id"]),
                action=Action(d["action"]),
                at=float(d["at"]),
                override_id=str(d["override_id"]),
                who=str(d["who"]),
                why=str(d["why"]),
                what=str(d["what"]),
                ticket=d.get("ticket"),
                rule=d.get("rule"),
                override=None if o is None else override_from_dict(o),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not an audit entry: {e!r}") from e

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


def transitions(before: IntentState, after: IntentState) -> list[AuditEntry]:
    """The entries for the change from `before` to `after`, in the order they happened."""
    entries = [
        AuditEntry.accepted(o)
        for key, o in after.overrides.items()
        if key not in before.overrides and key not in before.tombstones
    ]
    entries += [
        AuditEntry.ended(t, before.overrides.get(key))
        for key, t in after.tombstones.items()
        if key not in before.tombstones
    ]
    first = (Action.ACCEPTED, Action.ENTERED)
    return sorted(entries, key=lambda e: (e.at, e.action not in first, e.override_id))


class AuditLog(Protocol):
    async def append(self, entries: Sequence[AuditEntry]) -> None: ...

    async def history(self, limit: int = 100, since: float | None = None) -> list[AuditEntry]:
        """The newest `limit` entries at or after `since`, newest first."""
        ...


def newest_first(
    entries: Sequence[AuditEntry], limit: int, since: float | None
) -> list[AuditEntry]:
    """`entries` in append order -> the history's answer."""
    if limit <= 0:
        return []
    picked = [e for e in reversed(entries) if since is None or e.at >= since]
    return picked[:limit]


class FileAudit:
    """JSON Lines in one local file. It only grows: rotate it with the state directory's
    backups (a real deployment also ships the `intent.*` log events)."""

    def __init__(self, path: Path | str, disk: Disk = OS_DISK) -> None:
        self.path = Path(path)
        self.disk = disk

    async def append(self, entries: Sequence[AuditEntry]) -> None:
        if entries:
            await asyncio.to_thread(self.append_now, entries)

    async def history(self, limit: int = 100, since: float | None = None) -> list[AuditEntry]:
        return newest_first(await asyncio.to_thread(self._read), limit, since)

    def append_now(self, entries: Sequence[AuditEntry]) -> Appended:
        """Append in this thread (one O_APPEND write: appenders do not interleave)."""
        try:
            return append_lines(self.path, [e.to_json().encode() for e in entries], self.disk)
        except OSError as error:
            raise StoreUnavailable.from_os("append to the audit", self.path, error) from error

    def withdraw_now(self, appended: Appended, entries: Sequence[AuditEntry]) -> None:
        """Take back an append whose change was not stored after all."""
        try:
            if withdraw(self.path, appended):
                return
            why = "appended to since"
        except OSError as error:
            why = str(StoreUnavailable.from_os("cut back the audit", self.path, error))
        log.error(
            "intent.audit_not_withdrawn",
            path=str(self.path),
            why=why,
            entries=[e.id for e in entries],
        )

    def _read(self) -> list[AuditEntry]:
        raw = read_bytes(self.path) or b""
        entries: list[AuditEntry] = []
        for number, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entries.append(AuditEntry.from_dict(json.loads(line)))
            except ValueError as e:  # a line cut by a crash, or edited by hand
                log.warning("intent.audit_bad_line", path=str(self.path), line=number, error=str(e))
        return entries
