"""Durable local files: whole reads and durable appends.

Blocking calls, meant to run in a worker thread (`asyncio.to_thread`).
Values that are replaced (the intent state, published tables, the lease)
are numbered files written by compare-and-swap: `failover.intent.versioned`.

- `read_bytes`: the file's content, or None when there is none.
- `append_lines`: one `write` of whole lines to an `O_APPEND` file, fsynced.
  The kernel places each `O_APPEND` write at the end as one piece, so two
  processes appending to one file need no lock and never interleave lines.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def read_bytes(path: Path) -> bytes | None:
    """The file's content, or None when there is no file."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def append_lines(path: Path, lines: Sequence[bytes]) -> None:
    """Append whole lines (without their newlines) durably, in one write."""
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


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
