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
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

KEEP = 3  # files kept: the value and the two before it
STALE_TEMP = 60.0  # seconds after which a temporary file is a crashed writer's leftover
READ_ATTEMPTS = 5  # the newest may be pruned between listing and reading

T = TypeVar("T")


class VersionTaken(Exception):
    """Another writer wrote this version (or a later one) first."""


class Version(NamedTuple):
    version: int
    data: bytes


class VersionedFiles:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)  # the value's name; its files are `<path>.<version>`

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
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            if abandoned():
                raise TimeoutError("the caller gave up waiting")
            try:
                os.link(temp, target)
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
