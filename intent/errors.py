"""What can go wrong when intent is read or written, each with the numbers a person needs."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from intent.state import IntentState


class IntentError(Exception):
    """Base of the durable-intent errors."""


class StaleEpoch(IntentError):
    """A writer from an older leadership epoch was fenced off; nothing was written."""

    def __init__(self, where: str, epoch: int, stored: int) -> None:
        super().__init__(
            f"{where}: refused a write from epoch {epoch}: the store holds epoch {stored} "
            "(a newer leader has written; this member must stop writing)"
        )
        self.where = where
        self.epoch = epoch
        self.stored = stored


class StaleGeneration(IntentError):
    """A published table would go back (or sideways) within one epoch; nothing was written."""

    def __init__(self, where: str, epoch: int, generation: int, stored: int, detail: str) -> None:
        super().__init__(
            f"{where}: refused generation {generation} from epoch {epoch}: "
            f"generation {stored} of that epoch is stored ({detail})"
        )
        self.where = where
        self.epoch = epoch
        self.generation = generation
        self.stored = stored


class IntentConflict(IntentError, ValueError):
    """An operation contradicts the stored intent (same id, different content; a partial enter)."""


class UnknownOverride(IntentError, KeyError):
    """No override with that id is stored (nor was one ever ended)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown override"


class CorruptState(IntentError):
    """The stored data cannot be read; the store refuses to overwrite it."""


class RegressedState(IntentError):
    """The store holds a lower intent version than this member has seen: intent was lost
    (the newest file deleted, the ConfigMap recreated). Not evaluated, not overwritten."""

    cause = "regressed"

    def __init__(
        self,
        where: str,
        stored: int,
        seen: int,
        state: IntentState | None = None,
        missing: Sequence[str] = (),
    ) -> None:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        went = (
            f"holds intent version {stored}, but version {seen} was seen"
            if stored < seen
            else f"holds intent version {stored}, but lacks what version {seen} held"
        )
        lacks = (
            f" (it lacks {shown})" if missing and stored < seen else f": {shown}" if missing else ""
        )
        super().__init__(
            f"{where}: {went}{lacks}; the newest intent was lost (a deleted file, a "
            "recreated ConfigMap): it is neither evaluated nor overwritten with less, and "
            "this member does not lead from it until the peers' anti-entropy merges back "
            "what they hold, or the lost state is restored from a backup"
        )
        self.where = where
        self.stored = stored
        self.seen = seen
        self.state = state  # what the store holds now, when it was read
        self.missing = tuple(missing)


class TooLarge(IntentError):
    """The encoded value does not fit the backend's size limit."""


class StoreUnavailable(IntentError):
    """The store could not be read or written within its retry budget.

    `cause` is the errno's name (`ENOSPC`, `EROFS`, `EIO`) when the disk refused,
    so an operator reads "the state directory is full", not "internal error"."""

    def __init__(self, message: str, cause: str | None = None) -> None:
        super().__init__(message)
        self.cause = cause

    @classmethod
    def from_os(cls, operation: str, path: object, error: OSError) -> StoreUnavailable:
        """`<path>: cannot <operation>: ENOSPC (No space left on device) on <file>`."""
        cause = errno.errorcode.get(error.errno or 0)
        detail = error.strerror or str(error)
        reason = f"{cause} ({detail})" if cause else detail
        on = f" on {error.filename}" if error.filename and str(error.filename) != str(path) else ""
        return cls(f"{path}: cannot {operation}: {reason}{on}", cause)
