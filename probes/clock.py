"""gtm's one clock: monotonic to schedule and decide on, wall to stamp and agree with.

Local deadlines (probe schedules, whether this member may still act on its
lease) run on `monotonic()`, which neither NTP steps nor a changed time zone
can move. What two processes must agree on (observation stamps, a Lease's
renewTime + duration) is wall time: `time()` in epoch seconds, `now()` the
same moment as an aware UTC datetime.

`SystemClock` is the real one. `ManualClock` moves only when a test (or a
simulation) advances it, firing due timers in order, so schedules can be
checked over hours in milliseconds and a lease's deadlines to the microsecond.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds for schedules, wall time for stamps, and timers on the former."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (local deadlines only)."""
        ...

    def time(self) -> float:
        """Wall-clock epoch seconds."""
        ...

    def now(self) -> datetime:
        """The wall-clock time as an aware UTC datetime (lease timestamps)."""
        ...

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        """Calls `callback` from the running event loop once `monotonic()` >= `deadline`."""
        ...


class SystemClock:
    """The machine's clocks; timers run on the running event loop."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, deadline - time.monotonic()), callback)


class _ManualTimer:
    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that stands still until `advance()`; both readings move together.

    The wall clock starts at `wall` (aware; by default 1,700,000,000 + `start`
    epoch seconds) and is kept as a datetime, so lease deadlines compare to
    the microsecond. `offset` shifts the wall clock alone, e.g. to give one
    member of a pair a skewed clock.
    """

    def __init__(self, start: float = 1000.0, wall: datetime | None = None) -> None:
        if wall is None:
            wall = datetime.fromtimestamp(1_700_000_000 + start, UTC)
        if wall.tzinfo is None:
            raise ValueError("ManualClock needs an aware wall time")
        self._now = start
        self._wall = wall.astimezone(UTC)
        self.offset = timedelta(0)
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def now(self) -> datetime:
        return self._wall + self.offset

    def time(self) -> float:
        return self.now().timestamp()

    def _move_to(self, moment: float) -> None:
        if moment > self._now:
            self._wall += timedelta(seconds=moment - self._now)
            self._now = moment

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        timer = _ManualTimer(deadline, callback)
        heapq.heappush(self._timers, (deadline, next(self._seq), timer))
        return timer

    @property
    def pending(self) -> int:
        """Timers not yet fired nor cancelled."""
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)

    async def advance(self, seconds: float, *, settle: int = 8) -> None:
        """Moves time forward by `seconds`, firing each due timer at its own deadline
        and letting the event loop run `settle` rounds after each, so woken tasks
        act (and arm new timers) before time moves on."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        end = self._now + seconds
        await _settle(settle)
        while self._timers and self._timers[0][0] <= end:
            deadline, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._move_to(deadline)
            timer.callback()
            await _settle(settle)
        self._move_to(end)
        await _settle(settle)


async def sleep_until(clock: Clock, deadline: float) -> None:
    """Waits until `clock.monotonic()` reaches `deadline`."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def wake() -> None:
        if not done.done():
            done.set_result(None)

    timer = clock.call_at(deadline, wake)
    try:
        await done
    finally:
        timer.cancel()


async def _settle(rounds: int) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)
