"""Prometheus metrics of probing and health, registered in the registry handed in.

Per probe only counters and histograms with bounded labels (kind, result) are
touched, through cached children; per-target series (VIP state, certificate
expiry) change on state changes, not per probe.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from probes.health import DOWN, UP, HealthEvent, VipHealth
from probes.observation import Observation

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)
_STATE_VALUE = {UP: 1.0, DOWN: 0.0}


class ProbeMetrics:
    """The probes' metrics; one instance per registry (the global one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = REGISTRY if registry is None else registry
        self.results = Counter(
            "gtm_probe_results",
            "Probe results by probe kind and result (ok, or the first word of the failure reason).",
            ["kind", "result"],
            registry=registry,
        )
        self.latency = Histogram(
            "gtm_probe_latency_seconds",
            "Probe latency by kind.",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.lag = Histogram(
            "gtm_probe_scheduler_lag_seconds",
            "How late probes start against their schedule.",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self.lagging = Gauge(
            "gtm_probe_scheduler_lagging",
            "1 while the scheduler cannot keep up with the probe schedule.",
            registry=registry,
        )
        self.skipped = Counter(
            "gtm_probe_skipped",
            "Probe slots skipped: overrun (previous probe of the target still running) "
            "or behind (the scheduler was late by more than an interval).",
            ["reason"],
            registry=registry,
        )
        self.in_flight = Gauge("gtm_probe_in_flight", "Probes running now.", registry=registry)
        self.targets = Gauge("gtm_probe_targets", "Targets scheduled.", registry=registry)
        self.newest_age = Gauge(
            "gtm_probe_newest_age_seconds",
            "Seconds since this vantage's newest own probe result (-1: none yet).",
            registry=registry,
        )
        self.stalled = Gauge(
            "gtm_probes_stalled",
            "1 while this vantage's own probing has stopped (scheduler ended, prober wedged).",
            registry=registry,
        )
        self.vip_state = Gauge(
            "gtm_vip_state",
            "VIP health for traffic: 1 up, 0 down, -1 unknown.",
            ["target", "service", "region"],
            registry=registry,
        )
        self.vip_damped = Gauge(
            "gtm_vip_damped",
            "1 while the VIP is held down by flap damping.",
            ["target", "service", "region"],
            registry=registry,
        )
        self.region_state = Gauge(
            "gtm_region_state",
            "(service, region) health: 1 up, 0 down, -1 unknown.",
            ["service", "region"],
            registry=registry,
        )
        self.impaired = Gauge(
            "gtm_vantage_impaired",
            "1 while the vantage is impaired (its observations do not count).",
            ["vantage"],
            registry=registry,
        )
        self.tls_days = Gauge(
            "gtm_probe_tls_days_to_expiry",
            "Days until the target's certificate expires, from the latest TLS probe.",
            ["target"],
            registry=registry,
        )
        self._result_children: dict[tuple[str, str], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}

    def bind_scheduler(
        self,
        in_flight: Callable[[], float],
        targets: Callable[[], float],
        *,
        newest_age: Callable[[], float] | None = None,
        stalled: Callable[[], float] | None = None,
    ) -> None:
        """Reads the scheduler's gauges at scrape time instead of per probe."""
        self.in_flight.set_function(in_flight)
        self.targets.set_function(targets)
        if newest_age is not None:
            self.newest_age.set_function(newest_age)
        if stalled is not None:
            self.stalled.set_function(stalled)

    def observed(self, kind: str, obs: Observation) -> None:
        key = (kind, obs.outcome)
        counter = self._result_children.get(key)
        if counter is None:
            counter = self._result_children[key] = self.results.labels(*key)
        counter.inc()
        histogram = self._latency_children.get(kind)
        if histogram is None:
            histogram = self._latency_children[kind] = self.latency.labels(kind)
        histogram.observe(obs.latency)
        self.lag.observe(obs.lag)
        if obs.days_to_expiry is not None:
            self.tls_days.labels(obs.target_id).set(obs.days_to_expiry)

    def vip(self, health: VipHealth) -> None:
        labels = (health.target_id, health.service, health.region)
        self.vip_state.labels(*labels).set(_STATE_VALUE.get(health.state, -1.0))
        self.vip_damped.labels(*labels).set(1.0 if health.damped else 0.0)

    def vip_removed(self, health: VipHealth) -> None:
        labels = (health.target_id, health.service, health.region)
        for gauge in (self.vip_state, self.vip_damped):
            try:
                gauge.remove(*labels)
            except KeyError:
                pass
        try:
            self.tls_days.remove(health.target_id)
        except KeyError:
            pass

    def region(self, event: HealthEvent) -> None:
        state = event.name.split(".", 1)[1]
        self.region_state.labels(event.service, event.region).set(_STATE_VALUE.get(state, -1.0))

    def vantage(self, event: HealthEvent) -> None:
        self.impaired.labels(event.vantage).set(1.0 if event.name == "vantage.impaired" else 0.0)
