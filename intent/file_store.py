"""The embedded default intent store: local files in the state directory.

The state is kept as numbered files (`intent.json.<n>`, the newest is the
state) written by compare-and-swap without a lock (`intent.versioned`):
an update reads the newest, applies its pure function, and links the result
as the next number; when the other member of the pair linked that number
first, it reads again and applies the function again, so neither change is
lost. A member paused in the middle of an update (SIGSTOP, a frozen VM) holds
nothing the other needs, and its late write is refused when it wakes. A
version file is complete and fsynced before it has its name, so a crash
leaves the old state or the new one. The blocking work runs in a worker
thread.

Audited or not accepted: an update appends its audit entries first and links
the state after; when the link fails (a full or read-only directory, a lost
race) the entries are cut from the audit again, and when the append fails
nothing is written. Updates from one process take turns (a thread lock), so
the member's own writers never both audit one change; the two members of a
pair race only around a leader change, and an entry that could not be cut
is not appended again by the retry. The error names the errno and the file
(`StoreUnavailable.cause`: `ENOSPC`, `EROFS`, …).

A corrupt newest file is refused, never skipped: unlike a published table,
intent cannot be derived again, and the version before it may lack an exit an
operator was told was accepted (serving from it would bring a region back
into traffic). So `load()` and `update()` raise `CorruptState` naming the
file, why, and the newest readable version to continue from, and log
`intent.corrupt` (error) once; DNS keeps answering from the published table,
and this pair does not lead until an operator restores the file or moves it
aside (then anti-entropy merges back what the peers hold).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry

from intent.atomic_file import OS_DISK, Disk
from intent.audit import Audited, AuditEntry, FileAudit, transitions
from intent.errors import CorruptState, StoreUnavailable
from intent.metrics import StoreMetrics
from intent.state import EMPTY, IntentState
from intent.store import Update, log_transitions, next_state
from intent.versioned import Version, VersionedFiles

log = structlog.get_logger(__name__)

LABEL = "file/intent"


class FileIntentStore:
    def __init__(
        self,
        path: Path | str,
        *,
        audit: FileAudit | None = None,
        race_timeout: float = 10.0,
        metrics: StoreMetrics | None = None,
        disk: Disk = OS_DISK,
    ) -> None:
        self.path = Path(path)
        self.audit = audit
        self.race_timeout = race_timeout
        self.metrics = metrics or StoreMetrics(CollectorRegistry())
        self._files = VersionedFiles(self.path, disk)
        self._reported: set[Path] = set()
        # one update at a time in this process: two of its threads racing for a version
        # would both audit a change that only one of them stores (a peer merge beside an
        # operator's action: the loser's entry cannot be cut once the winner's follows it)
        self._writing = threading.Lock()
        # what the audit already holds of a state this store lost (set by the high-water
        # guard while it restores a store that went back): not audited twice
        self.audited: Callable[[], Audited | None] = lambda: None

    @property
    def where(self) -> str:
        return str(self.path)

    def version_path(self, version: int) -> Path:
        return self._files.version_path(version)

    async def load(self) -> IntentState:
        return (await asyncio.to_thread(self._read))[1]

    async def update(self, fn: Update, epoch: int) -> IntentState:
        try:
            before, after, entries = await asyncio.to_thread(self._update, fn, epoch)
        except Exception as error:
            self.metrics.failed(LABEL, error)
            raise
        if after is before:
            self.metrics.wrote(LABEL, "unchanged")
            return after
        self.metrics.wrote(LABEL, "written")
        log.info(
            "intent.written",
            store=LABEL,
            path=str(self.path),
            version=after.version,
            epoch=after.epoch,
        )
        log_transitions(LABEL, entries)
        return after

    def _update(self, fn: Update, epoch: int) -> tuple[IntentState, IntentState, list[AuditEntry]]:
        # entries an attempt appended that could not be taken back (another writer appended
        # after them): a retry that makes the same change must not audit it twice
        kept: set[str] = set()

        def attempt() -> tuple[IntentState, IntentState, list[AuditEntry]]:
            number, before = self._read()
            after = next_state(before, fn, epoch, str(self.path))
            if after is before:
                return before, after, []
            entries = transitions(before, after, self.audited())
            fresh = [e for e in entries if e.id not in kept]
            audit = self.audit if fresh else None
            appended = None if audit is None else audit.append_now(fresh)  # raises: not accepted
            try:
                self._files.write(number + 1, after.to_json().encode())
            except BaseException:
                if audit is not None and appended is not None:
                    if not audit.withdraw_now(appended, fresh):
                        kept.update(e.id for e in fresh)
                raise
            return before, after, entries

        try:
            with self._writing:
                return self._files.retry(attempt, self.race_timeout)
        except OSError as error:
            raise StoreUnavailable.from_os("write", self.path, error) from error

    def _read(self) -> tuple[int, IntentState]:
        """The newest file's number (0: none yet) and the state in it."""
        try:
            newest = self._files.newest()
        except OSError as error:
            raise StoreUnavailable.from_os("read", self.path, error) from error
        if newest is None:
            return 0, EMPTY
        try:
            return newest.version, IntentState.from_json(newest.data)
        except ValueError as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise self._corrupt(newest.version, e) from e

    def _corrupt(self, version: int, error: ValueError) -> CorruptState:
        path = self._files.version_path(version)
        try:
            older = self._files.newest_valid(_state_below(version))
        except OSError:
            older = None
        if older is not None and older.value is not None:
            before = self._files.version_path(older.version)
            fallback = (
                f"the newest readable one is {before.name} (intent version "
                f"{older.value.version}, {len(older.value.overrides)} override(s) in force), "
                "which may lack a change an operator was told was accepted; restore "
                f"{path.name} from a backup, or move it aside (to {path.name}.corrupt) to "
                f"continue from {before.name} and let the peers' anti-entropy merge back "
                "what they hold"
            )
        else:
            fallback = (
                f"no older version is readable; restore {path.name} from a backup, or move "
                "it aside to start empty and let the peers' anti-entropy merge back what "
                "they hold"
            )
        if path not in self._reported:
            self._reported.add(path)
            log.error(
                "intent.corrupt", store=LABEL, file=str(path), why=str(error), fallback=fallback
            )
        return CorruptState(
            f"{path}: not a readable intent state ({error}); it will not be overwritten, "
            f"nor skipped: {fallback}"
        )


def _state_below(version: int) -> Callable[[Version, int], IntentState]:
    def parse(v: Version, size: int) -> IntentState:
        if v.version >= version:
            raise ValueError("the corrupt one")
        return IntentState.from_json(v.data)

    return parse
