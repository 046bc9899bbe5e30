"""`FileLease`: the lease as small JSON files, for two members on one host.

    dc1.lease.0000000041   {"holder": "dc1-a", "address": "http://127.0.0.1:8081",
    dc1.lease.0000000042    "acquireTime": "…Z", "renewTime": "…Z",
                            "durationSeconds": 15.0, "transitions": 3, "version": 42}

The lease is its newest version file; the two before it are kept for a look
back. A write is compare-and-swap without a lock: read the newest version N
(it must be the one the caller saw), write N+1 to a temporary file, fsync it,
and hard-link it to `<name>.<N+1>`: the link fails when the name exists, so of
two members racing for N+1 exactly one wins. A member paused anywhere in
between (SIGSTOP, a frozen VM) holds nothing the other needs: the standby
takes over while it sleeps, and when it wakes its late link is either refused
(the name exists) or, if the others moved past N+1 and pruned it, found
behind a newer version and withdrawn. Reads take no lock either: a version
file is complete before it has its name. The work runs in a thread so the
event loop never waits on the disk, and a write whose caller gave up does
not link. Timestamps are wall-clock (both processes read the same clock);
each process keeps its own renew deadline on its monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
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

KEEP = 3  # version files kept: the lease and the two before it
STALE_TEMP = 60.0  # seconds after which a temporary file is a crashed writer's leftover
READ_ATTEMPTS = 5  # the newest version may be pruned between listing and reading


class FileLease:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)  # the lease's name; its versions are `<path>.<version>`

    def __repr__(self) -> str:
        return f"FileLease({str(self.path)!r})"

    def version_path(self, version: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{version:010d}")

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

    def _versions(self) -> list[int]:
        prefix = self.path.name + "."
        try:
            names = os.listdir(self.path.parent)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise LeaseUnavailable(f"cannot list {self.path.parent}: {error}") from error
        return sorted(
            int(n[len(prefix) :])
            for n in names
            if n.startswith(prefix) and n[len(prefix) :].isdigit()
        )

    def _read(self) -> LeaseRecord | None:
        for _ in range(READ_ATTEMPTS):
            versions = self._versions()
            if not versions:
                return None
            path = self.version_path(versions[-1])
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue  # pruned by a newer write since the listing: look again
            except OSError as error:
                raise LeaseUnavailable(f"cannot read {path}: {error}") from error
            try:
                return replace(decode(json.loads(text)), version=str(versions[-1]))
            except (ValueError, KeyError, TypeError) as error:
                raise LeaseUnavailable(f"unreadable lease file {path}: {error}") from error
        raise LeaseUnavailable(f"{self.path} changed {READ_ATTEMPTS} times while being read")

    def _write(
        self, record: LeaseRecord, expected_version: str | None, abandoned: threading.Event
    ) -> LeaseRecord:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise LeaseUnavailable(f"cannot create {self.path.parent}: {error}") from error
        versions = self._versions()
        newest = versions[-1] if versions else None
        if expected_version is None and newest is not None:
            raise LeaseConflict(f"{self.path} exists (version {newest})")
        if expected_version is not None and str(newest) != expected_version:
            found = newest if newest is not None else "none"
            raise LeaseConflict(f"{self.path} is at version {found}, not {expected_version}")
        version = (newest or 0) + 1
        stored = replace(record, version=str(version))
        target = self.version_path(version)
        self._link(json.dumps(encode(stored), indent=1) + "\n", target, abandoned)
        # Paused between the listing and the link, this member may have linked a
        # version the others moved past (and pruned): theirs is the lease, not ours.
        if max(self._versions(), default=version) != version:
            with contextlib.suppress(OSError):
                os.unlink(target)
            raise LeaseConflict(f"{self.path} moved past version {version} while it was written")
        self._prune(version)
        return stored

    def _link(self, text: str, target: Path, abandoned: threading.Event) -> None:
        """`text` under the name `target`, complete and durable, or LeaseConflict if taken."""
        try:
            fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(text)
                    out.flush()
                    os.fsync(out.fileno())
                if abandoned.is_set():
                    raise LeaseUnavailable("the caller gave up waiting")
                os.link(temp, target)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except FileExistsError:
            raise LeaseConflict(f"{target.name} was written by the other member first") from None
        except OSError as error:
            raise LeaseUnavailable(f"cannot write {target}: {error}") from error

    def _prune(self, newest: int) -> None:
        """Versions older than the KEEP newest, and temporary files a crashed writer left."""
        for version in self._versions():
            if version <= newest - KEEP:
                with contextlib.suppress(OSError):
                    os.unlink(self.version_path(version))
        leftover = f".{self.path.name}."
        now = time.time()
        for entry in os.scandir(self.path.parent):
            if entry.name.startswith(leftover):
                with contextlib.suppress(OSError):
                    if now - entry.stat().st_mtime > STALE_TEMP:
                        os.unlink(entry.path)


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
