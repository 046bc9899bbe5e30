"""Only the current leader writes: its epoch goes with every write, and is checked first.

`WriteFence` is what the service layer hands the reconciler: the epoch (the
Lease's transition count) and `may_write()`, true while the lease is held
and its renew deadline not passed. Before every write the reconciler asks
`check(entry)`: a lost lease stops the write (`LeaseNotHeld`), and so does a
WLE a newer leader already wrote (`Fenced`) — a paused, stale leader that
wakes up does not overwrite a newer state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from failover.workload import WorkloadEntry


class WriteStopped(Exception):
    """Writing stopped: this instance must not write (any more) under its epoch."""


class LeaseNotHeld(WriteStopped):
    pass


class Fenced(WriteStopped):
    def __init__(self, entry: str, theirs: int, ours: int) -> None:
        self.entry, self.theirs, self.ours = entry, theirs, ours
        super().__init__(
            f"{entry} was written by leader epoch {theirs}, newer than ours ({ours}):"
            " a newer leader is in charge"
        )


@dataclass(frozen=True, slots=True)
class WriteFence:
    epoch: int
    may_write: Callable[[], bool]

    def refuse_newer(self, entry: WorkloadEntry) -> None:
        """Raise `Fenced` when a newer leader already wrote `entry`."""
        if entry.epoch > self.epoch:
            raise Fenced(str(entry), entry.epoch, self.epoch)

    def check(self, entry: WorkloadEntry) -> None:
        """Raise unless this leader may write `entry` now (asked before every write)."""
        self.refuse_newer(entry)
        self.holds()

    def holds(self) -> None:
        """Raise `LeaseNotHeld` unless the lease is held now (before any write of the term)."""
        if not self.may_write():
            raise LeaseNotHeld(f"epoch {self.epoch}: may_write() is false, the lease is not held")
