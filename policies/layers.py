"""The ordered change across the two layers: DNS first, the mesh after the DNS TTL.

A region exit (or drain) must stop new clients arriving before the mesh
moves the traffic already inside: DNS drops the region at once, the
WorkloadEntries follow once every cached DNS answer has expired (TTL plus a
margin). Re-entry runs the other way: the mesh takes the region back first,
DNS after the same hold. Both views are derived from the durable intent and
the clock alone, so after a crash or a leader change the change rolls
forward from where the intent says it is.

Outages are not ordered: a VIP that is down is down for both layers at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from policies.overrides import Kind, Override

_LEAVING = (Kind.EXIT, Kind.DRAIN)


@dataclass(frozen=True)
class LayerIntent:
    dns: tuple[Override, ...]
    mesh: tuple[Override, ...]
    # overrides the mesh has not taken yet, and when it will
    mesh_pending: tuple[tuple[Override, float], ...]


def layer_intent(
    active: Sequence[Override],
    now: float,
    hold: float,
    seen: Mapping[str, float] | None = None,
) -> LayerIntent:
    """The overrides each layer sees at `now`.

    `active` are the overrides in force (oldest first); `hold` is the DNS
    TTL plus the margin. The hold runs from when this region first saw the
    override (`seen`, by id; default its creation): a region that learns of
    an exit late from its peers still lets its DNS lead its mesh by the hold.
    """
    seen = seen or {}
    dns: list[Override] = []
    mesh: list[Override] = []
    pending: list[tuple[Override, float]] = []
    for o in active:
        start = max(o.created, seen.get(o.id, o.created))
        if o.kind in _LEAVING:
            dns.append(o)
            if now - start >= hold:
                mesh.append(o)
            else:
                pending.append((o, start + hold))
        elif o.kind is Kind.ENTER:
            mesh.append(o)
            dns.append(o)
            if now - start < hold:
                # The exit this enter closed still holds DNS: keep the region
                # out of answers until the mesh has had the hold to take it.
                dns.append(
                    replace(
                        o,
                        id=f"{o.id}/dns-hold",
                        kind=Kind.EXIT,
                        created=start - hold,
                        expires=start + hold,
                        ramp=None,
                    )
                )
        else:
            dns.append(o)
            mesh.append(o)
    dns.sort(key=lambda o: (o.created, o.id))
    return LayerIntent(tuple(dns), tuple(mesh), tuple(pending))


class FirstSeen:
    """When this member first saw each override in force.

    Seeded with the creation times of the overrides in force at its first
    update (a restarted pair must not hold again what both layers already
    have); an override that appears later was seen when it appeared.
    """

    def __init__(self) -> None:
        self._seen: dict[str, float] | None = None

    def update(self, active: Sequence[Override], now: float) -> Mapping[str, float]:
        if self._seen is None:
            self._seen = {o.id: o.created for o in active}
        ids = {o.id for o in active}
        for oid in ids - self._seen.keys():
            self._seen[oid] = now
        for oid in self._seen.keys() - ids:
            del self._seen[oid]
        return self._seen

    def adopt(self, theirs: Mapping[str, float]) -> Mapping[str, float]:
        """Take another member's earlier sightings of overrides this member tracks."""
        if self._seen is None:
            return {}
        for oid, at in theirs.items():
            mine = self._seen.get(oid)
            if mine is not None and at < mine:
                self._seen[oid] = at
        return self._seen

    def times(self) -> Mapping[str, float]:
        return dict(self._seen or {})
