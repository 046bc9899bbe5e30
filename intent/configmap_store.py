"""The intent store in Kubernetes: a ConfigMap whose data holds the state as JSON.

Compare-and-swap on `metadata.resourceVersion` (see `configmap_cas`): the
state is read, `fn` applied under the fencing rules of `store`, and written
with a PUT carrying the resourceVersion read; a 409 re-reads and re-applies
`fn`. The ConfigMap is created on the first write. The `kube.Client`
belongs to the caller, who closes it.
"""

from __future__ import annotations

from dataclasses import replace

import structlog
from prometheus_client import CollectorRegistry

from intent.audit import AuditLog
from intent.configmap_cas import ConfigMapCAS, ConfigMapData
from intent.errors import CorruptState
from intent.metrics import StoreMetrics
from intent.state import EMPTY, IntentState
from intent.store import Update, next_state, record
from kube import Client

log = structlog.get_logger(__name__)

KEY = "intent.json"
LABEL = "configmap/intent"


class ConfigMapIntentStore:
    def __init__(
        self,
        client: Client,
        *,
        name: str = "gtm-intent",
        namespace: str = "gtm",
        audit: AuditLog | None = None,
        metrics: StoreMetrics | None = None,
    ) -> None:
        self.audit = audit
        self.metrics = metrics or StoreMetrics(CollectorRegistry())
        self._cas = ConfigMapCAS(
            client,
            name,
            namespace,
            store=LABEL,
            labels={"app.kubernetes.io/name": "gtm", "app.kubernetes.io/component": "intent"},
            metrics=self.metrics,
        )

    async def load(self) -> IntentState:
        return self._decode(await self._cas.read())

    async def update(self, fn: Update, epoch: int) -> IntentState:
        def change(current: ConfigMapData) -> ConfigMapData | None:
            before = self._decode(current)
            after = next_state(before, fn, epoch, self._cas.where)
            if after is before:
                return None
            return replace(current, data={**current.data, KEY: after.to_json()})

        try:
            swap = await self._cas.swap(change)
        except Exception as error:
            self.metrics.failed(LABEL, error)
            raise
        after = self._decode(swap.after)
        if not swap.wrote:
            self.metrics.wrote(LABEL, "unchanged")
            return after
        before = self._decode(swap.before)
        self.metrics.wrote(LABEL, "written")
        log.info(
            "intent.written",
            store=LABEL,
            configmap=self._cas.where,
            version=after.version,
            epoch=after.epoch,
            resource_version=swap.after.resource_version,
        )
        await record(LABEL, self.audit, before, after)
        return after

    def _decode(self, current: ConfigMapData) -> IntentState:
        raw = current.data.get(KEY)
        if raw is None:
            return EMPTY
        try:
            return IntentState.from_json(raw)
        except ValueError as e:
            raise CorruptState(
                f"{self._cas.where}: data[{KEY}] is not a readable intent state ({e}); "
                "it will not be overwritten"
            ) from e
