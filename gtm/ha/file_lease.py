"""`FileLease`: the lease as a small JSON file, for two members on one host.

    {"holder": "dc1-a", "address": "http://127.0.0.1:8081", "acquireTime": "…Z",
     "renewTime": "…Z", "durationSeconds": 15.0, "transitions": 3, "version": 41}

Reads take no lock: the file is only ever replaced whole (written to a
temporary file, fsynced, renamed over it, the directory fsynced), so a
reader sees one version or the next. Writes are compare-and-swap on
`version` under an exclusive `fcntl.flock` on a sibling `<file>.lock`, held
for the read-modify-write only — never while leading — so a paused leader
cannot block the takeover. The lock is tried without blocking until
`lock_timeout`; the work runs in a thread so the event loop never waits on
the disk, and a write whose caller timed out gives up instead of landing
later. Timestamps are wall-clock (both processes read the same clock);
each process keeps its own renew deadline on its monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from gtm.ha.microtime import format_micro_time, optional_micro_time
from gtm.ha.record import LeaseConflict, LeaseRecord, LeaseUnavailable

LOCK_POLL = 0.005  # seconds between attempts to take the write lock


class FileLease:
    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 1.0) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"FileLease({str(self.path)!r})"

    async def get(self) -> LeaseRecord | None:
        return await asyncio.to_thread(self._read)

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        return await self._write_in_thread(record, None)

    async def update(self, record: LeaseRecord, expected_version: str) -> LeaseRecord:
        return await self._write_in_thread(record, expected_version)

    async def _write_in_thread(
        self, record: LeaseRecord, expected_version: str | None
    ) -> LeaseRecord:
        """The write, in a thread that gives up (stops waiting for the lock, writes nothing)
        once the caller stopped waiting — a timed-out write must not land later."""
        abandoned = threading.Event()
        try:
            return await asyncio.to_thread(self._write, record, expected_version, abandoned)
        except asyncio.CancelledError:
            abandoned.set()
            raise

    # -- in a worker thread ---------------------------------------------------------

    def _read(self) -> LeaseRecord | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise LeaseUnavailable(f"cannot read {self.path}: {error}") from error
        try:
            return decode(json.loads(text))
        except (ValueError, KeyError, TypeError) as error:
            raise LeaseUnavailable(f"unreadable lease file {self.path}: {error}") from error

    def _write(
        self, record: LeaseRecord, expected_version: str | None, abandoned: threading.Event
    ) -> LeaseRecord:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock(fd, abandoned)
            current = self._read()
            if expected_version is None and current is not None:
                raise LeaseConflict(f"{self.path} exists (version {current.version})")
            if expected_version is not None and (
                current is None or current.version != expected_version
            ):
                found = current.version if current is not None else "none"
                raise LeaseConflict(f"{self.path} is at version {found}, not {expected_version}")
            version = (int(current.version) if current is not None else 0) + 1
            stored = replace(record, version=str(version))
            self._replace(json.dumps(encode(stored), indent=1) + "\n")
            return stored
        finally:
            os.close(fd)  # drops the lock

    def _lock(self, fd: int, abandoned: threading.Event) -> None:
        deadline = time.monotonic() + self.lock_timeout
        while True:
            if abandoned.is_set():
                raise LeaseUnavailable("the caller gave up waiting")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    raise LeaseUnavailable(f"cannot lock {self.lock_path}: {error}") from error
            if time.monotonic() >= deadline:
                raise LeaseUnavailable(f"{self.lock_path} stayed locked for {self.lock_timeout}s")
            time.sleep(LOCK_POLL)

    def _replace(self, text: str) -> None:
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def encode(record: LeaseRecord) -> dict[str, Any]:
    return {
        "holder": record.holder,
        "address": record.address,
        "acquireTime": format_micro_time(record.acquire_time) if record.acquire_time else None,
        "renewTime": format_micro_time(record.renew_time) if record.renew_time else None,
        "durationSeconds": record.duration,
        "transitions": record.transitions,
        "version": int(record.version),
    }


def decode(data: dict[str, Any]) -> LeaseRecord:
    return LeaseRecord(
        holder=data.get("holder") or None,
        address=data.get("address") or None,
        acquire_time=optional_micro_time(data.get("acquireTime")),
        renew_time=optional_micro_time(data.get("renewTime")),
        duration=float(data["durationSeconds"]),
        transitions=int(data["transitions"]),
        version=str(int(data["version"])),
    )
