"""The append-only history of operator intent: accepted, refused, entered, removed, expired.

Entries are values. `transitions(before, after)` derives them from a store
write (the stores record them after each write they make); refusals come from
the operator actions (`gtm.service.operations`), which record one
`AuditEntry.refused(...)` per refused action: its plan's first failed rule, and
every reason. Entries derived from a state have ids made of their action and
the override's id, so recording one change twice (a
retried request, two members recording the same merge) can be recognised.

`FileAudit` is the embedded default: JSON Lines, each append one fsynced
`O_APPEND` write, with no lock: concurrent appenders do not interleave, and a
member paused mid-append blocks no other. An append that fails part-way (a
full disk) is cut back, so no torn line stays, and raises `StoreUnavailable`
naming the errno and the file. The ConfigMap backend lives in
`configmap_audit`.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, overload

import structlog

from intent.atomic_file import OS_DISK, Appended, Disk, append_lines, withdraw
from intent.codec import override_from_dict, override_to_dict
from intent.errors import StoreUnavailable
from intent.state import Ending, IntentState, Tombstone
from policies.guardrails import Refusal
from policies.overrides import Kind, Override

log = structlog.get_logger(__name__)


class Action(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    ENTERED = "entered"
    REMOVED = "removed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    action: Action
    at: float  # when it happened (the override's creation, the tombstone's time)
    override_id: str
    who: str  # who did it ("gtm" for an expiry)
    why: str
    what: str  # the override, for people
    ticket: str | None = None
    rule: str | None = None  # refused: the guardrail's rule
    override: Override | None = None  # the override itself, when known

    @classmethod
    def accepted(cls, o: Override) -> AuditEntry:
        action = Action.ENTERED if o.kind is Kind.ENTER else Action.ACCEPTED
        return cls(
            id=f"{action.value}:{o.id}",
            action=action,
            at=o.created,
            override_id=o.id,
            who=o.who,
            why=o.why,
            what=o.describe(),
            ticket=o.ticket,
            override=o,
        )

    @classmethod
    def ended(cls, t: Tombstone, o: Override | None) -> AuditEntry:
        action = Action.EXPIRED if t.ending is Ending.EXPIRED else Action.REMOVED
        why = t.why if t.ending is not Ending.ENTERED else f"closed by {t.by}: {t.why}"
        return cls(
            id=f"{action.value}:{t.id}",
            action=action,
            at=t.when,
            override_id=t.id,
            who=t.who,
            why=why,
            what=o.describe() if o is not None else f"override {t.id}",
            ticket=o.ticket if o is not None else None,
            override=o,
        )

    @classmethod
    def refused(cls, o: Override, refusal: Refusal, at: float) -> AuditEntry:
        return cls(
            id=f"refused:{o.id}:{refusal.rule}:{at!r}",
            action=Action.REFUSED,
            at=at,
            override_id=o.id,
            who=o.who,
            why=refusal.message,
            what=o.describe(),
            ticket=o.ticket,
            rule=refusal.rule,
            override=o,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action.value,
            "at": self.at,
            "override_id": self.override_id,
            "who": self.who,
            "why": self.why,
            "what": self.what,
            "ticket": self.ticket,
            "rule": self.rule,
            "override": None if self.override is None else override_to_dict(self.override),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AuditEntry:
        try:
            o = d.get("override")
            return cls(
                id=str(d["id"]),
                action=Action(d["action"]),
                at=float(d["at"]),
                override_id=str(d["override_id"]),
                who=str(d["who"]),
                why=str(d["why"]),
                what=str(d["what"]),
                ticket=d.get("ticket"),
                rule=d.get("rule"),
                override=None if o is None else override_from_dict(o),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not an audit entry: {e!r}") from e

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


# (ids accepted before, ids ended before): what the audit already holds
Audited = tuple[frozenset[str], frozenset[str]]


def transitions(
    before: IntentState, after: IntentState, seen: Audited | None = None
) -> list[AuditEntry]:
    """The entries for the change from `before` to `after`, in the order they happened.

    `seen`: what was audited before `before` — a store that went back to an older
    version (its newest file deleted) and is restored from the peers' copies gets its
    lost overrides again, which were accepted (and ended) once already: not twice."""
    known, ended = seen if seen is not None else (frozenset(), frozenset())
    entries = [
        AuditEntry.accepted(o)
        for key, o in after.overrides.items()
        if key not in before.overrides and key not in before.tombstones and key not in known
    ]
    entries += [
        AuditEntry.ended(t, before.overrides.get(key))
        for key, t in after.tombstones.items()
        if key not in before.tombstones and key not in ended
    ]
    first = (Action.ACCEPTED, Action.ENTERED)
    return sorted(entries, key=lambda e: (e.at, e.action not in first, e.override_id))


@dataclass(frozen=True)
class AuditPage(Sequence[AuditEntry]):
    """One page of the history, newest first. `next`, passed back as `before`, asks for
    the page of older entries; None when there is none."""

    entries: tuple[AuditEntry, ...] = ()
    next: str | None = None

    @overload
    def __getitem__(self, i: int) -> AuditEntry: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[AuditEntry]: ...
    def __getitem__(self, i: int | slice) -> AuditEntry | Sequence[AuditEntry]:
        return self.entries[i]

    def __len__(self) -> int:
        return len(self.entries)


class BadCursor(ValueError):
    """A `before` cursor this audit did not hand out."""


class AuditLog(Protocol):
    async def append(self, entries: Sequence[AuditEntry]) -> None: ...

    async def history(
        self, limit: int = 100, since: float | None = None, before: str | None = None
    ) -> AuditPage:
        """The newest `limit` entries at or after `since`, newest first; `before`: only
        entries older than that cursor (a page's `next`). Raises BadCursor."""
        ...


def newest_first(
    entries: Sequence[AuditEntry], limit: int, since: float | None, before: str | None = None
) -> AuditPage:
    """`entries` in append order -> the history's page; the cursor is an entry's id."""
    end = len(entries)
    if before is not None:
        ids = [e.id for e in entries]
        if before not in ids:
            raise BadCursor(f"before: {before!r} is no entry this audit still holds")
        end = ids.index(before)
    if limit <= 0:
        return AuditPage()
    picked: list[AuditEntry] = []
    for i in range(end - 1, -1, -1):
        e = entries[i]
        if since is None or e.at >= since:
            picked.append(e)
            if len(picked) == limit:
                return AuditPage(tuple(picked), e.id if i > 0 else None)
    return AuditPage(tuple(picked))


@dataclass(frozen=True, slots=True)
class SegmentIndex:
    """What a rotated segment holds: its entries and the span of their times."""

    entries: int
    oldest: float | None
    newest: float | None

    def to_json(self) -> bytes:
        return json.dumps(
            {"entries": self.entries, "oldest": self.oldest, "newest": self.newest}
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> SegmentIndex:
        d = json.loads(raw)
        oldest, newest = d["oldest"], d["newest"]
        return cls(
            int(d["entries"]),
            None if oldest is None else float(oldest),
            None if newest is None else float(newest),
        )


class FileAudit:
    """JSON Lines in local files, rotated by size, indexed, read back newest first in pages.

    Appends go to `<path>` (`audit.jsonl`). Before an append finds it at
    `segment_bytes` or more, it is rotated: hard-linked to the next segment,
    `<path>.<n>` (ten digits, rising), and unlinked, so an appender that opened
    it a moment before still lands in that segment. Each segment gets an index
    beside it (`<segment>.idx`: its entries and the span of their times; made
    again from the segment when missing or unreadable). Segments are kept until
    they hold more than `keep_bytes` together (None: all), then the oldest go
    (back them up with the state directory; a real deployment also ships the
    `intent.*` log events).

    `history(limit)` reads the live file, then the segments from the newest,
    each from its end in blocks, and stops once it has `limit` entries: its
    cost follows `limit`, not the audit's age. `since` skips, by their index,
    the segments that hold nothing as young. A page's cursor (`next`) is the
    segment and byte offset of its oldest entry: the live file's is the number
    it will have once rotated, so a cursor still holds across a rotation."""

    SEGMENT_BYTES = 4 << 20
    BLOCK = 64 << 10

    def __init__(
        self,
        path: Path | str,
        disk: Disk = OS_DISK,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        keep_bytes: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.disk = disk
        self.segment_bytes = segment_bytes
        self.keep_bytes = keep_bytes
        self._rotating = threading.Lock()
        self._indexes: dict[int, SegmentIndex] = {}

    async def append(self, entries: Sequence[AuditEntry]) -> None:
        if entries:
            await asyncio.to_thread(self.append_now, entries)

    async def history(
        self, limit: int = 100, since: float | None = None, before: str | None = None
    ) -> AuditPage:
        return await asyncio.to_thread(self._newest, limit, since, before)

    def append_now(self, entries: Sequence[AuditEntry]) -> Appended:
        """Append in this thread (one O_APPEND write: appenders do not interleave)."""
        try:
            self._rotate_if_full()
            return append_lines(self.path, [e.to_json().encode() for e in entries], self.disk)
        except OSError as error:
            raise StoreUnavailable.from_os("append to the audit", self.path, error) from error

    def withdraw_now(self, appended: Appended, entries: Sequence[AuditEntry]) -> bool:
        """Take back an append whose change was not stored after all; False when it stays
        (another append came after it, or the file rotated): the caller must not append
        the same entries again."""
        try:
            if withdraw(self.path, appended):
                return True
            why = "appended to (or rotated) since"
        except OSError as error:
            why = str(StoreUnavailable.from_os("cut back the audit", self.path, error))
        log.error(
            "intent.audit_not_withdrawn",
            path=str(self.path),
            why=why,
            entries=[e.id for e in entries],
        )
        return False

    def segments(self) -> list[Path]:
        """The rotated segments, oldest first."""
        return [self._segment(n) for n in self._numbers()]

    def _numbers(self) -> list[int]:
        prefix = self.path.name + "."
        try:
            names = os.listdir(self.path.parent)
        except FileNotFoundError:
            return []
        return sorted(
            int(n[len(prefix) :])
            for n in names
            if n.startswith(prefix) and n[len(prefix) :].isdigit()
        )

    def _segment(self, number: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{number:010d}")

    def _rotate_if_full(self) -> None:
        with self._rotating:
            try:
                live = os.stat(self.path)
            except FileNotFoundError:
                return
            if live.st_size < self.segment_bytes:
                return
            numbers = self._numbers()
            number = numbers[-1] + 1 if numbers else 1
            try:
                self.disk.link(str(self.path), str(self._segment(number)))
            except FileExistsError:
                return  # another process rotates it now
            # unlink the live file only if it is still the one linked (another process
            # may have rotated it and started a new one meanwhile)
            if os.stat(self.path).st_ino == live.st_ino:
                self.path.unlink()
            log.info("intent.audit_rotated", path=str(self.path), segment=number)
            self._index(number)
            self._trim([*numbers, number])

    def _trim(self, numbers: list[int]) -> None:
        """Remove the oldest segments while they hold more than `keep_bytes` (never the newest)."""
        if self.keep_bytes is None:
            return
        sizes = []
        for n in numbers:
            try:
                sizes.append(os.stat(self._segment(n)).st_size)
            except FileNotFoundError:
                sizes.append(0)
        held = sum(sizes)
        for n, size in zip(numbers[:-1], sizes[:-1], strict=True):
            if held <= self.keep_bytes:
                return
            segment = self._segment(n)
            segment.unlink(missing_ok=True)
            segment.with_name(segment.name + ".idx").unlink(missing_ok=True)
            self._indexes.pop(n, None)
            held -= size
            log.info(
                "intent.audit_segment_removed",
                segment=str(segment),
                bytes=size,
                kept_bytes=held,
                keep_bytes=self.keep_bytes,
            )

    def _index(self, number: int) -> SegmentIndex:
        """The segment's index: remembered, else read beside it, else made (and written)."""
        known = self._indexes.get(number)
        if known is not None:
            return known
        segment = self._segment(number)
        beside = segment.with_name(segment.name + ".idx")
        try:
            index = SegmentIndex.from_json(beside.read_bytes())
        except (OSError, ValueError, KeyError, TypeError):
            index = self._scan(segment)
            try:
                scratch = beside.with_name(beside.name + ".tmp")
                scratch.write_bytes(index.to_json())
                scratch.replace(beside)
            except OSError as error:  # a cache: the next read makes it again
                log.warning("intent.audit_index_not_written", path=str(beside), error=str(error))
        self._indexes[number] = index
        return index

    @staticmethod
    def _scan(segment: Path) -> SegmentIndex:
        entries, times = 0, []
        try:
            with segment.open("rb") as f:
                for line in f:
                    try:
                        times.append(float(json.loads(line)["at"]))
                        entries += 1
                    except (ValueError, KeyError, TypeError):
                        continue
        except FileNotFoundError:
            pass
        return SegmentIndex(entries, min(times, default=None), max(times, default=None))

    def _newest(self, limit: int, since: float | None, before: str | None) -> AuditPage:
        start = _cursor(before) if before is not None else None
        if limit <= 0:
            return AuditPage()
        numbers = self._numbers()
        live = numbers[-1] + 1 if numbers else 1
        sources = [(live, self.path), *((n, self._segment(n)) for n in reversed(numbers))]
        picked: list[AuditEntry] = []
        for at, (number, path) in enumerate(sources):
            if start is not None and number > start[0]:
                continue
            if since is not None and number != live:
                newest = self._index(number).newest
                if newest is None or newest < since:
                    continue
            end = start[1] if start is not None and number == start[0] else None
            for offset, line in _lines_from_the_end(path, self.BLOCK, end):
                if not line.strip():
                    continue
                try:
                    entry = AuditEntry.from_dict(json.loads(line))
                except ValueError as e:  # a line cut by a crash, or edited by hand
                    log.warning(
                        "intent.audit_bad_line", path=str(path), offset=offset, error=str(e)
                    )
                    continue
                if since is None or entry.at >= since:
                    picked.append(entry)
                    if len(picked) == limit:
                        older = offset > 0 or at < len(sources) - 1
                        return AuditPage(tuple(picked), f"{number}:{offset}" if older else None)
        return AuditPage(tuple(picked))


def _cursor(before: str) -> tuple[int, int]:
    number, _, offset = before.partition(":")
    if not (number.isdigit() and offset.isdigit() and len(before) <= 40):
        raise BadCursor(f"before: {before[:40]!r} is not a cursor of this audit (SEGMENT:OFFSET)")
    return int(number), int(offset)


def _lines_from_the_end(
    path: Path, block: int, end: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """The file's lines that start before `end` (None: all), last first, each with its
    byte offset; nothing for no file."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    with f:
        size = f.seek(0, os.SEEK_END)
        end = size if end is None else min(end, size)
        rest = b""  # the start of a line whose beginning is in an earlier block
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start) + rest
            lines = chunk.split(b"\n")
            rest = lines[0] if start > 0 else b""
            first = 1 if start > 0 else 0
            position = start + len(chunk)
            for line in reversed(lines[first:]):
                position -= len(line) + 1
                yield max(position + 1, 0), line
            end = start
