"""The lease as every backend stores it, and the contract a backend keeps.

A lease names at most one holder. It is *free* when nobody holds it or when
the holder's last renewal is older than the lease's duration on the wall
clock (`renew_time + duration < now`). `transitions` counts the times it
changed hands; the member that takes it writes `transitions + 1`, and that
number is the new leader's fencing epoch. `version` is the backend's
compare-and-swap token (a resourceVersion, a file counter): `update` writes
only when the stored version is still `expected_version`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


class LeaseConflict(Exception):
    """The lease changed since it was read (or already exists on create): someone else wrote."""


class LeaseUnavailable(Exception):
    """The backend could not answer (API error, lock not obtained in time, unreadable file)."""


def _aware(name: str, moment: datetime | None) -> None:
    if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
        raise ValueError(f"LeaseRecord.{name} must be an aware datetime, got {moment!r}")


@dataclass(frozen=True)
class LeaseRecord:
    holder: str | None  # None: nobody holds the lease
    address: str | None  # where the holder takes writes (its API URL)
    acquire_time: datetime | None  # aware UTC
    renew_time: datetime | None  # aware UTC
    duration: float  # seconds a renewal is good for
    transitions: int  # times the lease changed hands: the fencing epoch of its holder
    version: str = ""  # the backend's compare-and-swap token ("" before it is stored)

    def __post_init__(self) -> None:
        _aware("acquire_time", self.acquire_time)
        _aware("renew_time", self.renew_time)
        if self.duration < 0:
            raise ValueError(f"LeaseRecord.duration must be >= 0, got {self.duration}")
        if self.transitions < 0:
            raise ValueError(f"LeaseRecord.transitions must be >= 0, got {self.transitions}")

    @property
    def expires_at(self) -> datetime | None:
        if self.renew_time is None:
            return None
        return self.renew_time + timedelta(seconds=self.duration)

    def held(self, now: datetime) -> bool:
        """Someone holds it and their last renewal is still good at `now`."""
        expires = self.expires_at
        return bool(self.holder) and expires is not None and not expires < now

    def held_by(self, identity: str) -> bool:
        return self.holder == identity


class LeaseBackend(Protocol):
    """Where the lease lives. Every method may raise; the elector bounds each with a timeout."""

    async def get(self) -> LeaseRecord | None:
        """The stored lease, or None when there is none yet."""
        ...

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        """Store a first lease; LeaseConflict if one exists. Returns it with its version."""
        ...

    async def update(self, record: LeaseRecord, expected_version: str) -> LeaseRecord:
        """Replace the lease if its version is still `expected_version`, else LeaseConflict."""
        ...
