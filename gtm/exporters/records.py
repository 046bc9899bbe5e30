"""The records a weight table asks of each zone: pure, from the inventory and the table.

Per service FQDN one LUA rrset: a LUA A record (the IPv4 answers) and a LUA
AAAA record when the service has IPv6 answers; or a single LUA CNAME record
when every VIP of the service is a host name and some have no `ips`. A
host-name VIP with `ips` is answered with them. Per zone, a TXT record
`_gtm-generation.<zone>` holds the table generation published, and the SOA
and NS a missing zone is created with.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gtm.config import Inventory, ServiceConfig
from gtm.exporters import lua
from gtm.exporters.errors import RenderError
from gtm.exporters.weights import Pick, row_pick
from policies import Vip, WeightTable

GENERATION_LABEL = "_gtm-generation"
ZONE_TTL = 3600  # SOA and NS of a zone gtm creates
SOA_TIMERS = "10800 3600 604800"  # refresh, retry, expire


@dataclass(frozen=True, slots=True)
class RRset:
    """One name and type's records, as the PowerDNS API holds them."""

    name: str  # absolute, lowercase, with the trailing dot
    type: str
    ttl: int
    records: tuple[str, ...]  # contents, sorted
    disabled: int = 0  # how many of the records are disabled (gtm writes none)

    @classmethod
    def of(cls, name: str, rtype: str, ttl: int, records: Sequence[str]) -> RRset:
        return cls(absolute(name), rtype.upper(), ttl, tuple(sorted(records)))

    def to_api(self, changetype: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "type": self.type}
        if changetype is not None:
            body["changetype"] = changetype
        if changetype != "DELETE":
            body["ttl"] = self.ttl
            body["records"] = [{"content": c, "disabled": False} for c in self.records]
        return body


@dataclass(frozen=True)
class ZoneRecords:
    """What gtm wants in one zone."""

    zone: str  # absolute
    soa: RRset  # used only when the zone is created
    ns: RRset  # used only when the zone is created
    nameservers: tuple[str, ...]
    rrsets: tuple[RRset, ...]  # one LUA rrset per service FQDN in the zone, by name
    generation: RRset  # the _gtm-generation TXT


@dataclass(frozen=True)
class ZoneState:
    """A zone as PowerDNS holds it now."""

    zone: str
    rrsets: Mapping[tuple[str, str], RRset]  # (name, type) -> rrset

    def published_generation(self) -> int | None:
        """The generation the zone's TXT marker says was published, if any."""
        marker = self.rrsets.get((generation_name(self.zone), "TXT"))
        if marker is None or len(marker.records) != 1:
            return None
        text = marker.records[0].strip('"')
        return int(text) if text.isdigit() else None


def absolute(name: str) -> str:
    return name.rstrip(".").lower() + "."


def generation_name(zone: str) -> str:
    return f"{GENERATION_LABEL}.{absolute(zone)}"


def generation_rrset(zone: str, generation: int, ttl: int) -> RRset:
    return RRset.of(generation_name(zone), "TXT", ttl, [f'"{generation}"'])


def desired(inventory: Inventory, table: WeightTable) -> tuple[ZoneRecords, ...]:
    """Every zone's records for `table`; raises RenderError naming every problem."""
    dns = inventory.config.dns
    zones = sorted((absolute(z) for z in inventory.zones()), key=lambda z: (-len(z), z))
    problems: list[str] = []
    by_zone: dict[str, list[RRset]] = {z: [] for z in sorted(zones)}
    known = {s.name for s in inventory.config.services}
    for name in table.rows:
        if name not in known:
            problems.append(
                f"table generation {table.generation} has rows for unknown service {name!r}"
            )
    for service in inventory.config.services:
        fqdn = absolute(service.fqdn)
        zone = next((z for z in zones if fqdn == z or fqdn.endswith("." + z)), None)
        if zone is None:
            problems.append(f"service {service.name}: {service.fqdn} is in none of the zones")
            continue
        try:
            records = service_records(inventory, table, service, apex=fqdn == zone)
        except RenderError as e:
            problems.extend(e.problems)
            continue
        by_zone[zone].append(RRset.of(fqdn, "LUA", dns.ttl, records))
    if problems:
        raise RenderError(problems)
    return tuple(
        _zone(inventory, zone, tuple(sorted(rrsets, key=lambda r: r.name)), table.generation)
        for zone, rrsets in by_zone.items()
    )


def _zone(
    inventory: Inventory, zone: str, rrsets: tuple[RRset, ...], generation: int
) -> ZoneRecords:
    dns = inventory.config.dns
    bare = zone.rstrip(".")
    nameservers = tuple(absolute(n) for n in dns.nameservers) or (f"ns1.{zone}",)
    hostmaster = absolute((dns.hostmaster or f"hostmaster.{bare}").replace("@", ".", 1))
    soa = RRset.of(
        zone, "SOA", ZONE_TTL, [f"{nameservers[0]} {hostmaster} 1 {SOA_TIMERS} {dns.ttl}"]
    )
    ns = RRset.of(zone, "NS", ZONE_TTL, nameservers)
    return ZoneRecords(
        zone, soa, ns, nameservers, rrsets, generation_rrset(zone, generation, dns.ttl)
    )


def service_records(
    inventory: Inventory, table: WeightTable, service: ServiceConfig, *, apex: bool = False
) -> list[str]:
    """The LUA record contents of one service (A and AAAA, or CNAME)."""
    rows = table.rows.get(service.name)
    if not rows:
        raise RenderError(
            [f"service {service.name}: no rows in table generation {table.generation}"]
        )
    answers = _answers(service)
    known = {vid for by_type in answers.values() for vid in by_type}
    unknown = sorted(
        v for row in rows.values() for c in row.cells.values() for v in c.vips if v not in known
    )
    if unknown:
        raise RenderError([f"service {service.name}: the table names unknown VIPs {unknown}"])
    if "CNAME" in answers and apex:
        raise RenderError(
            [f"service {service.name}: {service.fqdn} is a zone apex, which cannot hold a CNAME"]
        )
    regions = inventory.region_names
    networks = {r.name: tuple(r.client_cidrs) for r in inventory.config.regions}
    default_region = inventory.config.dns.default_region or regions[0]
    out: list[str] = []
    for rtype, by_vip in answers.items():
        if not any(by_vip.values()):
            continue
        picks: dict[str, Pick] = {
            source: row_pick(row, by_vip) for source, row in rows.items() if source in regions
        }
        record = lua.render(rtype, picks, networks, regions, default_region)
        if record is None:
            raise RenderError(
                [
                    f"service {service.name}: no row has a {rtype} answer (every weight or share is 0)"
                ]
            )
        out.append(record)
    return out


def _answers(service: ServiceConfig) -> dict[str, dict[str, tuple[str, ...]]]:
    """Record type -> VIP id -> what the VIP is answered with."""
    v4: dict[str, tuple[str, ...]] = {}
    v6: dict[str, tuple[str, ...]] = {}
    names: dict[str, tuple[str, ...]] = {}
    bare: list[str] = []  # host-name VIPs without ips
    addressed: list[str] = []  # IP VIPs
    for region, vips in service.vips.items():
        for v in vips:
            vid = Vip.make_id(service.name, region, v.address, v.port)
            ip = _ip(v.address)
            ips = [ip] if ip is not None else list(v.ips)
            if ip is not None:
                addressed.append(vid)
            elif not ips:
                bare.append(vid)
            names[vid] = (absolute(v.address),)
            v4[vid] = tuple(str(a) for a in ips if a.version == 4)
            v6[vid] = tuple(str(a) for a in ips if a.version == 6)
    if not bare:
        return {"A": v4, "AAAA": v6}
    if not addressed:
        return {"CNAME": names}
    raise RenderError(
        [
            f"service {service.name}: host-name VIPs {bare} have no ips, but VIPs {addressed} "
            "are IP addresses; give the host-name VIPs their ips (answered as A/AAAA), or make "
            "every VIP a host name (answered with a CNAME)"
        ]
    )


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None
