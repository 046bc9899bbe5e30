"""The plan: what must change on the DNS server for it to serve a table. Pure, printable.

Computed from what gtm wants (`records.desired`) and what the server holds
now (`ZoneState`, None for a missing zone), like external-dns's plan: only
the rrsets that differ are written. gtm owns the LUA rrsets it marked
(`--[[gtm]]`) and every LUA, A, AAAA and CNAME rrset at a service's name; a
marked rrset no service wants any more is deleted, and so are plain records
at a service's name, which would otherwise be answered beside the LUA ones.

Blast radius (octodns' rule, DESIGN §4): a plan that replaces or deletes
more than `limit` of the existing gtm rrsets is unsafe and is applied only
when forced. Creations and the generation marker do not count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from gtm.exporters.lua import is_managed
from gtm.exporters.records import RRset, ZoneRecords, ZoneState
from policies import Check, UnsafePlan

OWNED_TYPES = frozenset({"LUA", "A", "AAAA", "CNAME"})


class Action(StrEnum):
    CREATE = "create"
    REPLACE = "replace"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    new: RRset | None  # what is written (create, replace)
    old: RRset | None  # what is there now (replace, delete)

    @property
    def rrset(self) -> RRset:
        r = self.new or self.old
        assert r is not None
        return r

    def to_api(self) -> dict[str, object]:
        """The rrset of a PATCH body: REPLACE for a creation too, DELETE for a deletion."""
        if self.action is Action.DELETE:
            return self.rrset.to_api("DELETE")
        return self.rrset.to_api("REPLACE")

    def lines(self) -> list[str]:
        r = self.rrset
        sign = {Action.CREATE: "+", Action.REPLACE: "~", Action.DELETE: "-"}[self.action]
        out = [f"  {sign} {self.action.value:<7} {r.name} {r.type} ttl {r.ttl}"]
        old = set(self.old.records) if self.old is not None else set()
        new = set(self.new.records) if self.new is not None else set()
        if self.old is not None and self.new is not None and self.old.ttl != self.new.ttl:
            out[0] += f" (was {self.old.ttl})"
        if self.old is not None and self.old.disabled:
            out.append(f"      ! {self.old.disabled} disabled record(s) there now")
        out += [f"      - {c}" for c in sorted(old - new)]
        out += [f"      + {c}" for c in sorted(new - old)]
        return out


@dataclass(frozen=True)
class ZonePlan:
    zone: str
    create: ZoneRecords | None  # the zone is missing: created with SOA, NS and `changes`
    changes: tuple[Change, ...]  # gtm's rrsets, by name
    marker: Change | None  # the generation TXT, when it changes
    existing: int  # gtm rrsets in the zone now
    published: int | None  # generation the zone says it serves now

    @property
    def changed(self) -> bool:
        return self.create is not None or bool(self.changes) or self.marker is not None

    def count(self, *actions: Action) -> int:
        return sum(1 for c in self.changes if c.action in actions)

    def lines(self) -> list[str]:
        if self.create is not None:
            head = (
                f"zone {self.zone}: missing; create it (Native, SOA and NS "
                f"{', '.join(self.create.nameservers)}) with {len(self.changes)} rrset(s)"
            )
        elif not self.changed:
            head = f"zone {self.zone}: up to date ({self.existing} gtm rrset(s))"
        else:
            changed = self.count(Action.REPLACE, Action.DELETE)
            head = (
                f"zone {self.zone}: {self.count(Action.CREATE)} to create, "
                f"{changed} of {self.existing} gtm rrset(s) to replace or delete"
            )
        out = [head]
        for c in self.changes:
            out += c.lines()
        if self.marker is not None:
            was = "none" if self.published is None else str(self.published)
            new = self.marker.rrset.records[0]
            out.append(f"  ~ generation {self.marker.rrset.name} TXT {new} (was {was})")
        return out


@dataclass(frozen=True, slots=True)
class Safety:
    changed: int  # existing gtm rrsets the plan replaces or deletes
    existing: int
    limit: float  # safety.max_row_change_share

    @property
    def share(self) -> float:
        return self.changed / self.existing if self.existing else 0.0

    @property
    def unsafe(self) -> bool:
        return self.existing > 0 and self.share > self.limit

    def check(self) -> Check:
        message = (
            f"plan changes {self.changed} of {self.existing} existing gtm records "
            f"({self.share:.0%}), more than safety.max_row_change_share "
            f"{self.limit:.0%}; refused unless forced"
            if self.unsafe
            else f"plan changes {self.changed} of {self.existing} existing gtm records "
            f"({self.share:.0%}), within safety.max_row_change_share {self.limit:.0%}"
        )
        return Check(
            "max_row_change_share",
            not self.unsafe,
            message,
            changed=self.changed,
            total=self.existing,
            limit=self.limit,
        )

    def __str__(self) -> str:
        verdict = "REFUSED unless forced" if self.unsafe else "within the limit"
        return (
            f"blast radius: {self.changed} of {self.existing} existing gtm rrset(s) change "
            f"({self.share:.0%}), limit {self.limit:.0%}: {verdict}"
        )


@dataclass(frozen=True)
class Plan:
    server: str  # where it applies, for people
    generation: int  # the table generation it publishes
    zones: tuple[ZonePlan, ...]
    safety: Safety

    @property
    def changed(self) -> bool:
        return any(z.changed for z in self.zones)

    @property
    def rrsets_changed(self) -> int:
        return sum(len(z.changes) for z in self.zones)

    @property
    def published(self) -> int | None:
        """The generation the server serves now (the lowest its zones say), if any."""
        found = [z.published for z in self.zones if z.published is not None]
        return min(found) if found else None

    def raise_if_unsafe(self, *, force: bool = False) -> None:
        if self.safety.unsafe and not force:
            raise UnsafePlan([self.safety.check()])

    def lines(self) -> list[str]:
        was = "nothing" if self.published is None else f"generation {self.published}"
        verb = "publish" if self.changed else "nothing to change for"
        out = [f"{self.server}: {verb} generation {self.generation} (serving {was})"]
        for z in self.zones:
            out += z.lines()
        out.append(str(self.safety))
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def plan_zone(want: ZoneRecords, have: ZoneState | None) -> ZonePlan:
    """The changes that make `have` serve `want`."""
    if have is None:
        created = tuple(Change(Action.CREATE, r, None) for r in want.rrsets)
        return ZonePlan(
            want.zone, want, created, Change(Action.CREATE, want.generation, None), 0, None
        )
    wanted = {(r.name, r.type): r for r in want.rrsets}
    names = {r.name for r in want.rrsets}
    owned = {
        key: r
        for key, r in have.rrsets.items()
        if (r.type == "LUA" and any(is_managed(c) for c in r.records))
        or (r.name in names and r.type in OWNED_TYPES)
    }
    changes: list[Change] = []
    for key, new in wanted.items():
        old = have.rrsets.get(key)
        if old is None:
            changes.append(Change(Action.CREATE, new, None))
        elif old != new:
            changes.append(Change(Action.REPLACE, new, old))
    changes += [Change(Action.DELETE, None, old) for key, old in owned.items() if key not in wanted]
    changes.sort(key=lambda c: (c.rrset.name, c.rrset.type))
    old_marker = have.rrsets.get((want.generation.name, "TXT"))
    marker = None
    if old_marker != want.generation:
        action = Action.CREATE if old_marker is None else Action.REPLACE
        marker = Change(action, want.generation, old_marker)
    return ZonePlan(
        want.zone, None, tuple(changes), marker, len(owned), have.published_generation()
    )


def make_plan(
    server: str,
    generation: int,
    wanted: Sequence[ZoneRecords],
    current: Mapping[str, ZoneState | None],
    limit: float,
) -> Plan:
    zones = tuple(plan_zone(w, current.get(w.zone)) for w in wanted)
    changed = sum(z.count(Action.REPLACE, Action.DELETE) for z in zones)
    existing = sum(z.existing for z in zones)
    return Plan(server, generation, zones, Safety(changed, existing, limit))
