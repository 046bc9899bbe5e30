"""The table the leader last published, kept so the standby serves the same answers.

The leader saves every table it publishes with its generation and its epoch;
the standby loads it to answer DNS from it, and continues from it when it
takes over, so traffic does not jump. Fencing as for intent: a save from an
epoch below the stored one raises `StaleEpoch`; within one epoch the
generation never goes back (`StaleGeneration`), and saving the same
generation again is a no-op when the rows are the same and refused when they
are not. A higher epoch may save any generation (and must save at least once
to fence the old leader off).

The stored form is a small header (`PublishedHead`: epoch, generation, time,
SHA-256 and size of the table's JSON, and when the leader first saw each
override in force, so that its standby holds the mesh from the same moment)
and the table's JSON. `head()` reads
only the header, so a standby polling for a new generation decodes the table
only when there is one. Backends: `FilePublishedStore` (header line + table
line, in numbered files written by compare-and-swap) and, in `configmap_published`, a ConfigMap
(gzip + base64 in `binaryData`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog
from prometheus_client import CollectorRegistry

from intent.atomic_file import OS_DISK, Disk
from intent.errors import CorruptState, StaleGeneration, StoreUnavailable
from intent.metrics import StoreMetrics
from intent.store import check_epoch
from intent.versioned import Found, Version, VersionedFiles
from policies.table import WeightTable

log = structlog.get_logger(__name__)

FORMAT = 1
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PublishedHead:
    epoch: int
    generation: int
    published_at: float
    sha256: str  # of the table's JSON
    size: int  # bytes of the table's JSON
    # override id -> when the leader first saw it in force (its DNS hold starts there)
    seen: Mapping[str, float] = field(default_factory=dict, compare=False)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "epoch": self.epoch,
                "generation": self.generation,
                "published_at": self.published_at,
                "sha256": self.sha256,
                "size": self.size,
                "seen": dict(self.seen),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> PublishedHead:
        try:
            d: dict[str, Any] = json.loads(raw)
            if d.get("format") != FORMAT:
                raise ValueError(f"unknown format {d.get('format')!r}")
            return cls(
                epoch=int(d["epoch"]),
                generation=int(d["generation"]),
                published_at=float(d["published_at"]),
                sha256=str(d["sha256"]),
                size=int(d["size"]),
                seen={str(k): float(v) for k, v in d.get("seen", {}).items()},
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"not a published-table header: {e!r}") from e


@dataclass(frozen=True)
class Published:
    table: WeightTable
    head: PublishedHead

    @property
    def generation(self) -> int:
        return self.table.generation

    @property
    def epoch(self) -> int:
        return self.head.epoch


class PublishedStore(Protocol):
    async def head(self) -> PublishedHead | None: ...

    async def load(self) -> Published | None: ...

    async def save(
        self,
        table: WeightTable,
        epoch: int,
        now: float,
        seen: Mapping[str, float] | None = None,
    ) -> Published: ...


@dataclass(frozen=True)
class Encoded:
    """A table ready to store: its JSON and the header that describes it."""

    head: PublishedHead
    body: bytes

    @classmethod
    def of(
        cls, table: WeightTable, epoch: int, now: float, seen: Mapping[str, float] | None = None
    ) -> Encoded:
        body = table.to_json()
        digest = hashlib.sha256(body).hexdigest()
        head = PublishedHead(epoch, table.generation, now, digest, len(body), dict(seen or {}))
        return cls(head, body)


def must_write(where: str, stored: PublishedHead | None, new: PublishedHead) -> bool:
    """Apply the fencing rules; False when this very table is stored already."""
    if stored is None:
        return True
    check_epoch(where, new.epoch, stored.epoch)
    if new.epoch > stored.epoch:
        return True
    if new.generation < stored.generation:
        raise StaleGeneration(
            where, new.epoch, new.generation, stored.generation, "generations only rise"
        )
    if new.generation == stored.generation:
        if new.sha256 == stored.sha256:
            return False
        raise StaleGeneration(
            where, new.epoch, new.generation, stored.generation, "with other rows"
        )
    return True


def decode_table(where: str, head: PublishedHead, body: bytes) -> Published:
    try:
        return Published(table_of(head, body), head)
    except ValueError as e:
        raise CorruptState(f"{where}: {e}") from e


def table_of(head: PublishedHead, body: bytes) -> WeightTable:
    """The table `body` holds, checked against its header; ValueError with the reason."""
    _check_sha(head, body)
    try:
        table = WeightTable.from_json(body)
    except ValueError as e:
        raise ValueError(f"the stored table is not readable: {e}") from e
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"the stored JSON is not a table: {e!r}") from e
    if table.generation != head.generation:
        raise ValueError(f"header says generation {head.generation}, table {table.generation}")
    return table


class FilePublishedStore:
    """The embedded default: `<state dir>/table-dns.json.<n>`, header line then table.

    Compare-and-swap on numbered files without a lock (`intent.versioned`),
    so a leader paused in the middle of a save cannot stall its successor's.

    The table is derived data (the leader evaluates it again from intent and
    health), so a version that cannot be read (garbage, cut short, JSON that is
    not a table) does not stop a member: `head()`, `load()` and `save()` use the
    newest valid version, and the ones skipped are logged once
    (`published.skipped`, each file with why). A save goes above every version,
    valid or not; the skipped ones are pruned in their turn. `head()` checks the
    header and the file's size (cheap); `load()` and `save()` check the table's
    SHA-256 too, so a sound header over a damaged table (rare: the size matches)
    is skipped by them, and read again by a standby polling `head()` until the
    leader's next save goes above it.
    """

    LABEL = "file/published"

    def __init__(
        self,
        path: Path | str,
        *,
        race_timeout: float = 10.0,
        metrics: StoreMetrics | None = None,
        disk: Disk = OS_DISK,
    ) -> None:
        self.path = Path(path)
        self.race_timeout = race_timeout
        self._files = VersionedFiles(self.path, disk)
        self.metrics = metrics or StoreMetrics(CollectorRegistry())
        self._reported: set[Path] = set()
        self._known: tuple[int, str] | None = None  # (version, SHA-256) known to hold a table

    def _stored_head(self, version: Version, size: int) -> PublishedHead:
        head, body = _split(version, size)
        if self._known == (version.version, head.sha256):
            _check_sha(head, body)  # known to be a table: its SHA-256 only
            return head
        table_of(head, body)  # read whole (SHA-256 too): is it a table?
        self._known = (version.version, head.sha256)
        return head

    async def head(self) -> PublishedHead | None:
        return await asyncio.to_thread(self._head)

    async def load(self) -> Published | None:
        return await asyncio.to_thread(self._load)

    async def save(
        self,
        table: WeightTable,
        epoch: int,
        now: float,
        seen: Mapping[str, float] | None = None,
    ) -> Published:
        try:
            published, wrote = await asyncio.to_thread(self._save, table, epoch, now, seen)
        except Exception as error:
            self.metrics.failed(self.LABEL, error)
            raise
        self.metrics.wrote(self.LABEL, "written" if wrote else "unchanged")
        if wrote:
            log.info("published.saved", store=self.LABEL, generation=table.generation, epoch=epoch)
        return published

    def _save(
        self, table: WeightTable, epoch: int, now: float, seen: Mapping[str, float] | None
    ) -> tuple[Published, bool]:
        encoded = Encoded.of(table, epoch, now, seen)
        data = encoded.head.to_json().encode() + b"\n" + encoded.body

        def attempt() -> tuple[Published, bool]:
            # the whole newest valid version: a header over a table that is not its
            # own must not fence the leader off from the generation after the last good
            # one. The version this store wrote or read whole last is not parsed again
            # (a held GIL for a second at 4,000 services): its SHA-256 is checked.
            newest = self._find(self._stored_head)
            stored = newest.value
            if not must_write(str(self.path), stored, encoded.head):
                assert stored is not None
                return Published(table, stored), False
            self._files.write(newest.top + 1, data)
            self._known = (newest.top + 1, encoded.head.sha256)
            return Published(table, encoded.head), True

        try:
            return self._files.retry(attempt, self.race_timeout)
        except OSError as error:
            raise StoreUnavailable.from_os("write", self.path, error) from error

    def _head(self) -> PublishedHead | None:
        return self._find(_head_of, first_line_only=True).value

    def _load(self) -> Published | None:
        return self._find(_published_of).value

    def _find(self, parse: Callable[[Version, int], T], first_line_only: bool = False) -> Found[T]:
        try:
            found = self._files.newest_valid(parse, first_line_only)
        except OSError as error:
            raise StoreUnavailable.from_os("read", self.path, error) from error
        fresh = [s for s in found.skipped if s.path not in self._reported]
        if fresh:
            self._reported.update(s.path for s in fresh)
            log.warning(
                "published.skipped",
                store=self.LABEL,
                path=str(self.path),
                skipped=[{"file": str(s.path), "why": s.why} for s in fresh],
                using=str(self._files.version_path(found.version)) if found.version else None,
            )
        return found


def _head_of(version: Version, size: int) -> PublishedHead:
    """The header of a stored file whose size matches what the header promises."""
    head = PublishedHead.from_json(version.data)
    expected = len(version.data) + head.size
    if size != expected:
        raise ValueError(f"{size} bytes, its header promises {expected} (cut short or padded)")
    return head


def _split(version: Version, size: int) -> tuple[PublishedHead, bytes]:
    """A whole stored file's header (its size checked) and the table's bytes."""
    line, _, body = version.data.partition(b"\n")
    return _head_of(Version(version.version, line + b"\n"), size), body


def _check_sha(head: PublishedHead, body: bytes) -> None:
    if hashlib.sha256(body).hexdigest() != head.sha256:  # hashlib lets go of the GIL
        raise ValueError("the stored table does not match its header's SHA-256")


def _published_of(version: Version, size: int) -> Published:
    head, body = _split(version, size)
    return Published(table_of(head, body), head)
