"""Every answer of one table generation, precomputed in wire format.

`Answers.build(inventory, table)` walks the estate once and keeps, per
(query name, qtype) and per table row, a *pick* (picks.py) yielding one
`Variant` — the header counts and the records that follow the question.
For the usual one record per answer the pick is a weighted choice among
precomputed variants (a region by its cell weight, then a VIP by its share);
for `records_per_answer` > 1 it draws distinct VIPs the same way and joins
their precomputed records. Rows that answer alike share one pick. Names and
types without an entry go through `resolve()`: NODATA, NXDOMAIN (with the
zone's SOA) or REFUSED. Host-name VIPs are answered with a CNAME, or with
their configured `ips` as A/AAAA (all of a VIP's addresses count as one
record of `records_per_answer`).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass

from gtm.config import Inventory, ServiceConfig, VipConfig, split_listen
from gtm.dns.metrics import Label, Tally
from gtm.dns.picks import Pick, Unit, Variant, counts, draw, single, weighted
from gtm.dns.records import (
    AAAA,
    ANY,
    CNAME,
    IN,
    NS,
    QNAME,
    SOA,
    A,
    Zone,
    glue_addresses,
    name_wire,
    rr,
    suffixes,
)
from gtm.dns.topology import Topology
from policies import Row, Service, Vip, WeightTable

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
# Types answered NODATA from the precomputed table (others take the slow path).
_NODATA_TYPES = (A, NS, CNAME, SOA, 15, 16, AAAA, 33, 64, 65, 257, ANY)
_ADDRESS_TYPES = (A, AAAA, ANY, CNAME)


def key(qname: bytes, qtype: int) -> bytes:
    """The lookup key: the question as sent, lowercased (bytes.lower only touches A-Z)."""
    return (qname + struct.pack("!HH", qtype, IN)).lower()


@dataclass(frozen=True)
class Resolution:
    rcode: int
    picks: tuple[Pick, ...] | None  # one per row; None: no records (REFUSED)
    authoritative: bool = True


@dataclass(frozen=True)
class Answers:
    generation: int
    topology: Topology
    zones: Mapping[bytes, Zone]  # apex wire name -> zone
    entries: Mapping[bytes, tuple[Pick, ...]]  # key(qname, qtype) -> pick per row
    nodes: frozenset[bytes]  # names that exist (wire, lowercase)
    tally: Tally
    records_per_answer: int
    ttl: int

    @classmethod
    def build(
        cls, inventory: Inventory, table: WeightTable, *, ns_addresses: Sequence[str] | None = None
    ) -> Answers:
        """Precompute every answer for `table`; `ns_addresses` are the glue of in-zone NS names
        (default: the configured listen address unless it is a wildcard)."""
        steps = cls.building(inventory, table, ns_addresses=ns_addresses)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    @classmethod
    def building(
        cls,
        inventory: Inventory,
        table: WeightTable,
        *,
        ns_addresses: Sequence[str] | None = None,
        tally: Tally | None = None,
    ) -> Generator[None, None, Answers]:
        """`build` in steps: the generator yields after each service and returns the answers.

        An answer process builds a new generation between the queries it
        answers, a few services at a time, so no build holds its loop. With
        the `tally` of the generation it replaces, the new one counts into
        the same slots (a label keeps its slot; new labels are appended), so
        a swap folds no counters.
        """
        return _Builder(inventory, table, ns_addresses, tally).build()

    def resolve(self, qname: bytes, qtype: int) -> Resolution:
        """The answer for a lowercase wire name the precomputed entries do not cover."""
        picks = self.entries.get(key(qname, qtype))
        if picks is not None:
            return Resolution(NOERROR, picks)
        zone = self.zone_of(qname)
        if zone is None:
            return Resolution(REFUSED, None, authoritative=False)
        if qname in self.nodes:
            return Resolution(NOERROR, self._negative(zone))
        return Resolution(NXDOMAIN, self._negative(zone))

    def zone_of(self, qname: bytes) -> Zone | None:
        for suffix in suffixes(qname):
            zone = self.zones.get(suffix)
            if zone is not None:
                return zone
        return None

    def _negative(self, zone: Zone) -> tuple[Pick, ...]:
        plain, opt = counts(0, 1, 0)
        return (single((plain, opt, zone.soa, -1)),) * len(self.topology.regions)


class _Builder:
    def __init__(
        self,
        inventory: Inventory,
        table: WeightTable,
        ns_addresses: Sequence[str] | None,
        tally: Tally | None = None,
    ) -> None:
        self.inventory = inventory
        self.table = table
        self.dns = inventory.config.dns
        self.ttl = self.dns.ttl
        self.k = self.dns.records_per_answer
        self.tally = tally if tally is not None else Tally()
        self.topology = Topology.from_config(inventory.config)
        self.rows = len(self.topology.regions)
        if ns_addresses is None:
            ns_addresses = glue_addresses(split_listen(self.dns.listen)[0])
        self.zones = {
            z.wire: z
            for z in (
                Zone.build(origin, self.dns, table.generation, ns_addresses)
                for origin in inventory.zones()
            )
        }
        self.entries: dict[bytes, tuple[Pick, ...]] = {}
        self.nodes: set[bytes] = set()
        self.nodata: dict[tuple[bytes, int], tuple[Pick, ...]] = {}

    def build(self) -> Generator[None, None, Answers]:
        for zone in self.zones.values():
            self._apex(zone)
        for service in self.inventory.estate.services:
            self._service(service, self.inventory.services[service.name])
            yield
        # Every name between a node and its zone's apex exists (empty non-terminals, RFC 8020).
        for node in list(self.nodes):
            for suffix in suffixes(node):
                if suffix in self.zones:
                    break
                self.nodes.add(suffix)
        yield
        for i, node in enumerate(self.nodes):
            if i % 256 == 255:
                yield
            owner = self._zone_of(node)
            if owner is None:
                continue
            for qtype in _NODATA_TYPES:
                k = key(node, qtype)
                if k not in self.entries:
                    self.entries[k] = self._nodata(owner, qtype)
        return Answers(
            generation=self.table.generation,
            topology=self.topology,
            zones=self.zones,
            entries=self.entries,
            nodes=frozenset(self.nodes),
            tally=self.tally,
            records_per_answer=self.k,
            ttl=self.ttl,
        )

    def _zone_of(self, name: bytes) -> Zone | None:
        for suffix in suffixes(name):
            if suffix in self.zones:
                return self.zones[suffix]
        return None

    def _nodata(self, zone: Zone, qtype: int) -> tuple[Pick, ...]:
        """NOERROR, no records, the zone's SOA: one shared entry per zone and type."""
        picks = self.nodata.get((zone.wire, qtype))
        if picks is None:
            plain, opt = counts(0, 1, 0)
            v: Variant = (plain, opt, zone.soa, self.tally.slot(Label(qtype, NOERROR)))
            picks = self.nodata[(zone.wire, qtype)] = (single(v),) * self.rows
        return picks

    def _static(self, k: bytes, an: int, ns: int, ar: int, records: bytes, label: Label) -> None:
        plain, opt = counts(an, ns, ar)
        v: Variant = (plain, opt, records, self.tally.slot(label))
        self.entries[k] = (single(v),) * self.rows

    def _apex(self, zone: Zone) -> None:
        self.nodes.add(zone.wire)
        soa = QNAME + zone.soa[len(zone.wire) :]  # same record, owner = the question name
        ns = b"".join(zone.ns)
        self._static(key(zone.wire, SOA), 1, 0, 0, soa, Label(SOA, NOERROR))
        self._static(
            key(zone.wire, NS),
            len(zone.ns),
            0,
            len(zone.glue),
            ns + b"".join(zone.glue),
            Label(NS, NOERROR),
        )
        self._static(key(zone.wire, ANY), 1 + len(zone.ns), 0, 0, soa + ns, Label(ANY, NOERROR))
        for name, records in zone.glue_by_name.items():
            self.nodes.add(name)
            for rtype in (A, AAAA):
                found = [r[len(name) :] for t, r in records if t == rtype]
                if found:
                    body = b"".join(QNAME + r for r in found)
                    self._static(key(name, rtype), len(found), 0, 0, body, Label(rtype, NOERROR))

    def _service(self, service: Service, config: ServiceConfig) -> None:
        wire = name_wire(service.fqdn)
        if self._zone_of(wire) is None:
            return  # in none of the served zones
        self.nodes.add(wire)
        vip_config = {
            Vip.make_id(service.name, region, v.address, v.port): v
            for region, vips in config.vips.items()
            for v in vips
        }
        for qtype in _ADDRESS_TYPES:
            records = {
                v.id: self._records(v, vip_config[v.id], qtype)
                for vips in service.vips.values()
                for v in vips
            }
            picks: list[Pick] = []
            slots: dict[tuple[str, bool], int] = {}
            alike: dict[tuple[tuple[int, float, int], ...], Pick] = {}  # equal rows share a pick
            for source in self.topology.regions:
                row = self._row(service, source)
                units = self._units(service, row, qtype, records, slots)
                if not units:
                    break
                same = tuple((u.slot, u.weight, id(u.records)) for u in units)
                pick = alike.get(same)
                if pick is None:
                    pick = alike[same] = self._pick(units, qtype)
                picks.append(pick)
            if len(picks) == self.rows:
                self.entries[key(wire, qtype)] = tuple(picks)

    def _row(self, service: Service, source: str) -> Row | None:
        by_source = self.table.rows.get(service.name, {})
        default = self.topology.regions[self.topology.default]
        return (
            by_source.get(source) or by_source.get(default) or next(iter(by_source.values()), None)
        )

    def _units(
        self,
        service: Service,
        row: Row | None,
        qtype: int,
        records: Mapping[str, tuple[bytes, ...]],
        slots: dict[tuple[str, bool], int],
    ) -> list[Unit]:
        """The VIPs a row can answer for `qtype`, each with its probability weight.

        A region is drawn by its cell weight, then a VIP by its share among
        the region's VIPs that have records of this type. A row with nothing
        to answer for this type fails open, like the table itself: first to
        the VIPs that are up in any region (by share), then — no row, or no
        VIP up — to every VIP by its configured weight. The DNS never answers
        empty while the service has addresses of the type.
        """
        units: list[Unit] = []
        if row is not None:
            for up in (False, True):  # up: every VIP that is up, by its share in its region
                for region, cell in row.cells.items():
                    vips = [
                        (v, cell.vips.get(v.id, 0), records[v.id])
                        for v in service.vips.get(region, ())
                    ]
                    vips = [(v, share, recs) for v, share, recs in vips if share > 0 and recs]
                    shares = sum(share for _, share, _ in vips)
                    weight = 1 if up else cell.weight
                    for v, share, recs in vips:
                        if weight > 0:
                            units.append(
                                self._unit(service, v, weight * share / shares, recs, qtype, slots)
                            )
                if units:
                    break
        if not units:
            for region_vips in service.vips.values():
                for v in region_vips:
                    if records[v.id]:
                        units.append(
                            self._unit(service, v, float(v.weight), records[v.id], qtype, slots)
                        )
        return units

    def _unit(
        self,
        service: Service,
        vip: Vip,
        weight: float,
        recs: tuple[bytes, ...],
        qtype: int,
        slots: dict[tuple[str, bool], int],
    ) -> Unit:
        cname = _is_cname(recs)
        slot = slots.get((vip.region, cname))
        if slot is None:
            slot = slots[(vip.region, cname)] = self.tally.slot(
                Label(qtype, NOERROR, service.name, vip.region)
            )
        return Unit(weight, recs, cname, vip.region, slot)

    def _records(self, vip: Vip, config: VipConfig, qtype: int) -> tuple[bytes, ...]:
        """The records a VIP contributes to an answer of `qtype` (empty: none)."""
        packed = _packed(vip.address)
        if packed is not None:
            addresses = [packed]
        elif not config.ips:  # a host name without addresses: a CNAME to it
            return (rr(QNAME, CNAME, self.ttl, name_wire(vip.address)),)
        else:
            addresses = [(A if ip.version == 4 else AAAA, ip.packed) for ip in config.ips]
        if qtype == CNAME:
            return ()
        return tuple(
            rr(QNAME, rtype, self.ttl, raw) for rtype, raw in addresses if qtype in (rtype, ANY)
        )

    def _pick(self, units: list[Unit], qtype: int) -> Pick:
        if self.k == 1 or len(units) == 1:
            variants = []
            for u in units:
                plain, opt = counts(len(u.records), 0, 0)
                variants.append((plain, opt, b"".join(u.records), u.slot))
            return weighted(variants, [u.weight for u in units])
        return draw(units, self.k)


def _packed(address: str) -> tuple[int, bytes] | None:
    """(A or AAAA, the packed address) of an IP address; None for a host name."""
    for family, rtype in ((socket.AF_INET, A), (socket.AF_INET6, AAAA)):
        try:
            return rtype, socket.inet_pton(family, address)
        except OSError:
            continue
    return None


def _is_cname(records: tuple[bytes, ...]) -> bool:
    return records[0][2:4] == b"\x00\x05"
