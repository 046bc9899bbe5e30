"""What the table answers one client subnet for one name: the row it gets, and why.

`lookup(inventory, table, name, subnet)` finds the service of `name`, the row
a client in `subnet` gets (the same longest-prefix match the answer processes
make, `Topology`), and each VIP's chance of being the answer: its region's
cell weight over the row's total, times its share among that region's VIPs.
`gtm answer` and the console show it beside what DNS is observed to answer.
Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from gtm.config import Inventory
from gtm.dns.topology import Topology
from policies import WeightTable


class BadLookup(ValueError):
    """The name or subnet cannot be looked up; the message says which and why."""


class UnknownName(BadLookup):
    """No service answers the name."""


@dataclass(frozen=True)
class Target:
    region: str
    weight: int
    out: str | None  # why the region takes nothing (Region Exit, down, …), else None
    ramping: bool  # the cell is ramping back
    vips: Mapping[str, float]  # VIP address -> chance of being the answer (0..1)


@dataclass(frozen=True)
class Lookup:
    name: str
    service: str
    subnet: str
    region: str  # the row the subnet gets (its clients' region, or the default row)
    matched: bool  # False: no region lists the subnet, the default row answers
    scope: int  # the ECS scope prefix length the answer is valid for
    generation: int
    ttl: int
    total: int
    fail_open: bool  # every region is down: the row keeps its last known good weights
    targets: tuple[Target, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def lookup(inventory: Inventory, table: WeightTable, name: str, subnet: str) -> Lookup:
    fqdn = name.rstrip(".").lower()
    service = next((s for s in inventory.estate.services if s.fqdn == fqdn), None)
    if service is None:
        raise UnknownName(f"no service answers {name!r}")
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise BadLookup(f"{subnet!r} is not a client subnet (like 10.1.2.0/24)") from None
    topology = Topology.from_config(inventory.config)
    match = topology.row_for_subnet(net.version, int(net.network_address), net.prefixlen)
    region = topology.regions[match.row]
    matched = any(
        net.version == c.version and net.subnet_of(c)  # type: ignore[arg-type]
        for r in inventory.config.regions
        if r.name == region
        for c in r.client_cidrs
    )
    row = table.row(service.name, region)
    if row is None:
        raise BadLookup(f"the table (generation {table.generation}) has no row {region}")
    targets = []
    for target, cell in row.cells.items():
        share = sum(cell.vips.values())
        chance = cell.weight / row.total if row.total else 0.0
        vips = {
            vip_id.split("/", 2)[-1].rpartition(":")[0]: chance * s / share if share else 0.0
            for vip_id, s in cell.vips.items()
        }
        targets.append(Target(target, cell.weight, cell.out, cell.ramp_start is not None, vips))
    return Lookup(
        fqdn,
        service.name,
        str(net),
        region,
        matched,
        match.scope,
        table.generation,
        inventory.config.dns.ttl,
        row.total,
        row.fail_open,
        tuple(targets),
    )
