"""The operators' intent as a value: overrides in force plus tombstones of the ended ones.

Pure: every operation returns a new state and reads no clock (`now` is
passed in). The state only grows: an override, once ended (removed, closed
by an `enter`, expired), leaves a tombstone that keeps its id ended for
ever, so a peer that still holds the override cannot bring it back.

- `version` counts the changes a state holds: +1 per override added, +1 per
  override ended (a tombstone of an id never seen counts 2: it was added and
  ended). It is derived from the content, so it rises with every change,
  stays put on a no-op, and two states that merged the same changes have the
  same version whichever order they merged them in.
- `epoch` is the highest writer epoch (the leader Lease's transition count)
  the store has accepted. It belongs to one store (one region's HA pair):
  `merge` keeps the receiver's epoch and never imports a peer's.
- `merge` is the anti-entropy join: union by id minus tombstones. It is
  idempotent, commutative and associative on the content (overrides,
  tombstones, version); when two states hold different overrides under one
  id (a bug, or two writers reusing an id) the larger canonical JSON wins, and
  of two tombstones of one id the earliest, so every peer picks the same.
- `digest` tells two states of equal version apart (peers compare both).
- `compact(ids)` drops tombstones once they can do no more good:
  `compactable(peers, before)` names those that ended before `before` (the
  leader passes now minus `TOMBSTONE_BOUND`, a week) and that no peer holds in
  force, so no merge can bring their override back. `retired` counts the
  tombstones dropped, and counts in `version` as they did, so versions still
  only rise. A peer that has not compacted yet sends a dropped tombstone
  back; it is dropped again at the next compaction (merge takes the highest
  `retired`), and the pair converges once every peer has compacted it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from intent.codec import override_from_dict, override_to_dict
from intent.errors import IntentConflict, UnknownOverride
from policies.overrides import Kind, Override, active

FORMAT = 1
EXPIRY_WHO = "gtm"
TOMBSTONE_BOUND = 7 * 86400.0  # seconds past its end before a tombstone may be compacted


class Ending(StrEnum):
    REMOVED = "removed"  # an operator removed it
    ENTERED = "entered"  # an `enter` of its region closed it (exits only)
    EXPIRED = "expired"  # its expiry passed


@dataclass(frozen=True, slots=True)
class Tombstone:
    """An ended override: which, how, by whom, when and why."""

    id: str
    ending: Ending
    who: str
    why: str
    when: float
    by: str | None = None  # ENTERED: the id of the enter override that closed it

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ending": self.ending.value,
            "who": self.who,
            "why": self.why,
            "when": self.when,
            "by": self.by,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Tombstone:
        try:
            return cls(
                id=str(d["id"]),
                ending=Ending(d["ending"]),
                who=str(d["who"]),
                why=str(d["why"]),
                when=float(d["when"]),
                by=None if d.get("by") is None else str(d["by"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a tombstone: {e!r}") from e


@dataclass(frozen=True)
class IntentState:
    overrides: Mapping[str, Override] = field(default_factory=dict)  # id -> override in force
    tombstones: Mapping[str, Tombstone] = field(default_factory=dict)  # id -> how it ended
    epoch: int = 0
    retired: int = 0  # tombstones compacted away

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))
        object.__setattr__(self, "tombstones", MappingProxyType(dict(self.tombstones)))
        for key, o in self.overrides.items():
            if key != o.id:
                raise ValueError(f"override {o.id} stored under id {key}")
        for key, t in self.tombstones.items():
            if key != t.id:
                raise ValueError(f"tombstone {t.id} stored under id {key}")
        both = sorted(set(self.overrides) & set(self.tombstones))
        if both:
            raise ValueError(f"overrides both in force and ended: {both}")
        if self.epoch < 0:
            raise ValueError(f"epoch {self.epoch} < 0")
        if self.retired < 0:
            raise ValueError(f"retired {self.retired} < 0")

    # --- reading -----------------------------------------------------------

    @property
    def version(self) -> int:
        return len(self.overrides) + 2 * (len(self.tombstones) + self.retired)

    @property
    def digest(self) -> str:
        """SHA-256 of the content (overrides and tombstones, not the epoch)."""
        body = self.to_dict()
        del body["epoch"], body["version"]
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def same_intent(self, other: IntentState) -> bool:
        """Equal content, whatever the epochs."""
        return self.overrides == other.overrides and self.tombstones == other.tombstones

    def knows(self, override_id: str) -> bool:
        return override_id in self.overrides or override_id in self.tombstones

    def active(self, now: float) -> list[Override]:
        """The overrides in force at `now`, oldest first (the engine's input)."""
        return active(self.overrides.values(), now)

    # --- changing ----------------------------------------------------------

    def with_epoch(self, epoch: int) -> IntentState:
        return self if epoch == self.epoch else replace(self, epoch=epoch)

    def add(self, override: Override) -> IntentState:
        """Add an override. A no-op (same state, same version) when the id is already
        stored or ended, or an override with the same intent (every field but id and
        `created`) is in force. The same id with different content is an IntentConflict.
        """
        if override.id in self.tombstones:
            return self
        held = self.overrides.get(override.id)
        if held is not None:
            if held == override:
                return self
            raise IntentConflict(
                f"override {override.id} is already stored with other content: "
                f"{held.describe()} (now: {override.describe()}); use a new id"
            )
        if any(_same_intent(o, override) for o in self.overrides.values()):
            return self
        return replace(self, overrides={**self.overrides, override.id: override})

    def remove(self, override_id: str, who: str, why: str, now: float) -> IntentState:
        """End an override in force; a no-op if it has ended already."""
        if override_id in self.tombstones:
            return self
        if override_id not in self.overrides:
            raise UnknownOverride(f"no override {override_id!r} is stored")
        return self._end([Tombstone(override_id, Ending.REMOVED, who, why, now)], ())

    def enter(
        self,
        region: str,
        services: Iterable[str] | None,
        ramp: float | None,
        who: str,
        why: str,
        now: float,
        *,
        ticket: str | None = None,
        id: str | None = None,
        lasts: float = 0.0,
    ) -> IntentState:
        """Bring `region` back (for `services`, None: all): close the exits it ends — and,
        when `services` are named, the drains of those services — and
        add an ENTER override that lives `ramp` seconds (at least `lasts`, at least
        one second; `ramp` None: each service ramps over its policy's ramp), so the
        engine ramps back and the service can order the layers
        (the mesh first, DNS after its TTL) while the override is in force.

        An exit (or drain) of some services that the enter covers only in part is
        narrowed to the rest (a new one, id `<id>~<enter id>`). An enter of the
        whole region leaves its drains alone: a drain is taken back by naming its
        services (or removing it), never as a side effect. An exit of every service
        cannot be narrowed to "all but these": entering part of it is an IntentConflict.
        The default id is derived from the arguments: the same call twice changes
        nothing the second time (nor does any call whose id is already known).
        """
        if ramp is not None and ramp < 0:
            raise ValueError(f"enter {region}: ramp must be >= 0 seconds, not {ramp}")
        scope = None if services is None else frozenset(services)
        if scope is not None and not scope:
            raise ValueError(f"enter {region}: an empty service list enters nothing")
        enter_id = id or _derived_id("enter", region, scope, ramp, who, why, now)
        if self.knows(enter_id):
            return self
        ended: list[Tombstone] = []
        narrowed: list[Override] = []
        for o in sorted(self.overrides.values(), key=lambda o: o.id):
            if o.region != region or o.kind not in (Kind.EXIT, Kind.DRAIN):
                continue
            if o.kind is Kind.DRAIN and scope is None:
                continue
            if scope is not None and o.services is None:
                raise IntentConflict(
                    f"enter {region} for {len(scope)} service(s): exit {o.id} ({o.describe()}) "
                    "covers every service; enter the whole region, or remove it and "
                    "exit the remaining services"
                )
            if scope is not None and o.services is not None and not (o.services & scope):
                continue
            ended.append(Tombstone(o.id, Ending.ENTERED, who, why, now, by=enter_id))
            rest = None if scope is None or o.services is None else o.services - scope
            if rest:
                narrowed.append(replace(o, id=f"{o.id}~{enter_id}", services=rest))
        entering = Override(
            id=enter_id,
            kind=Kind.ENTER,
            region=region,
            who=who,
            why=why,
            created=now,
            services=scope,
            ticket=ticket,
            expires=now + max(ramp or 0.0, lasts, 1.0),
            ramp=ramp,
        )
        return self._end(ended, (*narrowed, entering))

    def expire(self, now: float) -> tuple[IntentState, tuple[Override, ...]]:
        """End the overrides whose expiry is at or before `now`; returns them, oldest first.

        The tombstone's time is the expiry itself, so every peer expiring the same
        override writes the same tombstone.
        """
        gone = tuple(
            sorted(
                (o for o in self.overrides.values() if o.expires is not None and o.expires <= now),
                key=lambda o: (o.expires, o.id),
            )
        )
        if not gone:
            return self, ()
        stones = [
            Tombstone(o.id, Ending.EXPIRED, EXPIRY_WHO, "expired", o.expires or now) for o in gone
        ]
        return self._end(stones, ()), gone

    def compactable(self, peers: Iterable[IntentState], before: float) -> frozenset[str]:
        """The tombstones that ended before `before` and that no peer holds in force.
        `peers` must be every peer's state: one not heard from may hold the override."""
        in_force = set().union(*(p.overrides for p in peers))
        return frozenset(
            key for key, t in self.tombstones.items() if t.when < before and key not in in_force
        )

    def compact(self, ids: Iterable[str]) -> IntentState:
        """Drop these tombstones (ids that are none are ignored); `version` stays."""
        gone = set(ids) & set(self.tombstones)
        if not gone:
            return self
        kept = {k: t for k, t in self.tombstones.items() if k not in gone}
        return replace(self, tombstones=kept, retired=self.retired + len(gone))

    def merge(self, other: IntentState) -> IntentState:
        """Anti-entropy join with a peer's state (see the module docstring)."""
        tombstones = dict(self.tombstones)
        for key, t in other.tombstones.items():
            mine = tombstones.get(key)
            tombstones[key] = t if mine is None else min(mine, t, key=_tombstone_order)
        overrides: dict[str, Override] = {}
        for source in (self.overrides, other.overrides):
            for key, o in source.items():
                if key in tombstones:
                    continue
                mine = overrides.get(key)
                overrides[key] = o if mine is None else max(mine, o, key=_override_order)
        merged = IntentState(overrides, tombstones, self.epoch, max(self.retired, other.retired))
        return self if merged == self else merged

    def _end(self, stones: Iterable[Tombstone], added: Iterable[Override]) -> IntentState:
        overrides = dict(self.overrides)
        tombstones = dict(self.tombstones)
        for t in stones:
            overrides.pop(t.id, None)
            tombstones[t.id] = t
        for o in added:
            overrides[o.id] = o
        return replace(self, overrides=overrides, tombstones=tombstones)

    # --- encoding ----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "epoch": self.epoch,
            "overrides": [override_to_dict(self.overrides[k]) for k in sorted(self.overrides)],
            "tombstones": [self.tombstones[k].to_dict() for k in sorted(self.tombstones)],
            "retired": self.retired,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IntentState:
        """Raises ValueError on anything that is not a state of a known format."""
        try:
            if d.get("format") != FORMAT:
                raise ValueError(f"unknown format {d.get('format')!r} (this gtm reads {FORMAT})")
            overrides = [override_from_dict(o) for o in d["overrides"]]
            tombstones = [Tombstone.from_dict(t) for t in d["tombstones"]]
            return cls(
                overrides={o.id: o for o in overrides},
                tombstones={t.id: t for t in tombstones},
                epoch=int(d["epoch"]),
                retired=int(d.get("retired", 0)),
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"not an intent state: {e!r}") from e

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> IntentState:
        return cls.from_dict(json.loads(text))


EMPTY = IntentState()


def _same_intent(a: Override, b: Override) -> bool:
    """Every field but the id and the creation time."""
    return _intent_key(a) == _intent_key(b)


def _intent_key(o: Override) -> tuple[object, ...]:
    return (o.kind, o.region, o.services, o.who, o.why, o.ticket, o.expires, o.ramp, o.force)


def _override_order(o: Override) -> str:
    return json.dumps(override_to_dict(o), sort_keys=True)


def _tombstone_order(t: Tombstone) -> tuple[float, str]:
    return (t.when, json.dumps(t.to_dict(), sort_keys=True))


def _derived_id(kind: str, region: str, scope: frozenset[str] | None, *rest: object) -> str:
    services = None if scope is None else sorted(scope)
    raw = json.dumps([kind, region, services, *rest], default=str)
    return f"{kind}-{region}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"
