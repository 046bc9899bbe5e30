"""Intent versions never go backwards unnoticed: a member's high-water mark, and the guard on its store.

An `IntentState.version` only rises (it counts the changes a state holds), so
a store that answers a lower version than one this member has seen lost
intent: the newest `intent.json.<n>` deleted (the files fall back to n-1, or
to nothing), a ConfigMap deleted and created again, a backup restored over a
newer state. The store cannot tell; the member can.

`HighWater` is the highest version a member has seen of its pair's store (read
from it, written to it, or merged into it from the peers' intent), kept in a
small fsynced file of its own in the state directory
(`intent-seen.<member>.json`, replaced atomically), so it survives a restart.
It also reads the other members' files beside it: with the file backend the
pair shares the state directory, so deleting one member's file leaves its
partner's (and the partner, whose memory still knows, writes its own again
the next time it reads the store). A file that cannot be read counts as none.

`GuardedIntentStore` wraps a store and compares every version it reads or
writes with the mark:

- below it, `load()` raises `RegressedState` (store has N, seen M) and the
  member neither evaluates nor serves from that intent: DNS keeps the last
  table; `regression()` says so for `/readyz`, `/v1/status` and the metrics
  (`gtm_intent_regressed`, `gtm_intent_version_seen`, `gtm_intent_version_stored`);
- `update(fn)` refuses (`RegressedState`, nothing written) a result below the
  mark, so a lower version is never written over the lost one; a write that
  reaches the mark — the peers' intent merged back by anti-entropy
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
ConfigMap) from a backup, or re-apply the lost changes with the runbook (a
write that brings the version back to the mark is accepted).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
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


class HighWater:
    """The highest intent version this member (or its partner, beside it) has seen."""

    def __init__(self, directory: Path | str, member: str) -> None:
        self.directory = Path(directory)
        self.member = member
        self.path = self.directory / f"{PREFIX}{member}{SUFFIX}"
        self._seen = 0
        self._written = -1  # the version in our own file (-1: none written by this process)

    @property
    def seen(self) -> int:
        return self._seen

    def load(self) -> int:
        """Read our file and our partners' (blocking); the mark never goes down."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            names = []
        for name in names:
            if name.startswith(PREFIX) and name.endswith(SUFFIX):
                version = _read(self.directory / name)
                if name == self.path.name:
                    self._written = max(self._written, version)
                self._seen = max(self._seen, version)
        return self._seen

    def raise_to(self, version: int) -> bool:
        """Remember `version` if it is higher (blocking: fsynced before it returns); our
        file is written again when it is missing or behind what we know. True: moved."""
        moved = version > self._seen
        self._seen = max(self._seen, version)
        if self._seen > self._written or (self._seen > 0 and not self.path.exists()):
            self._write(self._seen)
        return moved

    def _write(self, version: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"member": self.member, "version": version, "at": time.time()})
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.directory)
        try:
            try:
                os.write(fd, body.encode())
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
        self._written = version


def lost_since(state: IntentState, head: PublishedHead | None, now: float) -> list[str]:
    """The overrides in force when `head`'s table was evaluated that `state` knows nothing
    of; none for a table older than TOMBSTONE_BOUND (their tombstones may be compacted)."""
    if head is None or head.published_at < now - TOMBSTONE_BOUND:
        return []
    return sorted(oid for oid in head.seen if not state.knows(oid))


def _read(path: Path) -> int:
    try:
        value = json.loads(path.read_bytes()).get("version")
    except (OSError, ValueError, AttributeError):
        return 0
    return value if isinstance(value, int) and value >= 0 else 0


@dataclass(frozen=True)
class Regression:
    """The store holds `stored`, below the `seen` mark, since `since`."""

    where: str
    stored: int
    seen: int
    since: float

    def cause(self) -> str:
        return str(RegressedState(self.where, self.stored, self.seen))


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

    async def update(self, fn: Update, epoch: int) -> IntentState:
        def guarded(current: IntentState) -> IntentState:
            new = fn(current)
            seen = self.mark.seen
            if new.version < seen:
                raise RegressedState(self.where, current.version, seen)
            return new

        try:
            after = await self.inner.update(guarded, epoch)
        except RegressedState as e:
            self._regressed(e.stored)
            raise
        await self._saw(after)
        return after

    async def _saw(self, state: IntentState) -> None:
        if self._published is not None:
            published, self._published = self._published, None
            await self._check_published(state, published)
        version = state.version
        # also while regressed: our file, if deleted, is written again from memory
        await asyncio.to_thread(self.mark.raise_to, version)
        if version < self.mark.seen:
            self._regressed(version)
            raise RegressedState(self.where, version, self.mark.seen, state)
        self._stored = version
        self._stored_gauge.set(version)
        self._seen_gauge.set(self.mark.seen)
        if self._regression is not None:
            log.info(
                "intent.restored",
                store=self.where,
                version=version,
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
        await asyncio.to_thread(self.mark.raise_to, floor)

    def _regressed(self, stored: int) -> None:
        self._stored = stored
        self._stored_gauge.set(stored)
        seen = self.mark.seen
        self._seen_gauge.set(seen)
        if self._regression is None or (self._regression.stored, self._regression.seen) != (
            stored,
            seen,
        ):
            since = time.time() if self._regression is None else self._regression.since
            self._regression = Regression(self.where, stored, seen, since)
            self._regressed_gauge.set(1)
            log.error(
                "intent.regressed",
                store=self.where,
                stored=stored,
                seen=seen,
                mark=str(self.mark.path),
                cause=self._regression.cause(),
            )
