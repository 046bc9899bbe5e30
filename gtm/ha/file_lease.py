"""`FileLease`: the lease as small JSON files, for two members on one host.

    dc1.lease.0000000041   {"holder": "dc1-a", "address": "http://127.0.0.1:8081",
    dc1.lease.0000000042    "acquireTime": "…Z", "renewTime": "…Z",
                            "durationSeconds": 15.0, "transitions": 3, "version": 42}

The lease is its newest version file, written by compare-and-swap without a
lock (`intent.versioned`): a member paused anywhere (SIGSTOP, a
frozen VM) holds nothing the other needs, so the standby takes over while it
sleeps, and the sleeper's late write is refused when it wakes. The work runs
in a thread so the event loop never waits on the disk, and a write whose
caller gave up does not land. Timestamps are wall-clock (both processes read
the same clock); each process keeps its own renew deadline on its monotonic
clock.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from gtm.ha.microtime import format_micro_time, optional_micro_time
from gtm.ha.record import LeaseConflict, LeaseRecord, LeaseUnavailable
from intent.versioned import VersionedFiles, VersionTaken


class FileLease:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)  # the lease's name; its versions are `<path>.<version>`
        self._files = VersionedFiles(self.path)

    def __repr__(self) -> str:
        return f"FileLease({str(self.path)!r})"

    def version_path(self, version: int) -> Path:
        return self._files.version_path(version)

    async def get(self) -> LeaseRecord | None:
        return await asyncio.to_thread(self._read)

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        return await self._write_in_thread(record, None)

    async def update(self, record: LeaseRecord, expected_version: str) -> LeaseRecord:
        return await self._write_in_thread(record, expected_version)

    async def _write_in_thread(
        self, record: LeaseRecord, expected_version: str | None
    ) -> LeaseRecord:
        """The write, in a thread that gives up (does not link) once the caller stopped
        waiting: a timed-out write must not land later."""
        abandoned = threading.Event()
        try:
            return await asyncio.to_thread(self._write, record, expected_version, abandoned)
        except asyncio.CancelledError:
            abandoned.set()
            raise

    # -- in a worker thread ---------------------------------------------------------

    def _read(self) -> LeaseRecord | None:
        try:
            newest = self._files.newest()
        except OSError as error:
            raise LeaseUnavailable(f"cannot read {self.path}: {error}") from error
        if newest is None:
            return None
        try:
            record = decode(json.loads(newest.data))
        except (ValueError, KeyError, TypeError) as error:
            where = self._files.version_path(newest.version)
            raise LeaseUnavailable(f"unreadable lease file {where}: {error}") from error
        return replace(record, version=str(newest.version))

    def _write(
        self, record: LeaseRecord, expected_version: str | None, abandoned: threading.Event
    ) -> LeaseRecord:
        try:
            versions = self._files.versions()
        except OSError as error:
            raise LeaseUnavailable(f"cannot list {self.path.parent}: {error}") from error
        newest = versions[-1] if versions else None
        if expected_version is None and newest is not None:
            raise LeaseConflict(f"{self.path} exists (version {newest})")
        if expected_version is not None and str(newest) != expected_version:
            found = newest if newest is not None else "none"
            raise LeaseConflict(f"{self.path} is at version {found}, not {expected_version}")
        version = (newest or 0) + 1
        stored = replace(record, version=str(version))
        data = (json.dumps(encode(stored), indent=1) + "\n").encode()
        try:
            self._files.write(version, data, abandoned.is_set)
        except VersionTaken as taken:
            raise LeaseConflict(str(taken)) from None
        except OSError as error:
            where = self._files.version_path(version)
            raise LeaseUnavailable(f"cannot write {where}: {error}") from error
        return stored


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
