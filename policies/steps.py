"""Long computations in steps: a generator yields between slices of its work and returns
the result; `to_end` runs one at once, `stepped` on an event loop, which runs other work
at every yield.

    table = to_end(evaluating(...))          # a script, a test: all at once
    table = await stepped(evaluating(...))   # the member: its loop keeps answering
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
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
