"""The embedded default intent store: one JSON file in the local state directory.

Every update holds an exclusive `flock` around its read-modify-write, so
the members of a pair on one host (two processes) never interleave; the
file is replaced atomically (temporary file, fsync, rename, fsync of the
directory), so a crash leaves the old state or the new one. The blocking
work runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry

from failover.intent.atomic_file import locked, read_bytes, write_atomic
from failover.intent.audit import AuditLog
from failover.intent.errors import CorruptState
from failover.intent.metrics import StoreMetrics
from failover.intent.state import EMPTY, IntentState
from failover.intent.store import Update, next_state, record

log = structlog.get_logger(__name__)

LABEL = "file/intent"


class FileIntentStore:
    def __init__(
        self,
        path: Path | str,
        *,
        audit: AuditLog | None = None,
        lock_timeout: float = 10.0,
        metrics: StoreMetrics | None = None,
    ) -> None:
        self.path = Path(path)
        self.audit = audit
        self.lock_timeout = lock_timeout
        self.metrics = metrics or StoreMetrics(CollectorRegistry())

    async def load(self) -> IntentState:
        # The file is only ever replaced whole, so a read needs no lock.
        return await asyncio.to_thread(self._read)

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
        with locked(self.path, self.lock_timeout):
            before = self._read()
            after = next_state(before, fn, epoch, str(self.path))
            if after is not before:
                write_atomic(self.path, after.to_json().encode())
            return before, after

    def _read(self) -> IntentState:
        raw = read_bytes(self.path)
        if raw is None:
            return EMPTY
        try:
            return IntentState.from_json(raw)
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            raise CorruptState(
                f"{self.path}: not a readable intent state ({e}); "
                "restore it from a backup or a peer, it will not be overwritten"
            ) from e
