"""Onboarding by AccessPoint: an AP with `spec.gtm` is a gtm service, without editing the file.

Every member (leader and standby: both probe and answer DNS) reads the home
cluster's AccessPoints every `accesspoints.resync` seconds, discovers their VIPs
(their Service's `status.loadBalancer` in every cluster of the scope, read only)
and makes each AP with `spec.gtm` a service as the estate file would list it
(`service_of`):

    name: <AP name>            fqdn: spec.gtm.fqdn       policy: spec.gtm.policy
    probe: spec.gtm.probe      (default: tcp to the VIP's port)
    vips: {<region of the cluster>: [{address: <VIP>, port: <the Service's first port>}]}

When that set changes, the member reloads its config with it
(`gtm.config.load_onboarded`: the file is checked alone first; an AP's service
that does not fit is left out, with why) and from then on probes, answers and
fails over those services as any other; the leader's AccessPoint controller
writes the AP's `Onboarded` condition. While a cluster of an AP's scope cannot
be read, the AP keeps the service it had (its VIPs there are unknown, not gone).
The set last applied is kept in the state directory (`onboarded.json`), so a
member that restarts answers the onboarded names from its first query.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from accesspoints import AccessPoint, AccessPointError, parse_accesspoint
from gtm.config import Inventory
from gtm.service.accesspoint_apply import ClusterObjects, Discovered, cluster_of, discover
from gtm.service.accesspoints import HomeAccessPoints
from kube import KubeError

log = structlog.get_logger("gtm.onboarding")

Services = dict[str, dict[str, Any]]  # AP (namespace/name) -> its service, as the file lists one
NOT_YET = "no VIP discovered yet"


def service_port(ap: AccessPoint) -> int | None:
    """The port of the AP's L4 Service (its template's first port)."""
    service = ap.spec.traffic_template.service or {}
    ports = (service.get("spec") or {}).get("ports") or []
    port = ports[0].get("port") if ports and isinstance(ports[0], Mapping) else None
    return port if isinstance(port, int) else None


def service_of(ap: AccessPoint, discovered: Discovered) -> dict[str, Any] | None:
    """The service `ap` onboards, from its discovered VIPs (None: not a gtm service, or no
    VIP or port known yet)."""
    gtm, port = ap.spec.gtm, service_port(ap)
    if gtm is None or port is None or not discovered.vips:
        return None
    vips: dict[str, list[dict[str, Any]]] = {}
    for v in sorted(discovered.vips, key=lambda v: (v.region, v.cluster, v.ip)):
        vips.setdefault(v.region, []).append({"address": v.ip, "port": port})
    return {
        "name": ap.name,
        "fqdn": gtm.fqdn,
        "policy": gtm.policy,
        "probe": dict(gtm.probe) if gtm.probe is not None else {"kind": "tcp"},
        "vips": vips,
    }


def onboarded_services(
    aps: Sequence[AccessPoint], found: Mapping[str, Discovered], before: Services
) -> Services:
    """Each gtm AP's service; one whose discovery is partial keeps what it had `before`."""
    out: Services = {}
    for ap in aps:
        if ap.spec.gtm is None:
            continue
        key = f"{ap.namespace}/{ap.name}"
        discovered = found.get(ap.name, Discovered())
        if discovered.unread and key in before:
            out[key] = before[key]
            continue
        service = service_of(ap, discovered)
        if service is not None:
            out[key] = service
    return out


class OnboardedFile:
    """`<state_dir>/onboarded.json`: the services last applied, for the next start."""

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / "onboarded.json"

    def read(self) -> Services:
        """What was saved; nothing when the file is missing or not what this writes."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            log.warning("onboarding.saved_unreadable", file=str(self.path), error=str(e))
            return {}
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            log.warning("onboarding.saved_unreadable", file=str(self.path), error="not a mapping")
            return {}
        return data

    def write(self, services: Services) -> None:
        """Replaced whole (a crash leaves the old file or the new one)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            spare = self.path.with_suffix(".json.new")
            with open(spare, "w", encoding="utf-8") as f:
                json.dump(services, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(spare, self.path)
        except OSError as e:  # a full disk: onboarding goes on, the next start scans anew
            log.warning("onboarding.not_saved", file=str(self.path), error=str(e))


class Onboarding:
    """One member's scan of the home cluster's AccessPoints (see the module)."""

    def __init__(
        self,
        inventory: Callable[[], Inventory],
        home: HomeAccessPoints,
        objects: Mapping[str, ClusterObjects],
        current: Callable[[], Services],
        apply: Callable[[Services], Awaitable[object]],
    ) -> None:
        self._inventory = inventory
        self._home = home
        self._objects = objects
        self._current = current
        self._apply = apply

    async def scan(self) -> Services:
        """The services the APs onboard now (`KubeError`: the home cluster cannot be read)."""
        aps = []
        for doc in await self._home.list():
            try:
                aps.append(parse_accesspoint(doc))
            except AccessPointError:
                continue  # the leader's controller writes why in its status
        inventory = self._inventory()
        clusters = {name: cluster_of(name, inventory) for name in self._objects}
        found = await discover(aps, self._objects, clusters)
        return onboarded_services(aps, found, self._current())

    async def run(self, every: float) -> None:
        """Scan at once, then every `every` seconds; apply each change of the set."""
        while True:
            try:
                services = await self.scan()
                if services != self._current():
                    log.info(
                        "onboarding.changed",
                        services=sorted(services),
                        before=sorted(self._current()),
                    )
                    await self._apply(services)
            except KubeError as e:  # the onboarded services stay as they are
                log.warning("onboarding.scan_failed", error=str(e))
            await asyncio.sleep(every)
