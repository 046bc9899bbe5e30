"""Writes one WorkloadEntry to its target: diff, fence, patch, and on a 409 re-read and rebuild.

The patches of a WLE are written one at a time, each diffed against the
copy the previous answer returned (status first, then the main resource);
each carries the resourceVersion it was computed from. A 409 means someone
else wrote the WLE in between: the writer GETs it and diffs again, so their
change (another condition, a label) is kept and only what still differs is
written. Before every write the fence is checked (`fencing`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from failover.cache import EntryCache
from failover.desired import Target
from failover.entries import EntryCalls
from failover.fencing import Fenced, WriteFence, WriteStopped
from failover.mesh_plan import diff
from failover.metrics import ClusterMetrics
from failover.settings import ClusterSettings
from failover.workload import WorkloadEntry
from kube import Conflict, NotFound, PermanentError

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Written:
    patched: int = 0
    conflicts: int = 0
    gone: bool = False


class EntryWriter:
    def __init__(
        self,
        settings: ClusterSettings,
        kube: EntryCalls,
        cache: EntryCache,
        metrics: ClusterMetrics,
        now: Callable[[], datetime],
    ) -> None:
        self._s = settings
        self._kube = kube
        self._cache = cache
        self._metrics = metrics
        self._now = now

    def checked(self, check: Callable[[WorkloadEntry], None], entry: WorkloadEntry) -> None:
        """`check(entry)`, counting a stop by why (gtm_wle_writes_stopped_total)."""
        try:
            check(entry)
        except WriteStopped as e:
            self._metrics.stopped("fenced" if isinstance(e, Fenced) else "lease")
            raise

    async def converge(self, entry: WorkloadEntry, target: Target, fence: WriteFence) -> Written:
        """Patch `entry` until it holds `target`; raises `WriteStopped` or a `KubeError`."""
        patched = conflicts = 0
        budget = 2 + 2 * self._s.retry.conflict_attempts  # writes, re-reads included
        for _ in range(budget):
            self.checked(fence.refuse_newer, entry)  # a stale leader stops where nothing differs
            patches = diff(
                self._s.name,
                entry,
                target,
                epoch=fence.epoch,
                now=self._now(),
                ensure_annotation=self._s.ensure_annotation,
            )
            if not patches:
                return Written(patched, conflicts)
            self.checked(fence.check, entry)
            patch = patches[0]
            try:
                obj = await self._kube.patch_entry(
                    patch.namespace, patch.name, patch.document(), status=patch.status
                )
            except Conflict:
                self._metrics.patch(status=patch.status, result="conflict")
                conflicts += 1
                if conflicts > self._s.retry.conflict_attempts:
                    raise
                try:
                    obj = await self._kube.get_entry(entry.namespace, entry.name)
                except NotFound:
                    self._cache.forget(entry.key)
                    return Written(patched, conflicts, gone=True)
            except NotFound:
                self._metrics.patch(status=patch.status, result="gone")
                self._cache.forget(entry.key)
                return Written(patched, conflicts, gone=True)
            except Exception:
                self._metrics.patch(status=patch.status, result="error")
                raise
            else:
                self._metrics.patch(status=patch.status, result="ok")
                patched += 1
            entry = self._cache.observe(obj)
        raise PermanentError(
            None, "NotConverging", f"{entry} still differs after {budget} writes and re-reads"
        )
