"""Prometheus metrics of the intent, audit and published-table stores.

One instance per registry (the global one by default), handed to the stores;
a store given none counts nothing. `store` is a bounded label: the backend
and what it holds (`file/intent`, `configmap/published`, …).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from intent.errors import StaleEpoch, StaleGeneration


class StoreMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = REGISTRY if registry is None else registry
        self.writes = Counter(
            "gtm_intent_store_writes",
            "Store writes by result: written, unchanged (nothing to write), stale_epoch, "
            "stale_generation, failed.",
            ["store", "result"],
            registry=registry,
        )
        self.conflicts = Counter(
            "gtm_intent_store_conflicts",
            "Compare-and-swap conflicts (another writer got in first); each is re-read and retried.",
            ["store"],
            registry=registry,
        )
        self.retries = Counter(
            "gtm_intent_store_retries",
            "Requests retried after a transient error, by cause (429, 5xx, timeout, connection).",
            ["store", "cause"],
            registry=registry,
        )

    def wrote(self, store: str, result: str) -> None:
        self.writes.labels(store, result).inc()

    def failed(self, store: str, error: BaseException) -> None:
        if isinstance(error, StaleEpoch):
            result = "stale_epoch"
        elif isinstance(error, StaleGeneration):
            result = "stale_generation"
        else:
            result = "failed"
        self.wrote(store, result)

    def conflict(self, store: str) -> None:
        self.conflicts.labels(store).inc()

    def retried(self, store: str, cause: str) -> None:
        self.retries.labels(store, cause).inc()
