"""The embedded default intent store: local files in the state directory.

The state is kept as numbered files (`intent.json.<n>`, the newest is the
state) written by compare-and-swap without a lock (`failover.intent.versioned`):
an update reads the newest, applies its pure function, and links the result
as the next number; when the other member of the pair linked that number
first, it reads again and applies the function again, so neither change is
lost. A member paused in the middle of an update (SIGSTOP, a frozen VM) holds
nothing the other needs, and its late write is refused when it wakes. A
version file is complete and fsynced before it has its name, so a crash
leaves the old state or the new one. The blocking work runs in a worker
thread.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry

from failover.intent.audit import AuditLog
from failover.intent.errors import CorruptState, StoreUnavailable
from failover.intent.metrics import StoreMetrics
from failover.intent.state import EMPTY, IntentState
from failover.intent.store import Update, next_state, record
from failover.intent.versioned import VersionedFiles

log = structlog.get_logger(__name__)

LABEL = "file/intent"


class FileIntentStore:
    def __init__(
        self,
        path: Path | str,
        *,
        audit: AuditLog | None = None,
        race_timeout: float = 10.0,
        metrics: StoreMetrics | None = None,
    ) -> None:
        self.path = Path(path)
        self.audit = audit
        self.race_timeout = race_timeout
        self.metrics = metrics or StoreMetrics(CollectorRegistry())
        self._files = VersionedFiles(self.path)

    def version_path(self, version: int) -> Path:
        return self._files.version_path(version)

    async def load(self) -> IntentState:
        return (await asyncio.to_thread(self._read))[1]

    async def update(self, fn: Update, epoch: int) -> IntentState:
        try:
            before, after = await asyncio.to_thread(self._update, fn, epoch)
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
        await record(LABEL, self.audit, before, after)
        return after

    def _update(self, fn: Update, epoch: int) -> tuple[IntentState, IntentState]:
        def attempt() -> tuple[IntentState, IntentState]:
            number, before = self._read()
            after = next_state(before, fn, epoch, str(self.path))
            if after is not before:
                self._files.write(number + 1, after.to_json().encode())
            return before, after

        try:
            return self._files.retry(attempt, self.race_timeout)
        except OSError as error:
            raise StoreUnavailable(f"{self.path}: cannot write: {error}") from error

    def _read(self) -> tuple[int, IntentState]:
        """The newest file's number (0: none yet) and the state in it."""
        try:
            newest = self._files.newest()
        except OSError as error:
            raise StoreUnavailable(f"{self.path}: cannot read: {error}") from error
        if newest is None:
            return 0, EMPTY
        try:
            return newest.version, IntentState.from_json(newest.data)
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            raise CorruptState(
                f"{self._files.version_path(newest.version)}: not a readable intent state "
                f"({e}); restore it from a backup or a peer, it will not be overwritten"
            ) from e
