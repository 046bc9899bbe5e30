"""Which VIP a WorkloadEntry stands for: (service, target region, address) in the estate.

The service comes from a label (its value is the service's name or FQDN),
the target region from a region label when one is configured, else from
`spec.locality` matched against the regions' localities: a region's locality
`region01/az01` matches a WLE locality `region01/az01` or
`region01/az01/rack7`, the longest match winning. Within the region the VIP
is the one at `spec.address` (and, when one address serves several ports,
the one whose port the WLE lists).

A WLE that cannot be identified is left alone and reported with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from failover.workload import WorkloadEntry
from policies import Estate, Service, Vip


@dataclass(frozen=True, slots=True)
class Identity:
    service: str
    target: str  # the region the WLE points at
    vip: Vip


@dataclass(frozen=True, slots=True)
class Unidentified:
    reason: str


class Localities:
    """Region of a `spec.locality`, from each region's configured locality."""

    def __init__(self, by_region: Mapping[str, str]) -> None:
        self._parts = {r: tuple(p for p in loc.split("/") if p) for r, loc in by_region.items()}

    def region_of(self, locality: str | None) -> str | None:
        if not locality:
            return None
        parts = tuple(p for p in locality.split("/") if p)
        best: list[str] = []
        best_len = 0
        for region, mine in self._parts.items():
            if mine and parts[: len(mine)] == mine:
                if len(mine) > best_len:
                    best, best_len = [region], len(mine)
                elif len(mine) == best_len:
                    best.append(region)
        return best[0] if len(best) == 1 else None


class VipIndex:
    """Identifies WLEs against one estate."""

    def __init__(
        self,
        estate: Estate,
        localities: Mapping[str, str],
        *,
        service_label: str,
        region_label: str | None = None,
    ) -> None:
        self._localities = Localities(localities)
        self._service_label = service_label
        self._region_label = region_label
        self._regions = frozenset(estate.regions)
        self._services: dict[str, Service] = {}
        for s in estate.services:
            self._services[s.name] = s
            self._services.setdefault(s.fqdn.rstrip("."), s)
        self._vips: dict[tuple[str, str, str], tuple[Vip, ...]] = {}
        for s in estate.services:
            for region, vips in s.vips.items():
                for v in vips:
                    k = (s.name, region, v.address)
                    self._vips[k] = (*self._vips.get(k, ()), v)

    def service(self, name: str) -> Service:
        return self._services[name]

    def identify(self, entry: WorkloadEntry) -> Identity | Unidentified:
        label = entry.labels.get(self._service_label)
        if not label:
            return Unidentified(f"no {self._service_label} label")
        service = self._services.get(label.rstrip("."))
        if service is None:
            return Unidentified(f"service {label!r} is not in the estate")
        target = self._target(entry)
        if target is None:
            where = (
                f"label {self._region_label}"
                if self._region_label
                else f"locality {entry.locality!r}"
            )
            return Unidentified(f"{where} matches no region")
        if not entry.address:
            return Unidentified("no spec.address")
        vips = self._vips.get((service.name, target, entry.address), ())
        if len(vips) > 1:
            ports = set(entry.ports.values())
            vips = tuple(v for v in vips if v.port in ports)
        if not vips:
            return Unidentified(f"{service.name} has no VIP {entry.address} in {target}")
        if len(vips) > 1:
            return Unidentified(f"{entry.address} is several VIPs of {service.name} in {target}")
        return Identity(service.name, target, vips[0])

    def _target(self, entry: WorkloadEntry) -> str | None:
        if self._region_label:
            region = entry.labels.get(self._region_label)
            return region if region in self._regions else None
        return self._localities.region_of(entry.locality)
