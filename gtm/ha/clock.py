"""The clocks an election reads: monotonic for local deadlines, wall (UTC) for the lease.

Two members agree on a lease only through wall-clock timestamps (renewTime +
duration), so those come from `now()`. Whether *this* member may still act is
decided on `monotonic()`, which neither NTP steps nor a changed time zone can
move. Tests pass a `ManualClock` and drive both.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (local deadlines only)."""
        ...

    def now(self) -> datetime:
        """The wall-clock time, aware, in UTC (lease timestamps)."""
        ...


class SystemClock:
    """The process's clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to (`advance`); both readings move together.

    `offset` shifts the wall clock alone, e.g. to give one member of a pair a
    skewed clock.
    """

    def __init__(self, start: datetime | None = None, monotonic: float = 1000.0) -> None:
        start = start if start is not None else datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware start time")
        self._wall = start.astimezone(UTC)
        self._mono = monotonic
        self.offset = timedelta(0)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> datetime:
        return self._wall + self.offset


SYSTEM_CLOCK = SystemClock()
