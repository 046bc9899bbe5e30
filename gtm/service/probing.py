"""The probes' side of the service: targets from the inventory, health for the engine."""

from __future__ import annotations

import math
from collections.abc import Iterable

from gtm.config import HealthConfig, Inventory
from policies import Health, State, TargetHealth
from probes import DOWN, HealthSettings, HealthView, Target, parse_probe_spec


def probe_targets(inventory: Inventory) -> list[Target]:
    """One target per VIP of every service, probed as the service's `probe:` says.

    Target ids are the engine's VIP ids (`foo/dc1/10.0.0.1:443`), so a VIP's
    health and its weight in the table share one key.
    """
    targets = []
    for svc_config in inventory.config.services:
        spec = parse_probe_spec(svc_config.probe.spec_fields())  # validated with the config
        service = inventory.estate.service(svc_config.name)
        for region, vips in service.vips.items():
            for vip in vips:
                targets.append(Target(vip.id, vip.address, vip.port, spec, service.name, region))
    return targets


def silent_after(targets: Iterable[Target], stale_intervals: float) -> float:
    """How long a vantage probing `targets` may send no new result before it is silent:
    `stale_intervals` of the shortest interval plus its timeout (inf with no targets) —
    the age at which the tracker stops counting a vote (`HealthSettings.stale_intervals`)."""
    timings = {(t.spec.interval, t.spec.timeout) for t in targets}
    return min((stale_intervals * i + timeout for i, timeout in timings), default=math.inf)


def health_settings(config: HealthConfig) -> HealthSettings:
    return HealthSettings(**config.model_dump(exclude={"concurrency", "lag_tolerance"}))


def engine_health(view: HealthView) -> Health:
    """What the policy engine needs of a health view: what is down, since when, why.

    Only `down` moves traffic (`up` and `unknown` are the same to the engine),
    so the value holds just the down VIPs and (service, region)s: small, and
    cheap to build every evaluation.
    """
    regions = {
        key: TargetHealth(State.DOWN, h.since, h.reason)
        for key, h in view.regions.items()
        if h.state == DOWN
    }
    vips = {
        key: TargetHealth(State.DOWN, h.since, h.reason)
        for key, h in view.vips.items()
        if h.state == DOWN
    }
    return Health(regions=regions, vips=vips)
