"""Prometheus metrics of the WLE reconcilers, labelled by cluster.

One `Metrics` per registry (every cluster's reconciler shares it, as the
metric names may be registered once); `Metrics.of(registry)` returns it.
`ClusterMetrics` binds the cluster label; it is the `kube.RequestMetrics` of the
cluster's client (requests, retries, rate-limit waits).
"""

from __future__ import annotations

import weakref

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, Metrics] = weakref.WeakKeyDictionary()


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.desired = Gauge(
            "gtm_wle_desired",
            "WorkloadEntries gtm manages in the cluster (with a target from the table)",
            ["cluster"],
            registry=registry,
        )
        self.in_sync = Gauge(
            "gtm_wle_in_sync",
            "Managed WorkloadEntries that hold their target, as observed by the watch",
            ["cluster"],
            registry=registry,
        )
        self.drifted = Counter(
            "gtm_wle_drifted",
            "WorkloadEntries found changed away from their target by someone else",
            ["cluster"],
            registry=registry,
        )
        self.patches = Counter(
            "gtm_wle_patches",
            "WorkloadEntry patches by subresource and result",
            ["cluster", "subresource", "result"],
            registry=registry,
        )
        self.stopped = Counter(
            "gtm_wle_writes_stopped",
            "WorkloadEntry writes stopped: a newer leader's epoch met (fenced) or the lease lost",
            ["cluster", "why"],
            registry=registry,
        )
        self.reconcile = Histogram(
            "gtm_wle_reconcile_duration_seconds",
            "Time from a table (or a drift) to the cluster holding it, per reconcile pass",
            ["cluster"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=registry,
        )
        self.distribute_conflicts = Gauge(
            "gtm_mesh_distribute_conflicts",
            "DestinationRule localityLbSetting.distribute settings that override the WLE weights"
            " gtm writes (per rule, managed service and place in the rule)",
            ["cluster"],
            registry=registry,
        )
        self.requests = Counter(
            "gtm_kube_requests",
            "Kubernetes API requests by verb and HTTP code (0: no answer)",
            ["cluster", "verb", "code"],
            registry=registry,
        )
        self.retries = Counter(
            "gtm_kube_retries",
            "Kubernetes API requests retried after a temporary error",
            ["cluster", "verb"],
            registry=registry,
        )
        self.throttled = Counter(
            "gtm_kube_rate_limit_wait_seconds",
            "Seconds requests waited for the client-side rate limit",
            ["cluster"],
            registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry) -> Metrics:
        found = _BY_REGISTRY.get(registry)
        if found is None:
            found = _BY_REGISTRY[registry] = cls(registry)
        return found

    def cluster(self, name: str) -> ClusterMetrics:
        return ClusterMetrics(self, name)


class ClusterMetrics:
    """The metrics of one cluster."""

    def __init__(self, metrics: Metrics, cluster: str) -> None:
        self._m = metrics
        self.cluster = cluster
        self._desired = metrics.desired.labels(cluster)
        self._in_sync = metrics.in_sync.labels(cluster)
        self._drifted = metrics.drifted.labels(cluster)
        self._reconcile = metrics.reconcile.labels(cluster)
        self._throttled = metrics.throttled.labels(cluster)
        self._distribute_conflicts = metrics.distribute_conflicts.labels(cluster)

    def gauges(self, desired: int, in_sync: int) -> None:
        self._desired.set(desired)
        self._in_sync.set(in_sync)

    def conflicts(self, count: int) -> None:
        self._distribute_conflicts.set(count)

    def drift(self) -> None:
        self._drifted.inc()

    def patch(self, *, status: bool, result: str) -> None:
        self._m.patches.labels(self.cluster, "status" if status else "main", result).inc()

    def stopped(self, why: str) -> None:
        self._m.stopped.labels(self.cluster, why).inc()

    def reconciled(self, seconds: float) -> None:
        self._reconcile.observe(seconds)

    def request(self, verb: str, code: int) -> None:
        self._m.requests.labels(self.cluster, verb, str(code)).inc()

    def retry(self, verb: str, cause: str = "") -> None:
        self._m.retries.labels(self.cluster, verb).inc()

    def waited(self, seconds: float) -> None:
        if seconds > 0:
            self._throttled.inc(seconds)
