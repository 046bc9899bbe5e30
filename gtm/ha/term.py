"""`async with elector.leading() as term:` — a `TermScope`: work tied to one term of leadership.

    while True:
        try:
            async with elector.leading() as term:
                await reconcile_forever(epoch=term.epoch)
        except LeadershipLost:
            continue  # wait for the next term

Entering waits until this member leads. Then:

- the term ends (renew deadline passed, lease taken, released from another
  task): the body is cancelled and `LeadershipLost` is raised from the
  `async with`, so the work stops when the term does;
- the body raises: the elector steps down — it ends the term, clears the
  holder so the standby takes over at once, and stays out of the campaign for
  one lease duration — and the error propagates. A leader whose work crashed
  does not keep renewing a lease it no longer uses;
- the body returns: nothing else happens (the member still leads).

A cancellation from outside (shutdown) propagates as it is; the service
calls `elector.release()` for that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from gtm.ha.changes import LeaderTerm

if TYPE_CHECKING:
    from gtm.ha.elector import Elector


class LeadershipLost(Exception):
    """The term a `leading()` body ran in ended; the body was cancelled."""

    def __init__(self, term: LeaderTerm) -> None:
        self.term = term
        super().__init__(f"leadership lost (epoch {term.epoch})")


class TermScope:
    def __init__(self, elector: Elector) -> None:
        self._elector = elector
        self._task: asyncio.Task[object] | None = None
        self._term: LeaderTerm | None = None
        self._cancels_before = 0
        self._cancelled_by_us = False
        self._ended = False
        self._undo: Callable[[], None] | None = None

    async def __aenter__(self) -> LeaderTerm:
        if self._task is not None:
            raise RuntimeError("a TermScope is entered once; call elector.leading() again")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("elector.leading() must be used inside a task")
        term = await self._elector.wait_leading()
        self._task, self._term = task, term
        self._cancels_before = task.cancelling()
        self._undo = self._elector.on_term_end(self._term_ended)
        return term

    def _term_ended(self) -> None:
        if self._ended or self._task is None:
            return
        self._ended = True
        if self._task is not asyncio.current_task():  # the body itself released: let it finish
            self._cancelled_by_us = True
            self._task.cancel(msg="leadership lost")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._undo is not None:
            self._undo()
        task, term = self._task, self._term
        if task is None or term is None:
            return None
        if self._cancelled_by_us:
            if task.uncancel() <= self._cancels_before and exc_type is asyncio.CancelledError:
                raise LeadershipLost(term) from exc
            return None
        if exc is not None and isinstance(exc, Exception) and not self._ended:
            await self._elector.step_down(f"leader work failed: {exc!r}")
        return None
