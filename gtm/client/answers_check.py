"""What members' DNS actually answers for a change, asked as each region's clients.

Each query carries an EDNS Client Subnet option for a region's client CIDR,
so the member answers from that region's row. An answer is mapped back to
its region through the VIP ids of the table (`service/region/address:port`).

- leaving (exit, drain): from every region's clients, no answer may point
  into the region (`tries` queries per service and client region);
- entering: the region's own clients must get answers in it again (at least
  one of `2 * tries` queries per service: a ramp starts small).

Only a sample of the services is asked (`SAMPLE`): the statuses already
cover every service; this checks the answers are really served.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dns.asyncquery
import dns.edns
import dns.exception
import dns.message
import dns.rdatatype

from gtm.client.convergence import Change
from gtm.status import MemberStatus

SAMPLE = 8  # services asked per member and poll


@dataclass(frozen=True, slots=True)
class AnswerCheck:
    member: str
    asked: int
    wrong: tuple[str, ...] = ()  # what is still off, for people
    problem: str | None = None  # could not ask at all

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.wrong

    def state(self) -> str:
        """`line()` without the sampled answers, which differ from poll to poll."""
        if self.problem is not None:
            return f"{self.member}: DNS not checked: {self.problem}"
        return f"{self.member}: DNS {'answers as expected' if self.ok else 'not yet as expected'}"

    def line(self) -> str:
        if self.problem is not None:
            return f"{self.member}: DNS not checked: {self.problem}"
        if not self.wrong:
            return f"{self.member}: DNS {self.asked} answers as expected"
        more = f" (+{len(self.wrong) - 1} more)" if len(self.wrong) > 1 else ""
        return f"{self.member}: DNS {self.wrong[0]}{more}"


def vip_regions(table: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """service -> VIP address -> region, from a table as `GET /v1/table` returns it."""
    out: dict[str, dict[str, str]] = {}
    for service, by_source in table.get("rows", {}).items():
        addresses = out.setdefault(service, {})
        for row in by_source.values():
            for region, cell in row.get("cells", {}).items():
                for vip_id in cell.get("vips", {}):
                    address = vip_id.split("/", 2)[-1].rpartition(":")[0]
                    addresses[address.strip("[]").lower()] = region
    return out


def sample(change: Change, regions_of: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The services to ask about: those the change covers that have VIPs in its region."""
    names = sorted(regions_of) if change.services is None else sorted(change.services)
    return [s for s in names if change.region in regions_of.get(s, {}).values()][:SAMPLE]


async def check_answers(
    change: Change,
    status: MemberStatus,
    api_host: str,
    regions_of: Mapping[str, Mapping[str, str]],
    services: Sequence[str],
    *,
    tries: int = 3,
    per_query: float = 1.0,
) -> AnswerCheck:
    name = status.identity
    if status.dns is None:
        return AnswerCheck(name, 0, problem="its status has no dns.listen")
    server = status.dns.address(api_host)
    subnets = {r: ref.client_subnet() for r, ref in status.regions.items()}
    askers = [r for r, net in subnets.items() if net is not None]
    if not askers:
        return AnswerCheck(name, 0, problem="its status lists no regions with client_cidrs")
    missing = [s for s in services if s not in status.fqdns]
    if missing:
        return AnswerCheck(name, 0, problem=f"its status has no fqdns for {', '.join(missing)}")
    gate = asyncio.Semaphore(32)
    failures: list[str] = []

    async def ask(service: str, asker: str) -> str | None:
        net = subnets[asker]
        assert net is not None
        async with gate:
            try:
                return await answer_of(status.fqdns[service], server, net, per_query)
            except (OSError, dns.exception.DNSException) as e:
                failures.append(f"DNS at {server[0]}:{server[1]}: {e or type(e).__name__}")
                return None

    jobs: list[tuple[str, str]] = []
    for service in services:
        if change.leaving:
            jobs += [(service, a) for a in askers for _ in range(tries)]
        else:
            from_region = [change.region] if change.region in askers else askers
            jobs += [(service, a) for a in from_region for _ in range(2 * tries)]
    answers = await asyncio.gather(*(ask(s, a) for s, a in jobs))
    if failures:
        return AnswerCheck(name, len(jobs), problem=f"{failures[0]} ({len(failures)} failed)")
    wrong: list[str] = []
    back: set[str] = set()
    for (service, asker), answer in zip(jobs, answers, strict=True):
        region = None if answer is None else regions_of.get(service, {}).get(answer)
        if change.leaving and region == change.region:
            wrong.append(f"{status.fqdns[service]} for {asker} clients -> {answer} ({region})")
        elif not change.leaving and region == change.region:
            back.add(service)
    if not change.leaving:
        wrong += [
            f"{status.fqdns[s]}: no answer in {change.region} yet"
            for s in services
            if s not in back
        ]
    return AnswerCheck(name, len(jobs), tuple(dict.fromkeys(wrong)))


async def answer_of(
    fqdn: str,
    server: tuple[str, int],
    net: ipaddress.IPv4Network | ipaddress.IPv6Network,
    per_query: float,
) -> str | None:
    """The first address (or CNAME target) answered for `fqdn` to a client in `net`."""
    ecs = dns.edns.ECSOption(str(net.network_address), net.prefixlen)
    for qtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        query = dns.message.make_query(fqdn, qtype, use_edns=0, options=[ecs])
        reply = await dns.asyncquery.udp(query, server[0], port=server[1], timeout=per_query)
        for rrset in reply.answer:
            for rdata in rrset:
                if rrset.rdtype == dns.rdatatype.CNAME:
                    return str(rdata.target).rstrip(".").lower()  # type: ignore[attr-defined]
                if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    return str(ipaddress.ip_address(rdata.address))  # type: ignore[attr-defined]
    return None
