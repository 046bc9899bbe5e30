"""Intent versions never go backwards unnoticed: a member's high-water mark, and the guard on its store.

An `IntentState.version` only rises (it counts the changes a state holds), so
a store that answers a lower version than one this member has seen lost
intent: the newest `intent.json.<n>` deleted (the files fall back to n-1, or
to nothing), a ConfigMap deleted and created again, a backup restored over a
newer state. The store cannot tell; the member can.

`HighWater` is the highest version a member has seen of its pair's store (read
from it, written to it, or merged into it from the peers' intent) and the ids
that version held (`Mark`: a count alone would take any other change that
reaches it for the lost one), kept in a small fsynced file of its own in the
state directory (`intent-seen.<member>.json`, replaced atomically), so it
survives a restart.
It also reads the other members' files beside it: with the file backend the
pair shares the state directory, so deleting one member's file leaves its
partner's (and the partner, whose memory still knows, writes its own again
the next time it reads the store). A file that cannot be read counts as none.

`GuardedIntentStore` wraps a store and compares every version it reads or
writes with the mark:

- below it (a lower version, or ids the mark held missing beyond what the
  store compacted since), `load()` raises `RegressedState` (store has N,
  seen M, which ids it lacks) and the member neither evaluates nor serves
  from that intent: DNS keeps the last table; `regression()` says so for `/readyz`, `/v1/status` and the metrics
  (`gtm_intent_regressed`, `gtm_intent_version_seen`, `gtm_intent_version_stored`);
- `update(fn)` refuses (`RegressedState`, nothing written) a result below the
  mark, so a lower version is never written over the lost one; a write that
  covers the mark — the peers' intent merged back by anti-entropy
  (`gtm.service.intent_merge`) — restores the store, and the member leads again.

When the mark itself is gone with the newest intent (every `intent-seen.*`
file deleted, or a pod's emptyDir replaced), the table DNS serves still
knows: its head names the overrides in force when it was evaluated
(`PublishedHead.seen`). At its first read the guard checks them against the
store; one the store knows nothing of (neither in force nor ended) was lost,
and the mark is raised above the store by as many. A table published more
than `TOMBSTONE_BOUND` ago is not used this way (an ended override's
tombstone may since have been compacted away). And the peers' copies still
hold what was lost: the leader's anti-entropy merges it back.

One way out remains for intent that no peer holds: restore the lost file (or
ConfigMap) from a backup; or, to give the lost changes up, stop the pair and
remove its `intent-seen.*` files (with the kubernetes backend, each member's)
and its published DNS table (`table-dns.json.*`, or the `<table>-dns`
ConfigMap): the pair starts from the intent the store holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from intent.errors import IntentError, RegressedState
from intent.published import PublishedHead, PublishedStore
from intent.state import TOMBSTONE_BOUND, IntentState
from intent.store import IntentStore, Update

log = structlog.get_logger(__name__)

PREFIX = "intent-seen."
SUFFIX = ".json"


@dataclass(frozen=True)
class Mark:
    """The highest intent version seen, and what it held: a store covers it when its
    version is as high and it knows every id (in force or ended) the mark knows, save as
    many as it compacted since (`retired`)."""

    version: int = 0
    retired: int = 0
    ids: frozenset[str] = frozenset()
    ended: frozenset[str] = frozenset()  # the ids among them that had ended (tombstones)

    @classmethod
    def of(cls, state: IntentState) -> Mark:
        ids = frozenset(state.overrides) | set(state.tombstones)
        return cls(state.version, state.retired, ids, frozenset(state.tombstones))

    def missing(self, state: IntentState) -> list[str]:
        """The ids the mark knows that `state` lost (none within what it compacted)."""
        gone = sorted(i for i in self.ids if not state.knows(i))
        return gone if len(gone) > max(state.retired - self.retired, 0) else []

    def covered_by(self, state: IntentState) -> bool:
        return state.version >= self.version and not self.missing(state)


class HighWater:
    """The highest intent version this member (or its partner, beside it) has seen."""

    def __init__(self, directory: Path | str, member: str) -> None:
        self.directory = Path(directory)
        self.member = member
        self.path = self.directory / f"{PREFIX}{member}{SUFFIX}"
        self._mark = Mark()
        self._written: Mark | None = None  # what our own file holds (None: unknown)

    @property
    def seen(self) -> int:
        return self._mark.version

    @property
    def mark(self) -> Mark:
        return self._mark

    def load(self) -> int:
        """Read our file and our partners' (blocking); the highest mark is kept."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            names = []
        for name in sorted(names):
            if name.startswith(PREFIX) and name.endswith(SUFFIX):
                mark = _read(self.directory / name)
                if name == self.path.name:
                    self._written = mark
                if (mark.version, mark.retired) > (self._mark.version, self._mark.retired):
                    self._mark = mark
        return self._mark.version

    def record(self, state: IntentState) -> bool:
        """`state` was read from or written to the store (blocking: fsynced before it
        returns). It becomes the mark when it covers the mark; our file is written again
        when it is missing or behind. True: the store covers the mark."""
        covered = self._mark.covered_by(state)
        if covered:
            self._mark = Mark.of(state)
        self._persist()
        return covered

    def expect(self, ids: Iterable[str], version: int) -> None:
        """Overrides known to have been in force (the published table's), and a version
        at least this high: the store must cover them too."""
        self._mark = Mark(
            max(self._mark.version, version),
            self._mark.retired,
            self._mark.ids | set(ids),
            self._mark.ended,
        )
        self._persist()

    def _persist(self) -> None:
        if self._mark == self._written and (self._mark.version == 0 or self.path.exists()):
            return
        if self._mark.version == 0 and not self._mark.ids:
            return  # nothing seen yet: nothing to remember
        self._write(self._mark)

    def _write(self, mark: Mark) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        body = json.dumps(
            {
                "member": self.member,
                "version": mark.version,
                "retired": mark.retired,
                "ids": sorted(mark.ids),
                "ended": sorted(mark.ended),
                "at": time.time(),
            },
            separators=(",", ":"),
        ).encode()
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.directory)
        try:
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self._written = mark


def lost_since(state: IntentState, head: PublishedHead | None, now: float) -> list[str]:
    """The overrides in force when `head`'s table was evaluated that `state` knows nothing
    of; none for a table older than TOMBSTONE_BOUND (their tombstones may be compacted)."""
    if head is None or head.published_at < now - TOMBSTONE_BOUND:
        return []
    return sorted(oid for oid in head.seen if not state.knows(oid))


def _read(path: Path) -> Mark:
    """A mark file; one that cannot be read counts as none."""
    try:
        d = json.loads(path.read_bytes())
        version, retired, ids = d["version"], d.get("retired", 0), d.get("ids", [])
        ended = d.get("ended", [])
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return Mark()
    if not (
        isinstance(version, int)
        and isinstance(retired, int)
        and isinstance(ids, list)
        and isinstance(ended, list)
    ):
        return Mark()
    return Mark(
        max(version, 0),
        max(retired, 0),
        frozenset(str(i) for i in ids),
        frozenset(str(i) for i in ended),
    )


@dataclass(frozen=True)
class Regression:
    """The store holds `stored`, below the `seen` mark (or lacking what it held), since `since`."""

    where: str
    stored: int
    seen: int
    since: float
    missing: tuple[str, ...] = ()  # ids the store lost (when the mark knows them)

    def cause(self) -> str:
        return str(RegressedState(self.where, self.stored, self.seen, missing=self.missing))


@dataclass(frozen=True)
class StoreMark:
    """What the guard reports: the store's version at the last read or write, the mark."""

    stored: int | None
    seen: int
    regression: Regression | None

    def fields(self) -> dict[str, object]:
        r = self.regression
        return {
            "stored": self.stored,
            "seen": self.seen,
            "regressed": r is not None,
            "cause": None if r is None else r.cause(),
        }


class GuardedIntentStore:
    """An `IntentStore` that refuses to read or write below the member's high-water mark."""

    def __init__(
        self,
        inner: IntentStore,
        mark: HighWater,
        *,
        where: str | None = None,  # how errors name the store (default: the store's own)
        published: PublishedStore | None = None,  # the DNS table: its head names intent in force
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inner = inner
        self.mark = mark
        if hasattr(inner, "audited"):  # a restore brings back what was audited once already
            inner.audited = self._audited
        self.where = where or str(getattr(inner, "where", type(inner).__name__))
        self._regression: Regression | None = None
        self._stored: int | None = None
        self._published = published  # checked at the first read, then let go
        self._clock = clock
        registry = REGISTRY if registry is None else registry
        self._regressed_gauge = Gauge(
            "gtm_intent_regressed",
            "1 while the intent store holds a lower version than this member has seen "
            "(intent was lost: it neither evaluates nor writes from it until restored).",
            registry=registry,
        )
        self._seen_gauge = Gauge(
            "gtm_intent_version_seen",
            "The highest intent version this member has seen (its high-water mark).",
            registry=registry,
        )
        self._stored_gauge = Gauge(
            "gtm_intent_version_stored",
            "The intent version the store held when this member last read or wrote it.",
            registry=registry,
        )
        mark.load()
        self._seen_gauge.set(mark.seen)

    def regression(self) -> Regression | None:
        return self._regression

    def not_ready(self) -> str | None:
        """Readiness: the cause while the store is regressed."""
        r = self._regression
        return None if r is None else r.cause()

    def mark_report(self) -> StoreMark:
        return StoreMark(self._stored, self.mark.seen, self._regression)

    @property
    def stored(self) -> int | None:
        """The version the store held at the last read or write (None: not read yet)."""
        return self._stored

    async def load(self) -> IntentState:
        state = await self.inner.load()
        await self._saw(state)
        return state

    def _audited(self) -> tuple[frozenset[str], frozenset[str]]:
        """What the mark knew, audited already: a store that went back (noticed yet or not)
        and is merged from the peers gets these again, and they are not audited twice."""
        mark = self.mark.mark
        return mark.ids, mark.ended

    async def update(self, fn: Update, epoch: int) -> IntentState:
        def guarded(current: IntentState) -> IntentState:
            new = fn(current)
            mark = self.mark.mark
            if not mark.covered_by(new):
                raise RegressedState(
                    self.where, current.version, mark.version, current, mark.missing(new)
                )
            return new

        try:
            after = await self.inner.update(guarded, epoch)
        except RegressedState as e:
            self._regressed(e.stored, e.missing)
            raise
        await self._saw(after)
        return after

    async def _saw(self, state: IntentState) -> None:
        if self._published is not None:
            published, self._published = self._published, None
            await self._check_published(state, published)
        # also while regressed: our file, if deleted, is written again from memory
        covered = await asyncio.to_thread(self.mark.record, state)
        mark = self.mark.mark
        if not covered:
            missing = mark.missing(state)
            self._regressed(state.version, missing)
            raise RegressedState(self.where, state.version, mark.version, state, missing)
        self._stored = state.version
        self._stored_gauge.set(state.version)
        self._seen_gauge.set(mark.version)
        if self._regression is not None:
            log.info(
                "intent.restored",
                store=self.where,
                version=state.version,
                was=self._regression.stored,
                seen=self._regression.seen,
            )
            self._regression = None
            self._regressed_gauge.set(0)

    async def _check_published(self, state: IntentState, published: PublishedStore) -> None:
        """Overrides the published table was evaluated with that the store lost."""
        try:
            head = await published.head()
        except (IntentError, OSError) as e:
            log.warning("intent.published_unreadable", store=self.where, error=str(e))
            return
        lost = lost_since(state, head, self._clock())
        if not lost:
            return
        floor = state.version + len(lost)
        log.error(
            "intent.lost_overrides",
            store=self.where,
            lost=lost,
            generation=None if head is None else head.generation,
            stored=state.version,
            seen=max(floor, self.mark.seen),
        )
        await asyncio.to_thread(self.mark.expect, lost, floor)

    def _regressed(self, stored: int, missing: Sequence[str] = ()) -> None:
        self._stored = stored
        self._stored_gauge.set(stored)
        seen = self.mark.seen
        self._seen_gauge.set(seen)
        now = Regression(self.where, stored, seen, time.time(), tuple(missing))
        was = self._regression
        if was is not None and (was.stored, was.seen, was.missing) == (
            now.stored,
            now.seen,
            now.missing,
        ):
            return
        self._regression = now if was is None else replace(now, since=was.since)
        self._regressed_gauge.set(1)
        log.error(
            "intent.regressed",
            store=self.where,
            stored=stored,
            seen=seen,
            missing=list(missing),
            mark=str(self.mark.path),
            cause=now.cause(),
        )
