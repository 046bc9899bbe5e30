"""Time for the shell: a monotonic clock to schedule on, a wall clock to stamp with.

`SystemClock` is the real one. `ManualClock` moves only when a test (or a
simulation) advances it, firing due timers in order, so schedules can be
checked over hours in milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds for schedules, epoch seconds for stamps, and timers on the former."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        """Calls `callback` from the running event loop once `monotonic()` >= `deadline`."""
        ...


class SystemClock:
    """The machine's clocks; timers run on the running event loop."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

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
    """A clock that stands still until `advance()`; wall time is `wall_epoch + monotonic`."""

    def __init__(self, start: float = 1000.0, wall_epoch: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_epoch = wall_epoch
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._wall_epoch + self._now

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
        end = self._now + seconds
        await _settle(settle)
        while self._timers and self._timers[0][0] <= end:
            deadline, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, deadline)
            timer.callback()
            await _settle(settle)
        self._now = end
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
