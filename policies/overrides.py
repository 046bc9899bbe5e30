"""Operator intent: region exits, re-entries, service drains and rollout windows.

An override is a fact the store keeps durably; the engine reads the ones
active at `now` (created at or before it, not yet expired) and admits them
through the guardrails in creation order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    EXIT = "exit"  # take a region out (for all services, or the listed ones)
    ENTER = "enter"  # bring a region back: ramps its cells over `ramp`
    DRAIN = "drain"  # take the listed services out of a region
    ROLLOUT = "rollout"  # hold the region's cells within the policy's rollout bounds


@dataclass(frozen=True, slots=True)
class Override:
    id: str
    kind: Kind
    region: str
    who: str
    why: str
    created: float
    services: frozenset[str] | None = None  # None: every service
    ticket: str | None = None
    expires: float | None = None
    ramp: float | None = None  # ENTER: seconds to ramp back (None: the policy's)
    force: bool = False  # bypass guardrails; `why` says why

    def __post_init__(self) -> None:
        if self.kind is Kind.DRAIN and not self.services:
            raise ValueError(f"override {self.id}: a drain names its services")
        if self.expires is not None and self.expires <= self.created:
            raise ValueError(f"override {self.id}: expires before it starts")
        if self.force and not self.why.strip():
            raise ValueError(f"override {self.id}: forcing needs a reason")

    def active(self, now: float) -> bool:
        return self.created <= now and (self.expires is None or now < self.expires)

    def covers(self, service: str) -> bool:
        return self.services is None or service in self.services

    def describe(self) -> str:
        scope = "all services" if self.services is None else ",".join(sorted(self.services))
        return f"{self.kind.value} {self.region} ({scope}) by {self.who}: {self.why}"


def active(overrides: Iterable[Override], now: float) -> list[Override]:
    """The overrides in force at `now`, oldest first (ties by id)."""
    return sorted((o for o in overrides if o.active(now)), key=lambda o: (o.created, o.id))
