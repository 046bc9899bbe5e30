"""What a reconciler has achieved, as observed: progress for `--wait`, and an apply's result."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Progress:
    """One cluster, from the watch cache (what the WLEs hold, not what was written)."""

    cluster: str
    generation: int | None  # of the table being enforced (None: none yet)
    desired: int  # managed WLEs (with a target)
    in_sync: int  # of which hold their target
    synced: bool  # the cache has listed the cluster at least once
    watching: bool  # the watch is up (else the figures may be stale)
    refused: str | None = None  # the last table refused (blast radius), with the numbers
    stopped: str | None = None  # why writing stopped (fenced, lease lost)
    # DestinationRules whose locality `distribute` overrides the WLE weights (not fought,
    # and not part of `converged`: the WLEs do hold their targets)
    conflicts: tuple[str, ...] = ()

    @property
    def converged(self) -> bool:
        return (
            self.synced
            and self.generation is not None
            and self.in_sync == self.desired
            and self.refused is None
        )

    def __str__(self) -> str:
        table = "no table" if self.generation is None else f"table {self.generation}"
        text = f"{self.cluster}: {self.in_sync}/{self.desired} WorkloadEntries in sync ({table})"
        if not self.synced:
            text += ", not listed yet"
        elif not self.watching:
            text += ", watch down"
        if self.refused:
            text += f"; refused: {self.refused}"
        if self.stopped:
            text += f"; stopped: {self.stopped}"
        text += "".join(f"\n  conflict: {c}" for c in self.conflicts)
        return text


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What `Reconciler.apply()` wrote."""

    cluster: str
    generation: int
    entries: int  # WLEs the plan touched
    patched: int  # patches the server accepted
    conflicts: int  # 409s (re-read and rebuilt)
    failed: tuple[str, ...]  # WLEs left unwritten, with the error

    @property
    def ok(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        text = (
            f"{self.cluster}: {self.patched} patches to {self.entries} WorkloadEntries"
            f" (table {self.generation}, {self.conflicts} conflicts re-read)"
        )
        return text + "".join(f"\n  failed {f}" for f in self.failed)
