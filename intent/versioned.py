"""A value kept as numbered files, written by compare-and-swap without a lock.

    files = VersionedFiles(Path("state/table-dns.json"))
    newest = files.newest()                       # (version, bytes) or None
    files.write(newest.version + 1, data)         # VersionTaken if someone else got there

The value is its newest file `<path>.<version>` (ten digits); the two before
it are kept for a look back. A write puts the whole value in a temporary
file, fsyncs it, and hard-links it to the next version's name: the link
fails when the name exists, so of two writers racing for one version exactly
one wins, and a reader never sees a partial file. Nothing is held between
reading and writing, so a writer paused anywhere (SIGSTOP, a frozen VM)
blocks nobody; when it wakes, its late link is refused (the name exists) or,
if the others moved past that version and pruned it, found behind a newer
one and withdrawn. Blocking calls, meant for a worker thread. OS errors are
the caller's to name.

`newest_valid(parse)` reads from the newest down and returns the first
version `parse` accepts, with the newer ones it skipped and why: for derived
values (a published table) that a reader may rebuild from an older one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

from intent.atomic_file import OS_DISK, Disk

KEEP = 3  # files kept: the value and the two before it
STALE_TEMP = 60.0  # seconds after which a temporary file is a crashed writer's leftover
READ_ATTEMPTS = 5  # the newest may be pruned between listing and reading

T = TypeVar("T")


class VersionTaken(Exception):
    """Another writer wrote this version (or a later one) first."""


class Version(NamedTuple):
    version: int
    data: bytes


class Skipped(NamedTuple):
    path: Path
    why: str


class Found(NamedTuple, Generic[T]):
    """The newest version `parse` accepted, what it made of it, and the newer ones skipped."""

    version: int  # 0: none accepted
    value: T | None
    skipped: list[Skipped]  # newest first
    top: int  # the highest version number present (the next write takes top + 1)


class VersionedFiles:
    def __init__(self, path: Path | str, disk: Disk = OS_DISK) -> None:
        self.path = Path(path)  # the value's name; its files are `<path>.<version>`
        self.disk = disk

    def version_path(self, version: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{version:010d}")

    def versions(self) -> list[int]:
        return self._versions_in(self._names())

    def _names(self) -> list[str]:
        try:
            return os.listdir(self.path.parent)
        except FileNotFoundError:
            return []

    def _versions_in(self, names: list[str]) -> list[int]:
        prefix = self.path.name + "."
        return sorted(
            int(n[len(prefix) :])
            for n in names
            if n.startswith(prefix) and n[len(prefix) :].isdigit()
        )

    def newest(self, first_line_only: bool = False) -> Version | None:
        """The newest version and its bytes (or its first line), None when there is none."""
        for _ in range(READ_ATTEMPTS):
            versions = self.versions()
            if not versions:
                return None
            try:
                with self.version_path(versions[-1]).open("rb") as f:
                    data = f.readline() if first_line_only else f.read()
            except FileNotFoundError:
                continue  # pruned by a newer write since the listing: look again
            return Version(versions[-1], data)
        raise OSError(f"{self.path} changed {READ_ATTEMPTS} times while being read")

    def newest_valid(
        self, parse: Callable[[Version, int], T], first_line_only: bool = False
    ) -> Found[T]:
        """From the newest down, the first version `parse(version, file size)` accepts;
        `parse` raises ValueError with the reason for one it does not. With no
        version accepted (or none there), `value` is None and `version` 0."""
        for _ in range(READ_ATTEMPTS):
            versions = self.versions()
            skipped: list[Skipped] = []
            top = versions[-1] if versions else 0
            try:
                for version in reversed(versions):
                    path = self.version_path(version)
                    with path.open("rb") as f:
                        data = f.readline() if first_line_only else f.read()
                        size = os.fstat(f.fileno()).st_size
                    try:
                        return Found(version, parse(Version(version, data), size), skipped, top)
                    except ValueError as e:
                        skipped.append(Skipped(path, str(e)))
            except FileNotFoundError:
                continue  # pruned by a newer write since the listing: look again
            return Found(0, None, skipped, top)
        raise OSError(f"{self.path} changed {READ_ATTEMPTS} times while being read")

    def retry(self, attempt: Callable[[], T], timeout: float) -> T:
        """Run `attempt` (read the newest, decide, write the next) again, after a short
        random pause, each time it loses a race (VersionTaken); TimeoutError once
        `timeout` seconds have passed. A loss means the other writer won, so this
        ends unless a writer keeps winning for that long."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return attempt()
            except VersionTaken:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{self.path}: lost every race for {timeout:g}s") from None
                time.sleep(random.uniform(0.001, 0.01))

    def write(
        self, version: int, data: bytes, abandoned: Callable[[], bool] = lambda: False
    ) -> None:
        """`data` as `version`, complete and durable, or VersionTaken. Nothing is linked
        once `abandoned()` says the caller stopped waiting."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        target = self.version_path(version)
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            try:
                view = memoryview(data)
                while view:
                    written = self.disk.write(fd, view)
                    if written <= 0:
                        raise OSError(errno.ENOSPC, "nothing written", temp)
                    view = view[written:]
                self.disk.fsync(fd)
            finally:
                os.close(fd)
            if abandoned():
                raise TimeoutError("the caller gave up waiting")
            try:
                self.disk.link(temp, str(target))
            except FileExistsError:
                raise VersionTaken(f"{target.name} was written by another writer first") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        # Paused between reading and linking, this writer may have linked a version
        # the others moved past (and pruned): theirs is the value, not ours.
        names = self._names()
        if max(self._versions_in(names), default=version) != version:
            with contextlib.suppress(OSError):
                os.unlink(target)
            raise VersionTaken(f"{self.path} moved past version {version} while it was written")
        self._prune(version, names)

    def _prune(self, newest: int, names: list[str]) -> None:
        """Versions older than the KEEP newest, and temporary files a crashed writer left."""
        for version in self._versions_in(names):
            if version <= newest - KEEP:
                with contextlib.suppress(OSError):
                    os.unlink(self.version_path(version))
        leftover = f".{self.path.name}."
        now = time.time()
        for name in names:
            if name.startswith(leftover):
                path = self.path.parent / name
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > STALE_TEMP:
                        path.unlink()
