"""The audit history in a ConfigMap: bounded, appended with compare-and-swap.

A ConfigMap holds at most 1 MiB, so this keeps only the newest `keep`
entries (and fewer if they would not fit), oldest first, as JSON Lines under
one key. It is a convenience for `gtm history` and the API, not the record of
truth: a real deployment must also ship the `intent.*` log events (structlog
JSON) to its log store, where nothing is trimmed.

An append skips entries whose id the ConfigMap already holds, so a retried
append (after a 5xx whose write had landed) does not record twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

import structlog
from prometheus_client import CollectorRegistry

from intent.audit import AuditEntry, newest_first
from intent.configmap_cas import CONFIGMAP_LIMIT, ConfigMapCAS, ConfigMapData
from intent.metrics import StoreMetrics
from kube import Client

log = structlog.get_logger(__name__)

KEY = "audit.jsonl"
_BUDGET = CONFIGMAP_LIMIT * 7 // 8  # leave room for metadata


class ConfigMapAudit:
    def __init__(
        self,
        client: Client,
        *,
        name: str = "gtm-audit",
        namespace: str = "gtm",
        keep: int = 500,
        metrics: StoreMetrics | None = None,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, not {keep}")
        self.keep = keep
        self._cas = ConfigMapCAS(
            client,
            name,
            namespace,
            store="configmap/audit",
            labels={"app.kubernetes.io/name": "gtm", "app.kubernetes.io/component": "audit"},
            metrics=metrics or StoreMetrics(CollectorRegistry()),
        )

    async def append(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        lines = [e.to_json() for e in entries]
        ids = [e.id for e in entries]

        def change(current: ConfigMapData) -> ConfigMapData | None:
            held = _lines(current)
            seen = {_id(line) for line in held}
            new = [line for line, i in zip(lines, ids, strict=True) if i not in seen]
            if not new:
                return None
            kept = (held + new)[-self.keep :]
            while len(kept) > 1 and sum(len(line) + 1 for line in kept) > _BUDGET:
                kept = kept[len(kept) // 10 or 1 :]
            return replace(current, data={**current.data, KEY: "\n".join(kept) + "\n"})

        await self._cas.swap(change)

    async def history(self, limit: int = 100, since: float | None = None) -> list[AuditEntry]:
        current = await self._cas.read()
        entries: list[AuditEntry] = []
        for line in _lines(current):
            try:
                entries.append(AuditEntry.from_dict(json.loads(line)))
            except ValueError as e:
                log.warning("intent.audit_bad_line", store="configmap/audit", error=str(e))
        return newest_first(entries, limit, since)


def _lines(current: ConfigMapData) -> list[str]:
    return [line for line in current.data.get(KEY, "").splitlines() if line.strip()]


def _id(line: str) -> str | None:
    try:
        value = json.loads(line).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
