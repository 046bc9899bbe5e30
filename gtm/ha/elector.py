"""`Elector`: this member's campaign for the lease of its HA pair.

One loop (`run`) reads the lease every retry period and, by the rules below,
takes it, renews it or leaves it alone:

- nobody holds it, or the holder's renewal has expired (`renew_time +
  duration < now`, wall clock): take it, writing `transitions + 1` — the new
  term's fencing epoch — with a compare-and-swap on the version read (never
  an epoch at or below the highest this member has seen, so a deleted and
  recreated lease does not start over at 1);
- this member holds it for its current term: renew it (same epoch);
- the record shows anyone else (or this identity for an older term): the
  current term, if any, ends at once.

Whether this member leads is decided on the monotonic clock alone:
`is_leader()` is true only while the last successful write is younger than
the renew deadline, so a hung or failing API, a timeout, a paused process
waking up, all end the term by the deadline with nothing else to go right.
The base of that deadline is the moment the attempt *started* (before the
wall-clock renew time it wrote was read), so the term always ends at least
`duration - renew_deadline` before another member may take the lease. Each
attempt runs under `asyncio.timeout` (shorter than the retry period, and cut
at the deadline while leading), and the loop sleeps no longer than the time
left, so the end of a term is announced when it happens.

Re-taking a lease this identity still holds after a term ended (a pause
longer than the renew deadline, a restart) starts a new term with a new
epoch: a write still in flight from the old term is then refused by the
stores.

`release()` (on SIGTERM) ends the term, then clears the holder so the
standby takes over at once; `step_down()` does the same but keeps
campaigning after one lease duration (a leader whose work crashed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace

import structlog
from prometheus_client import CollectorRegistry

from gtm.ha.changes import ChangeFeed, Holder, LeaderChange, LeaderTerm
from gtm.ha.metrics import ElectionMetrics
from gtm.ha.record import LeaseBackend, LeaseConflict, LeaseRecord
from gtm.ha.settings import ElectionSettings
from gtm.ha.term import TermScope
from probes.clock import Clock, SystemClock

log = structlog.get_logger(__name__)


class NotLeader(Exception):
    """This member does not lead (now): writes go to the leader, `holder` when known.

    The elector raises it for a write about to be made; the API answers it with
    503 and the leader's identity and address, so the client asks there."""

    def __init__(self, holder: Holder | None, why: str = "not the leader") -> None:
        self.holder = holder
        where = f"; the leader is {holder.identity} at {holder.address}" if holder else ""
        super().__init__(f"{why}{where}")


class Elector:
    def __init__(
        self,
        backend: LeaseBackend,
        settings: ElectionSettings,
        *,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._backend = backend
        self._settings = settings
        self._clock = clock if clock is not None else SystemClock()
        self._log = log.bind(identity=settings.identity)
        self._metrics = ElectionMetrics(
            registry if registry is not None else CollectorRegistry(),
            self.is_leader,
            lambda: self.epoch,
        )
        self._term: LeaderTerm | None = None
        self._renewed_at = 0.0  # monotonic start of the last successful write of this term
        self._observed: LeaseRecord | None = None
        self._highest_epoch = 0  # the highest transition count ever read or written
        self._released = False
        self._running = False
        self._hold_off_until: float | None = None  # monotonic: no taking the lease before
        self._failing = False
        self._attempt_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._leading = asyncio.Event()
        self._not_leading = asyncio.Event()
        self._not_leading.set()
        self._feeds: set[ChangeFeed] = set()
        self._term_end_callbacks: set[Callable[[], None]] = set()
        self._published = LeaderChange(False, None, None, None)

    # -- what the rest of the member reads ---------------------------------------

    @property
    def settings(self) -> ElectionSettings:
        return self._settings

    def is_leader(self) -> bool:
        """True only while this member's last renewal is younger than the renew deadline."""
        return (
            self._term is not None
            and self._clock.monotonic() - self._renewed_at < self._settings.renew_deadline
        )

    @property
    def epoch(self) -> int | None:
        """The fencing epoch of the term this member leads now; None when it does not lead."""
        term = self._term
        return term.epoch if term is not None and self.is_leader() else None

    def require_leader(self) -> int:
        """The epoch to stamp on a write about to be made; NotLeader if this member does not lead."""
        epoch = self.epoch
        if epoch is None:
            raise NotLeader(self.leader())
        return epoch

    def leader(self) -> Holder | None:
        """Who holds the lease, as last read (this member itself while it leads)."""
        record = self._observed
        if record is None or not record.holder:
            return None
        return Holder(record.holder, record.address, record.transitions, record.expires_at)

    async def wait_leading(self) -> LeaderTerm:
        """Until this member leads; its term."""
        while True:
            await self._leading.wait()
            term = self._term
            if term is not None and self.is_leader():
                return term
            await self._not_leading.wait()  # the deadline passed; the loop is about to say so

    async def wait_not_leading(self) -> None:
        """Until this member does not lead (at once if it does not)."""
        if self.is_leader():
            await self._not_leading.wait()

    def leading(self) -> TermScope:
        """`async with elector.leading() as term:` runs the body only while leading (see TermScope)."""
        return TermScope(self)

    def changes(self) -> ChangeFeed:
        """A feed of every LeaderChange from now on; close it (or use `with`) when done."""
        feed = ChangeFeed(self._feeds.discard)
        self._feeds.add(feed)
        return feed

    def on_term_end(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (synchronously) when the current or a later term ends; returns the undo."""
        self._term_end_callbacks.add(callback)
        return lambda: self._term_end_callbacks.discard(callback)

    # -- the campaign -------------------------------------------------------------

    async def run(self) -> None:
        """Campaign until cancelled or released. Cancelling it does not release the lease."""
        if self._running:
            raise RuntimeError("Elector.run() is already running")
        self._running = True
        try:
            while not self._released:
                await self.attempt()
                await self._pause()
        finally:
            self._running = False
            self._end_term("stopped", released=False)

    async def release(self) -> None:
        """Stop acting now, then clear the holder so the standby takes over at once. Final."""
        self._released = True
        self._wake.set()
        await self._give_back("shutdown")

    async def step_down(self, reason: str) -> None:
        """Stop acting, clear the holder, and leave the lease to others for one lease duration."""
        self._hold_off_until = self._clock.monotonic() + self._settings.duration
        await self._give_back(reason)

    async def _pause(self) -> None:
        if self._released:
            return
        delay = self._settings.retry_period
        if self._term is not None:  # wake up at the renew deadline to announce the end
            delay = min(delay, self._time_left())
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(delay, 0.0)):
                await self._wake.wait()

    def _time_left(self) -> float:
        return self._renewed_at + self._settings.renew_deadline - self._clock.monotonic()

    def _check_deadline(self) -> None:
        if self._term is not None and not self.is_leader():
            self._end_term("renew deadline passed", released=False)

    async def attempt(self) -> None:
        """One round of the campaign: read the lease, then take it, renew it or leave it.

        `run()` calls it every retry period; tests call it to step the election.
        Never raises (but CancelledError): a failed round is counted and logged.
        """
        self._check_deadline()
        async with self._attempt_lock:
            if self._released:
                return
            started = self._clock.monotonic()
            leading = self._term is not None
            budget = self._settings.timeout
            if leading:
                budget = min(budget, self._time_left())
            try:
                async with asyncio.timeout(max(budget, 0.0)):
                    await self._acquire_or_renew(started)
            except Exception as error:
                self._failed(error, leading)
            else:
                self._recovered()
        self._check_deadline()
        self._publish()

    async def _acquire_or_renew(self, started: float) -> None:
        me = self._settings.identity
        record = await self._backend.get()
        now = self._clock.now()
        self._observe(record)
        term = self._term
        if term is not None:
            if record is not None and record.held_by(me) and record.transitions == term.epoch:
                renewed = replace(
                    record,
                    address=self._settings.address,
                    renew_time=now,
                    duration=self._settings.duration,
                )
                self._renewed(await self._backend.update(renewed, record.version), started)
                return
            self._end_term("taken by another member", released=False)
        if self._holding_off(started):
            return
        if record is not None and record.held(now) and not record.held_by(me):
            return  # another member leads
        taken = LeaseRecord(
            holder=me,
            address=self._settings.address,
            acquire_time=now,
            renew_time=now,
            duration=self._settings.duration,
            # never an epoch already used, even if the lease was deleted or edited since
            transitions=max(record.transitions if record is not None else 0, self._highest_epoch)
            + 1,
        )
        if record is None:
            stored = await self._backend.create(taken)
        else:
            stored = await self._backend.update(taken, record.version)
        self._won(stored, started)

    def _holding_off(self, now: float) -> bool:
        if self._hold_off_until is None:
            return False
        if now < self._hold_off_until:
            return True
        self._hold_off_until = None
        return False

    # -- terms --------------------------------------------------------------------

    def _observe(self, record: LeaseRecord | None) -> None:
        self._observed = record
        if record is not None:
            self._highest_epoch = max(self._highest_epoch, record.transitions)

    def _won(self, stored: LeaseRecord, started: float) -> None:
        self._observe(stored)
        if self._released or self._holding_off(self._clock.monotonic()):
            return  # release() or step_down() waits for this attempt, then clears the holder
        self._renewed_at = started
        self._term = LeaderTerm(stored.transitions, self._settings.identity, self._settings.address)
        self._not_leading.clear()
        self._leading.set()
        self._metrics.transitions.labels(change="acquired").inc()
        self._log.info(
            "leader.acquired",
            epoch=stored.transitions,
            address=self._settings.address,
            previous=self._published.holder,
        )

    def _renewed(self, stored: LeaseRecord, started: float) -> None:
        self._observe(stored)
        if not self.is_leader():  # the deadline passed while the write was in flight
            self._end_term("renew deadline passed", released=False)
            return
        self._renewed_at = started

    def _end_term(self, reason: str, *, released: bool) -> None:
        term, self._term = self._term, None
        if term is None:
            return
        self._leading.clear()
        self._not_leading.set()
        if released:
            self._metrics.transitions.labels(change="released").inc()
        else:
            self._metrics.transitions.labels(change="lost").inc()
            self._log.info("leader.lost", epoch=term.epoch, reason=reason)
        for callback in list(self._term_end_callbacks):
            callback()
        self._publish()

    async def _give_back(self, reason: str) -> None:
        """End the term, then clear the holder if the lease still names this member."""
        term = self._term
        self._end_term(reason, released=True)
        me = self._settings.identity
        handed_back = False
        async with self._attempt_lock:  # let an attempt in flight finish first
            try:
                async with asyncio.timeout(self._settings.timeout):
                    record = await self._backend.get()
                    if record is not None and record.held_by(me):
                        cleared = replace(
                            record, holder=None, address=None, renew_time=self._clock.now()
                        )
                        self._observe(await self._backend.update(cleared, record.version))
                        handed_back = True
                    else:
                        self._observe(record)
            except Exception as error:
                self._metrics.lease_errors.labels(error=type(error).__name__).inc()
                self._log.warning("leader.release_failed", reason=reason, error=repr(error))
        if term is not None or handed_back:
            self._log.info(
                "leader.released",
                epoch=term.epoch if term is not None else None,
                reason=reason,
                handed_back=handed_back,
            )
        self._publish()

    # -- failures and changes -----------------------------------------------------

    def _failed(self, error: Exception, leading: bool) -> None:
        self._metrics.lease_errors.labels(error=type(error).__name__).inc()
        if leading:
            self._metrics.renew_failures.inc()
        if isinstance(error, LeaseConflict):
            return  # someone else wrote first: the next read tells who
        if not self._failing:
            self._failing = True
            self._log.warning("lease.failing", leading=leading, error=repr(error))

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            self._log.info("lease.recovered")

    def _publish(self) -> None:
        holder = self.leader()
        term, record = self._term, self._observed
        change = LeaderChange(
            leading=term is not None,
            epoch=term.epoch if term is not None else (record.transitions if record else None),
            holder=holder.identity if holder else None,
            address=holder.address if holder else None,
        )
        if change == self._published:
            return
        if change.holder not in (None, self._published.holder, self._settings.identity):
            self._log.info("leader.observed", holder=change.holder, address=change.address)
        self._published = change
        for feed in list(self._feeds):
            feed.push(change)
