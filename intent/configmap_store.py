"""The intent store in Kubernetes: a ConfigMap whose data holds the state as JSON.

Compare-and-swap on `metadata.resourceVersion` (see `configmap_cas`): the
state is read, `fn` applied under the fencing rules of `store`, and written
with a PUT carrying the resourceVersion read; a 409 re-reads and re-applies
`fn`. The ConfigMap is created on the first write. The `kube.Client`
belongs to the caller, who closes it.

Audited or not accepted, as with the file store: a round appends its audit
entries (`ConfigMapAudit.append_new`) before the one PUT that stores the
change; when the audit cannot be appended nothing is written, and the
entries this update appended that no stored change bears out (its write
lost a race, or failed) are withdrawn again (`ConfigMapAudit.withdraw`);
an entry that cannot be withdrawn is logged (`intent.audit_not_withdrawn`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import replace

import structlog
from prometheus_client import CollectorRegistry

from intent.audit import Audited, AuditEntry, transitions
from intent.configmap_audit import ConfigMapAudit
from intent.configmap_cas import ConfigMapCAS, ConfigMapData, WriteLost
from intent.errors import CorruptState, StoreUnavailable
from intent.metrics import StoreMetrics
from intent.state import EMPTY, IntentState
from intent.store import Update, log_transitions, next_state
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
        audit: ConfigMapAudit | None = None,
        metrics: StoreMetrics | None = None,
    ) -> None:
        self.audit = audit
        self.metrics = metrics or StoreMetrics(CollectorRegistry())
        # what the audit already holds of a state this store lost (the high-water guard's)
        self.audited: Callable[[], Audited | None] = lambda: None
        self._cas = ConfigMapCAS(
            client,
            name,
            namespace,
            store=LABEL,
            labels={"app.kubernetes.io/name": "gtm", "app.kubernetes.io/component": "intent"},
            metrics=self.metrics,
        )

    @property
    def where(self) -> str:
        return self._cas.where

    async def load(self) -> IntentState:
        return self._decode(await self._cas.read())

    async def update(self, fn: Update, epoch: int) -> IntentState:
        try:
            before, after, entries = await self._update(fn, epoch)
        except Exception as error:
            self.metrics.failed(LABEL, error)
            raise
        if after is before:
            self.metrics.wrote(LABEL, "unchanged")
            return after
        self.metrics.wrote(LABEL, "written")
        log.info(
            "intent.written",
            store=LABEL,
            configmap=self._cas.where,
            version=after.version,
            epoch=after.epoch,
            resource_version=self._cas.resource_version,
        )
        log_transitions(LABEL, entries)
        return after

    async def _update(
        self, fn: Update, epoch: int
    ) -> tuple[IntentState, IntentState, list[AuditEntry]]:
        """Rounds of read, decide, audit, write once; the audit entries this call
        appended that no stored change bears out are withdrawn on the way out."""
        retry = self._cas.client.retry
        first: IntentState | None = None  # the state as this call first read it
        last: IntentState | None = None  # as it last read or wrote it
        appended: list[str] = []
        try:
            for attempt in range(retry.conflict_attempts):
                # the first round tries the copy this store last wrote (no GET while it is
                # the only writer); only the server accepting the write confirms that copy
                decided = self._decide_on_copy(fn, epoch) if attempt == 0 else None
                if decided is None:
                    current = await self._cas.read()
                    before = self._decode(current)
                    after = next_state(before, fn, epoch, self._cas.where)
                    if after is before:
                        return before, after, []
                else:
                    current, before, after = decided
                last = before
                first = before if first is None else first
                entries = transitions(before, after, self.audited())
                if self.audit is not None:
                    fresh = [e for e in entries if e.id not in appended]
                    appended += await self.audit.append_new(fresh)  # raises: not accepted
                new = replace(current, data={**current.data, KEY: after.to_json()})
                try:
                    written = await self._cas.write_once(current, new)
                except WriteLost:
                    log.debug("intent.cas_conflict", store=LABEL)
                    await asyncio.sleep(random.uniform(0, retry.backoff))
                    continue
                last = self._decode(written)
                return before, last, entries
            raise StoreUnavailable(
                f"{self._cas.where}: gave up after {retry.conflict_attempts} conflicting "
                "writes (other writers keep changing it)"
            )
        finally:
            if appended and self.audit is not None:
                stored = set()
                if first is not None and last is not None:
                    stored = {e.id for e in transitions(first, last)}
                unborne = [i for i in appended if i not in stored]
                if unborne:
                    await self.audit.withdraw(unborne)

    def _decide_on_copy(
        self, fn: Update, epoch: int
    ) -> tuple[ConfigMapData, IntentState, IntentState] | None:
        """`fn` on the copy last written; None when there is none, or it finds nothing to
        do or fails there (then the server's copy decides)."""
        cached = self._cas.cached
        if cached is None:
            return None
        try:
            before = self._decode(cached)
            after = next_state(before, fn, epoch, self._cas.where)
        except Exception:  # decided on our copy: decide again on the server's
            return None
        return None if after is before else (cached, before, after)

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
