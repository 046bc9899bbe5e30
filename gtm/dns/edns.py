"""EDNS0 (RFC 6891) and Client Subnet (RFC 7871) for the replies.

A query's OPT record decides three things about its reply: the OPT record
the reply carries (our payload size, the DO bit copied, the ECS option
echoed with its scope), the largest UDP reply the client takes, and — when
it carries ECS — the row of the table. `Edns` holds the three, so the hot
path can cache them by the query's OPT bytes. Answers that are the same for
every row (SOA, NS, negative answers, services in one region) echo ECS with
scope 0, so resolvers cache them once for all clients (RFC 7871 §7.2.1).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

import dns.edns
import dns.message

from gtm.dns.topology import Topology

PAYLOAD = 1232  # the UDP payload size we advertise (the DNS flag day 2020 value)
MIN_PAYLOAD = 512
DO = 0x8000
BADVERS = 16
BY_SOURCE = -1  # row: from the resolver's source address


@dataclass(frozen=True)
class Edns:
    row: int  # the table row chosen by ECS, or BY_SOURCE
    opt: bytes  # the OPT record of a reply that depends on the client's region
    opt_global: bytes  # ... of one that does not: ECS scope 0 (valid for every client)
    limit: int  # the largest UDP reply the client accepts


def opt_rr(*, ext_rcode: int = 0, do: bool = False, options: bytes = b"") -> bytes:
    """An OPT record: root owner, our payload size, version 0."""
    return (
        b"\x00\x00\x29"
        + struct.pack("!HBBHH", PAYLOAD, ext_rcode >> 4, 0, DO if do else 0, len(options))
        + options
    )


def limit(payload: int) -> int:
    return max(MIN_PAYLOAD, payload)


def of(msg: dns.message.Message, topology: Topology) -> Edns:
    """The reply's EDNS for a parsed query that has an OPT record of version 0.

    Raises ValueError for an ECS option that cannot be used: more than one,
    or a non-zero scope prefix length (RFC 7871 §7.1.1 and §6 leave FORMERR
    as the answer; dnspython has already rejected bad families, prefix
    lengths, and non-zero padding bits).
    """
    do = bool(msg.ednsflags & DO)
    found = [o for o in msg.options if o.otype == dns.edns.OptionType.ECS]
    if not found:
        opt = opt_rr(do=do)
        return Edns(BY_SOURCE, opt, opt, limit(msg.payload))
    if len(found) > 1:  # RFC 7871 §7.1.1: one ECS option per message
        raise ValueError("more than one client subnet option")
    [ecs] = found
    if not isinstance(ecs, dns.edns.ECSOption):
        raise ValueError("malformed client subnet option")
    if ecs.scopelen != 0:  # RFC 7871 §6: SCOPE PREFIX-LENGTH MUST be 0 in queries
        raise ValueError("client subnet option with a scope in a query")
    ip = ipaddress.ip_address(ecs.address)
    match = topology.row_for_subnet(ip.version, int(ip), ecs.srclen)
    return Edns(
        match.row,
        opt_rr(do=do, options=_ecs(ecs, match.scope)),
        opt_rr(do=do, options=_ecs(ecs, 0)),
        limit(msg.payload),
    )


def _ecs(query: dns.edns.ECSOption, scope: int) -> bytes:
    """The query's ECS option echoed (family, source prefix, address) with our scope."""
    echo = dns.edns.ECSOption(query.address, query.srclen, scope).to_wire() or b""
    return struct.pack("!HH", dns.edns.OptionType.ECS, len(echo)) + echo
