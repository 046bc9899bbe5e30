"""Durable local appends, through a small disk seam.

Blocking calls, meant to run in a worker thread (`asyncio.to_thread`).
Values that are replaced (the intent state, published tables, the lease)
are numbered files written by compare-and-swap: `intent.versioned`.

- `Disk`: the operations that fail when the state directory is full (ENOSPC),
  read-only (EROFS) or broken (EIO). The stores take one; tests hand in a
  subclass that fails the way a disk does instead of patching `os`.
- `append_lines`: one `write` of whole lines to an `O_APPEND` file, fsynced.
  The kernel places each `O_APPEND` write at the end as one piece, so two
  processes appending to one file need no lock and never interleave lines.
  A short write (the disk filled up mid-line) or a failed fsync is undone:
  the file is cut back to where this append began, so no torn line stays.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple


class Disk:
    """The operating system's file calls; subclass to fail like a full or read-only disk."""

    def write(self, fd: int, data: bytes | memoryview) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def link(self, src: str, dst: str) -> None:
        os.link(src, dst)


OS_DISK = Disk()


class Appended(NamedTuple):
    """Where one append landed: bytes [start, end) of the file `inode`."""

    start: int
    end: int
    inode: int


def append_lines(path: Path, lines: Sequence[bytes], disk: Disk = OS_DISK) -> Appended:
    """Append whole lines (without their newlines) durably, in one write, or not at all."""
    if any(b"\n" in line for line in lines):
        raise ValueError("append_lines takes lines without newlines")
    block = b"".join(line + b"\n" for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        stat = os.fstat(fd)
        size = stat.st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"  # a crash cut the last line
        data = (b"\n" if torn else b"") + block
        written = disk.write(fd, data)  # O_APPEND: one piece at the end, never interleaved
        end = os.lseek(fd, 0, os.SEEK_CUR)
        try:
            if written != len(data):
                # a regular file takes a short write when the space runs out
                detail = f"{os.strerror(errno.ENOSPC)}; wrote {written} of {len(data)} bytes"
                raise OSError(errno.ENOSPC, detail, str(path))
            disk.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                _cut_back(fd, Appended(end - written, end, stat.st_ino))
            raise
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)
    return Appended(end - written, end, stat.st_ino)


def withdraw(path: Path, appended: Appended) -> bool:
    """Cut the file back to before `appended`; False when something was appended after
    it, or the file was rotated (then it stays: entries carry ids, so a repeat can be
    recognised)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        return _cut_back(fd, appended)
    finally:
        os.close(fd)


def _cut_back(fd: int, appended: Appended) -> bool:
    stat = os.fstat(fd)
    if stat.st_ino != appended.inode or stat.st_size != appended.end:
        return False
    os.ftruncate(fd, appended.start)
    os.fsync(fd)
    return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
