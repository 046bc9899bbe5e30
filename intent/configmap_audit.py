"""The audit history in a ConfigMap: bounded, appended with compare-and-swap.

A ConfigMap holds at most 1 MiB, so this keeps only the newest `keep`
entries (and fewer if they would not fit), oldest first, as JSON Lines under
one key. It is a convenience for `gtm history` and the API, not the record of
truth: a real deployment must also ship the `intent.*` log events (structlog
JSON) to its log store, where nothing is trimmed.

An append skips entries whose id the ConfigMap already holds, so a retried
append (after a 5xx whose write had landed) does not record twice.
`append_new` says which ids it added, and `withdraw` takes them back: the
intent store appends before it writes and withdraws when its write fails
(`configmap_store`), so an accepted change is audited or not accepted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

import structlog
from prometheus_client import CollectorRegistry

from intent.audit import AuditEntry, AuditPage, newest_first
from intent.configmap_cas import CONFIGMAP_LIMIT, ConfigMapCAS, ConfigMapData
from intent.errors import IntentError
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
        await self.append_new(entries)

    async def append_new(self, entries: Sequence[AuditEntry]) -> list[str]:
        """Append the entries the ConfigMap does not hold yet; the ids this call added
        (the ones a `withdraw` may take back), in order."""
        if not entries:
            return []
        lines = [e.to_json() for e in entries]
        ids = [e.id for e in entries]
        added: list[str] = []

        def change(current: ConfigMapData) -> ConfigMapData | None:
            added.clear()  # the attempt written is the last one run
            held = _lines(current)
            seen = {_id(line) for line in held}
            new = [(line, i) for line, i in zip(lines, ids, strict=True) if i not in seen]
            if not new:
                return None
            added.extend(i for _, i in new)
            kept = (held + [line for line, _ in new])[-self.keep :]
            while len(kept) > 1 and sum(len(line) + 1 for line in kept) > _BUDGET:
                kept = kept[len(kept) // 10 or 1 :]
            return replace(current, data={**current.data, KEY: "\n".join(kept) + "\n"})

        swap = await self._cas.swap(change)
        return list(added) if swap.wrote else []

    async def withdraw(self, ids: Sequence[str]) -> bool:
        """Take back entries this member appended for a change that was not stored after
        all; False (logged) when they could not be taken back."""
        gone = set(ids)
        if not gone:
            return True

        def change(current: ConfigMapData) -> ConfigMapData | None:
            held = _lines(current)
            kept = [line for line in held if _id(line) not in gone]
            if len(kept) == len(held):
                return None
            body = "\n".join(kept) + "\n" if kept else ""
            return replace(current, data={**current.data, KEY: body})

        try:
            await self._cas.swap(change)
        except (IntentError, OSError) as error:
            log.error(
                "intent.audit_not_withdrawn", store=self._cas.store, why=str(error), entries=ids
            )
            return False
        return True

    async def history(
        self, limit: int = 100, since: float | None = None, before: str | None = None
    ) -> AuditPage:
        """A page of the entries the ConfigMap holds; a cursor is an entry's id (one
        trimmed away since is refused as a BadCursor)."""
        current = await self._cas.read()
        entries: list[AuditEntry] = []
        for line in _lines(current):
            try:
                entries.append(AuditEntry.from_dict(json.loads(line)))
            except ValueError as e:
                log.warning("intent.audit_bad_line", store="configmap/audit", error=str(e))
        return newest_first(entries, limit, since, before)


def _lines(current: ConfigMapData) -> list[str]:
    return [line for line in current.data.get(KEY, "").splitlines() if line.strip()]


def _id(line: str) -> str | None:
    try:
        value = json.loads(line).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
