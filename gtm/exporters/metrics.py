"""Prometheus metrics of the exporters, registered once in the default registry.

gtm_powerdns_publishes_total{result}     applied | unchanged | refused | failed
gtm_powerdns_generation_published        the table generation PowerDNS serves
gtm_powerdns_rrsets_changed_total{action} create | replace | delete
gtm_powerdns_request_retries_total       API calls tried again after a temporary failure
gtm_powerdns_publish_seconds             time of a publish (plan and apply)
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PUBLISHES = Counter(
    "gtm_powerdns_publishes",
    "Publishes of the weight table to PowerDNS, by result.",
    ["result"],
)
GENERATION = Gauge(
    "gtm_powerdns_generation_published",
    "The weight table generation PowerDNS serves, as last published or read back.",
)
RRSETS_CHANGED = Counter(
    "gtm_powerdns_rrsets_changed",
    "RRsets written to PowerDNS, by action.",
    ["action"],
)
RETRIES = Counter(
    "gtm_powerdns_request_retries",
    "PowerDNS API calls tried again after a temporary failure.",
)
PUBLISH_SECONDS = Histogram(
    "gtm_powerdns_publish_seconds",
    "Time of one publish to PowerDNS, reading the zones included.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

for _result in ("applied", "unchanged", "refused", "failed"):
    PUBLISHES.labels(result=_result)
for _action in ("create", "replace", "delete"):
    RRSETS_CHANGED.labels(action=_action)
