"""The cluster's DestinationRules, re-listed on a period and checked for `distribute` conflicts.

A re-list every `rules_resync` seconds (30 by default), not a watch:
DestinationRules are few and rarely change, and a conflict is a standing
misconfiguration to report, not an event to act on — gtm never writes a
DestinationRule. A small list on a period costs less than a second
long-lived watch per cluster, needs no resourceVersion, 410 or bookmark
handling, and picks up by itself a resource that becomes served or readable
later (Istio upgraded, RBAC fixed).

Reading the rules never stops the reconciler: a 404 (the cluster does not
serve them), a 403 (RBAC does not grant the list) or an error left after
retries is logged once (`mesh.destinationrules_unreadable`, again only when
the reason changes) and the next period tries again. A 404 means there are
none, so known conflicts clear; otherwise the last conflicts seen are kept.

Each new conflict is logged once as `mesh.distribute_conflict` (warning),
each one gone as `mesh.distribute_conflict_cleared`; the
`gtm_mesh_distribute_conflicts` gauge holds how many there are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import structlog

from failover.distribute import DistributeConflict, distribute_conflicts
from failover.entries import EntryCalls
from failover.metrics import ClusterMetrics
from failover.settings import ClusterSettings
from kube import Forbidden, KubeError, NotFound

log = structlog.get_logger(__name__)


class RuleScanner:
    """Keeps the distribute conflicts of one cluster's DestinationRules, as last read."""

    def __init__(
        self,
        settings: ClusterSettings,
        kube: EntryCalls,
        metrics: ClusterMetrics,
        services: Mapping[str, str],
        localities: Mapping[str, str],
    ) -> None:
        self._s = settings
        self._kube = kube
        self._metrics = metrics
        self._services = dict(services)  # managed service -> FQDN
        self._localities = dict(localities)
        self._current: dict[str, DistributeConflict] = {}
        self._unreadable: str | None = None  # why the last read failed (the kind of failure)
        self._log = log.bind(cluster=settings.name)

    @property
    def conflicts(self) -> tuple[str, ...]:
        return tuple(self._current)

    async def run(self) -> None:
        """Scan now and every `rules_resync` seconds, until cancelled."""
        while True:
            try:
                await self.scan()
            except Exception as e:  # a rule nobody foresaw must not take the reconciler down
                self._unread("not understood", f"{type(e).__name__}: {e}")
            # a period, not a retry backoff: not the reconciler's injected `sleep`, which
            # tests may make instant (this loop would then spin on the API)
            await asyncio.sleep(self._s.rules_resync)

    async def scan(self) -> tuple[str, ...]:
        """List the rules once and update the conflicts; the conflicts."""
        try:
            rules = await self._kube.list_rules()
        except NotFound as e:
            self._unread("not served", e.message or str(e))
            self._update(())  # nothing served, nothing to override the weights
            return self.conflicts
        except Forbidden as e:
            self._unread("forbidden", e.message or str(e))
            return self.conflicts
        except KubeError as e:
            self._unread("unreadable", str(e))
            return self.conflicts
        if self._unreadable is not None:
            self._log.info("mesh.destinationrules_readable", after=self._unreadable)
            self._unreadable = None
        self._update(distribute_conflicts(rules, self._services, self._localities))
        return self.conflicts

    def _unread(self, kind: str, detail: str) -> None:
        if self._unreadable != kind:
            self._unreadable = kind
            self._log.warning(
                "mesh.destinationrules_unreadable",
                why=f"destinationrules {kind}",
                detail=detail,
                namespace=self._s.namespace or "(all)",
            )

    def _update(self, found: Iterable[DistributeConflict]) -> None:
        now = {str(c): c for c in found}
        for text, c in now.items():
            if text not in self._current:
                self._log.warning("mesh.distribute_conflict", **_log_fields(c))
        for text, c in self._current.items():
            if text not in now:
                self._log.info("mesh.distribute_conflict_cleared", **_log_fields(c))
        self._current = now
        self._metrics.conflicts(len(now))


def _log_fields(c: DistributeConflict) -> dict[str, str]:
    where = c.where or "top level"
    return {
        "rule": c.rule,
        "host": c.host,
        "service": c.service,
        "where": where,
        "conflict": str(c),
    }
