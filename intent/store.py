"""The intent store: what every backend promises, and the rules they all apply.

`load()` returns the stored state (empty when nothing is stored yet).
`update(fn, epoch)` is a compare-and-swap loop: read, apply the pure `fn`,
write under a precondition (the next file number still free, a
resourceVersion); when another writer got in first, read again and apply
`fn` again, so neither change is lost. `fn` may run several times and must be pure; the state's operations
are idempotent, so `fn` may also find its change already there (a retried
request), and then nothing is written.

Fencing: a write from an epoch lower than the stored one raises `StaleEpoch`
and changes nothing. A write stamps the state with the writer's epoch, so
a new leader's first write (even one that changes no intent) fences off the
old leader. `fn` may add and end intent, never drop it (a lost id or a
revived tombstone is a bug and raises ValueError), and may compact
tombstones only by counting them as `retired`, which keeps `version`
monotonic.

After each write the store logs one `intent.<action>` event per transition
and appends them to its audit log, if it has one. The file store appends
first and withdraws the entries when its write fails, so an accepted change
is audited or not accepted (`intent.file_store`); the ConfigMap store does
the same (`intent.configmap_store`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from intent.audit import AuditEntry
from intent.errors import StaleEpoch
from intent.state import IntentState

log = structlog.get_logger(__name__)

Update = Callable[[IntentState], IntentState]


class IntentStore(Protocol):
    async def load(self) -> IntentState: ...

    async def update(self, fn: Update, epoch: int) -> IntentState: ...


def check_epoch(where: str, epoch: int, stored: int) -> None:
    if epoch < stored:
        raise StaleEpoch(where, epoch, stored)


def next_state(current: IntentState, fn: Update, epoch: int, where: str) -> IntentState:
    """One attempt's pure step: fence, apply `fn`, check it only grew, stamp the epoch.

    Returns `current` itself when there is nothing to write.
    """
    check_epoch(where, epoch, current.epoch)
    new = fn(current)
    known = set(new.overrides) | set(new.tombstones)
    dropped = sorted(set(current.overrides) - known)
    gone = set(current.tombstones) - set(new.tombstones)
    revived = sorted(gone & set(new.overrides))
    compacted = len(gone) - len(revived)
    if dropped or revived or compacted > new.retired - current.retired:
        raise ValueError(
            f"{where}: an update may add and end intent, never drop it "
            f"(dropped {dropped}, revived {revived}, {compacted} tombstone(s) gone, "
            f"retired {current.retired} -> {new.retired})"
        )
    stamped = new.with_epoch(max(epoch, current.epoch))
    return current if stamped == current else stamped


def log_transitions(store: str, entries: Sequence[AuditEntry]) -> None:
    for e in entries:
        log.info(
            f"intent.{e.action.value}",
            store=store,
            override=e.override_id,
            what=e.what,
            who=e.who,
            why=e.why,
            ticket=e.ticket,
            at=e.at,
        )
