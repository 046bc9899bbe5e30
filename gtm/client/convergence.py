"""When a runbook change is done, judged from what the members report (pure).

"Done" means observed, not written. A change (the overrides one action
stored) has converged on a member when its status shows every one of them
admitted in both layers' tables — DNS and mesh — (or ended since, for an
`enter` that has finished its ramp) and every cluster it reconciles holds
its WorkloadEntries in sync. The runbook CLI then also asks each member's
DNS what it answers (`gtm.client.answers_check`), which these statuses cannot show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gtm.status import LAYERS, MemberStatus, MeshProgress


@dataclass(frozen=True, slots=True)
class Change:
    ids: tuple[str, ...]  # the overrides the action stored
    region: str
    leaving: bool  # exit or drain: answers leave the region; enter: they come back
    services: frozenset[str] | None  # None: every service
    settles_at: float | None = None  # an enter: when DNS has ramped back (epoch seconds)

    def describe(self) -> str:
        scope = "all services" if self.services is None else ", ".join(sorted(self.services))
        return f"{'out of' if self.leaving else 'back into'} {self.region} ({scope})"


@dataclass(frozen=True, slots=True)
class MemberView:
    """One member as the client saw it on one poll."""

    url: str
    status: MemberStatus | None
    problem: str | None = None  # unreachable, token refused, status off-contract
    ended: frozenset[str] = frozenset()  # ids this member holds as ended (tombstones)


@dataclass(frozen=True, slots=True)
class MemberProgress:
    name: str
    role: str
    generation: int | None
    layers: Mapping[str, bool]  # layer -> every id admitted (or ended)
    mesh: Mapping[str, MeshProgress]
    problem: str | None = None
    mesh_generation: int | None = None

    @property
    def done(self) -> bool:
        return (
            self.problem is None
            and all(self.layers.values())
            and all(p.synced_to(self.mesh_generation) for p in self.mesh.values())
        )

    def line(self) -> str:
        head = f"{self.name} ({self.role})"
        if self.problem is not None:
            return f"{head}: {self.problem}"
        gen = "—" if self.generation is None else str(self.generation)
        marks = " ".join(f"{layer} {'✓' if ok else '…'}" for layer, ok in self.layers.items())
        wles = ", ".join(_cluster(c, p, self.mesh_generation) for c, p in sorted(self.mesh.items()))
        return f"{head}: DNS generation {gen}; admitted {marks}" + (
            f"; WLEs patched {wles}" if wles else ""
        )

    def state(self) -> str:
        """`line()` without the figures that move on every poll (generations, counts)."""
        head = f"{self.name} ({self.role})"
        if self.problem is not None:
            return f"{head}: {self.problem}"
        marks = " ".join(f"{layer} {'✓' if ok else '…'}" for layer, ok in self.layers.items())
        synced = all(p.synced_to(self.mesh_generation) for p in self.mesh.values())
        wles = "" if not self.mesh else f"; WLEs {'in sync' if synced else 'being patched'}"
        return f"{head}: admitted {marks}{wles}"


def needs_tombstones(change: Change, status: MemberStatus) -> bool:
    """Some id is neither admitted nor in force here: ask the member whether it ended."""
    return any(
        i not in status.intent.ids and not all(status.admits(layer, i) for layer in LAYERS)
        for i in change.ids
    )


def progress(change: Change, view: MemberView) -> MemberProgress:
    status = view.status
    if status is None:
        return MemberProgress(view.url, "?", None, {}, {}, view.problem or "no status")
    layers = {
        layer: all(status.admits(layer, i) or i in view.ended for i in change.ids)
        for layer in LAYERS
    }
    return MemberProgress(
        status.identity,
        status.role,
        status.generation,
        layers,
        status.mesh,
        view.problem,
        status.mesh_generation,
    )


def _cluster(name: str, p: MeshProgress, mesh_generation: int | None) -> str:
    text = f"{name} {p.in_sync}/{p.desired}"
    if p.conflicts:  # shown, not waited on: gtm does not fight them
        text += f" ({len(p.conflicts)} overridden by a DestinationRule distribute: gtm status)"
    if p.refused is not None:
        return f"{text} (refused: {p.refused})"
    if mesh_generation is not None and p.generation not in (None, mesh_generation):
        return f"{text} (enforcing table {p.generation}, not yet {mesh_generation})"
    return text


def ended_ids(intent: Mapping[str, Any]) -> frozenset[str]:
    """The ended ids of an intent state as `GET /v1/overrides` returns it."""
    return frozenset(str(t.get("id")) for t in intent.get("tombstones", ()) if isinstance(t, dict))
