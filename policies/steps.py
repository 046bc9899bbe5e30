"""Long computations in steps: a generator yields between slices of its work and returns
the result; `to_end` runs one at once, `stepped` on an event loop, which runs other work
at every yield.

    table = to_end(evaluating(...))          # a script, a test: all at once
    table = await stepped(evaluating(...))   # the member: its loop keeps answering

And `collector_paused`, for computations that build many objects at once.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
Steps = Generator[None, None, T]


def to_end(steps: Steps[T]) -> T:
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


async def stepped(steps: Steps[T]) -> T:
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        await asyncio.sleep(0)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while a computation builds many objects.

    Tens of thousands of new small acyclic objects (an evaluation's rows, a
    decoded table, a parsed config) set off collections over every live
    object: half the time of an evaluation (gtm bench policy), and, in a
    worker thread, tens of milliseconds at a time with the GIL held against
    the event loop. Reference counting frees all of them anyway; the
    collector runs again (if it was on) as soon as the computation ends.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
