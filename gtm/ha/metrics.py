"""Prometheus metrics of one elector, in the registry the service hands in.

`gtm_leader_is_leader` is read when scraped, from the same check every write
makes, so it cannot lag behind a missed renew deadline.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class ElectionMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        is_leader: Callable[[], bool],
        epoch: Callable[[], int | None],
    ) -> None:
        self.is_leader = Gauge(
            "gtm_leader_is_leader",
            "1 while this member leads (its last renewal is younger than the renew deadline)",
            registry=registry,
        )
        self.is_leader.set_function(lambda: 1.0 if is_leader() else 0.0)
        self.epoch = Gauge(
            "gtm_leader_epoch",
            "The fencing epoch (lease transitions) of this member's term; 0 when not leading",
            registry=registry,
        )
        self.epoch.set_function(lambda: float(epoch() or 0))
        self.transitions = Counter(
            "gtm_leader_transitions_total",
            "Leadership changes of this member: acquired, lost, released",
            ["change"],
            registry=registry,
        )
        for change in ("acquired", "lost", "released"):
            self.transitions.labels(change=change)
        self.renew_failures = Counter(
            "gtm_leader_renew_failures_total",
            "Attempts to renew the lease, while leading, that failed (error, timeout, conflict)",
            registry=registry,
        )
        self.lease_errors = Counter(
            "gtm_leader_lease_errors_total",
            "Attempts to read or write the lease that failed, leading or not",
            ["error"],
            registry=registry,
        )
