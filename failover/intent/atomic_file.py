"""Durable local files: atomic replacement, durable appends, and an inter-process lock.

Blocking calls, meant to run in a worker thread (`asyncio.to_thread`).

- `write_atomic`: the new content goes to a temporary file in the same
  directory, is fsynced, renamed over the old file, and the directory is
  fsynced, so after a crash the file holds the old or the new content,
  never a mix. Temporary files a crashed writer left are swept by the next
  writer (under the lock).
- `append_lines`: one `write` of whole lines to an `O_APPEND` file, fsynced.
- `locked`: an exclusive `flock` on a sibling `.lock` file (not the data
  file, which rename replaces), polled until a timeout. `flock` locks belong
  to the open file, so two stores in one process exclude each other as two
  processes do.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from failover.intent.errors import StoreUnavailable

_POLL = 0.005


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp."


@contextlib.contextmanager
def locked(path: Path, timeout: float) -> Iterator[None]:
    """Hold the exclusive lock of `path` (creating its directory and lock file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreUnavailable(
                        f"{lock_path(path)}: still locked by another writer after {timeout:g}s"
                    ) from None
                time.sleep(_POLL)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_bytes(path: Path) -> bytes | None:
    """The file's content, or None when there is no file."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically and durably. Call it holding `locked(path)`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep(path)
    temp = path.with_name(f"{_temp_prefix(path)}{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _fsync_dir(path.parent)


def append_lines(path: Path, lines: Sequence[bytes]) -> None:
    """Append whole lines (without their newlines) durably, in one write. Call it
    holding `locked(path)`."""
    if any(b"\n" in line for line in lines):
        raise ValueError("append_lines takes lines without newlines")
    block = b"".join(line + b"\n" for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        size = os.fstat(fd).st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"  # a crash cut the last line
        _write_all(fd, (b"\n" if torn else b"") + block)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _sweep(path: Path) -> None:
    """Remove temporary files of writers that crashed before their rename."""
    for stale in path.parent.glob(_temp_prefix(path) + "*"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
