"""Prometheus metrics of the exporters, in the registry they are given (the member's).

gtm_powerdns_publishes_total{result}     applied | unchanged | refused | failed
gtm_powerdns_generation_published        the table generation PowerDNS serves
gtm_powerdns_rrsets_changed_total{action} create | replace | delete
gtm_powerdns_request_retries_total       API calls tried again after a temporary failure
gtm_powerdns_publish_seconds             time of a publish (plan and apply)

An exporter given no metrics counts into a registry of its own, which nothing serves.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ExportMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        self.publishes = Counter(
            "gtm_powerdns_publishes",
            "Publishes of the weight table to PowerDNS, by result.",
            ["result"],
            registry=self.registry,
        )
        self.generation = Gauge(
            "gtm_powerdns_generation_published",
            "The weight table generation PowerDNS serves, as last published or read back.",
            registry=self.registry,
        )
        self.rrsets_changed = Counter(
            "gtm_powerdns_rrsets_changed",
            "RRsets written to PowerDNS, by action.",
            ["action"],
            registry=self.registry,
        )
        self.retries = Counter(
            "gtm_powerdns_request_retries",
            "PowerDNS API calls tried again after a temporary failure.",
            registry=self.registry,
        )
        self.publish_seconds = Histogram(
            "gtm_powerdns_publish_seconds",
            "Time of one publish to PowerDNS, reading the zones included.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        for result in ("applied", "unchanged", "refused", "failed"):
            self.publishes.labels(result=result)
        for action in ("create", "replace", "delete"):
            self.rrsets_changed.labels(action=action)

    def value(self, name: str, **labels: str) -> float:
        """A sample's value now (0 when absent): for tests and status."""
        return self.registry.get_sample_value(name, labels) or 0.0
