"""The estate as the assertions know it (`EstateFacts`), and the members a drill observes.

From an inventory (a simulated estate, or a deployment whose estate file the
practice run was given) the facts hold every VIP, its region and address,
and each service's policy: split, bounds, rollout bounds. Against a
deployment without its estate file they are read from the API instead —
the regions and FQDNs of `/v1/status`, the VIPs of `/v1/table` — and the
policies are unknown (`policies_known` False: the bounds check is skipped).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaos.drills.samples import EstateFacts, PolicyFacts, ServiceFacts
from gtm.config import Inventory
from policies import Policy

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class MemberEndpoint:
    """Where a drill reaches one member: its API and its DNS."""

    name: str
    region: str
    api: str  # http://127.0.0.1:8080
    dns: tuple[str, int]


def policy_facts(policy: Policy) -> PolicyFacts:
    def part(m: Mapping[str, Mapping[str, Any]], attr: str) -> dict[str, dict[str, int]]:
        return {s: {t: int(getattr(b, attr)) for t, b in row.items()} for s, row in m.items()}

    return PolicyFacts(
        total=policy.total,
        split={s: dict(row) for s, row in policy.split.items()},
        lo=part(policy.bounds, "lo"),
        hi=part(policy.bounds, "hi"),
        rollout_lo=part(policy.rollout, "lo"),
        rollout_hi=part(policy.rollout, "hi"),
    )


def estate_facts(inventory: Inventory, members: Mapping[str, str]) -> EstateFacts:
    """Facts of an estate file; `members` maps each observed member to its region."""
    config = inventory.config
    services = {}
    for service in inventory.estate.services:
        vips = {v.id: region for region, vs in service.vips.items() for v in vs}
        addresses = {v.address: v.id for vs in service.vips.values() for v in vs}
        services[service.name] = ServiceFacts(
            service.fqdn, policy_facts(service.policy), vips, addresses
        )
    return EstateFacts(
        regions=inventory.region_names,
        members=dict(members),
        services=services,
        lease_duration=config.ha.lease.duration,
        hold=config.dns.ttl + config.dns.exit_margin,
    )


def client_subnets(inventory: Inventory) -> dict[str, IpNetwork]:
    """Per region, the subnet its clients ask from (its first IPv4 CIDR, else its first)."""
    out: dict[str, IpNetwork] = {}
    for region in inventory.config.regions:
        nets = sorted(region.client_cidrs, key=lambda n: n.version)
        if nets:
            out[region.name] = nets[0]
    return out


def facts_from_api(
    status: Mapping[str, Any],
    table: Mapping[str, Any],
    members: Mapping[str, str],
    *,
    lease_duration: float,
) -> tuple[EstateFacts, dict[str, IpNetwork]]:
    """Facts of a deployment read from one member's status and table (no policies)."""
    regions = tuple(status.get("regions", {}))
    subnets: dict[str, IpNetwork] = {}
    for name, region in status.get("regions", {}).items():
        nets = sorted(
            (ipaddress.ip_network(c, strict=False) for c in region.get("client_cidrs", [])),
            key=lambda n: n.version,
        )
        if nets:
            subnets[name] = nets[0]
    empty = PolicyFacts(0, {}, {}, {}, {}, {})
    services = {}
    for service, fqdn in status.get("fqdns", {}).items():
        vips: dict[str, str] = {}
        for row in table.get("rows", {}).get(service, {}).values():
            for region, cell in row.get("cells", {}).items():
                for vip_id in cell.get("vips", {}):
                    vips[vip_id] = region
        addresses = {_address(v): v for v in vips}
        services[service] = ServiceFacts(fqdn, empty, vips, addresses)
    dns = status.get("dns") or {}
    hold = float(dns.get("ttl") or 0)
    facts = EstateFacts(
        regions=regions,
        members=dict(members),
        services=services,
        lease_duration=lease_duration,
        hold=hold,
        policies_known=False,
    )
    return facts, subnets


def _address(vip_id: str) -> str:
    """`foo/dc1/10.0.0.1:443` -> `10.0.0.1` (brackets of an IPv6 address dropped)."""
    return vip_id.split("/", 2)[-1].rpartition(":")[0].strip("[]").lower()
