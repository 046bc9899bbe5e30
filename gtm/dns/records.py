"""Resource records in wire format, and the apex of each zone (SOA, NS, glue).

Everything here is built once per table generation; the hot path only
concatenates the bytes. Answer records use the owner `C0 0C`, a compression
pointer to the question name, which always starts at offset 12 of a reply,
so one precomputed record fits every spelling (case) of the query name.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from gtm.config import DnsConfig

QNAME = b"\xc0\x0c"  # compression pointer to the question name

A, NS, CNAME, SOA, AAAA, OPT, ANY = 1, 2, 5, 6, 28, 41, 255
IN = 1

# SOA timers besides the serial (the generation) and the minimum (the TTL).
REFRESH, RETRY, EXPIRE = 3600, 600, 86400


def name_wire(name: str) -> bytes:
    """'Foo.example.com' -> b'\\x03foo\\x07example\\x03com\\x00' (lowercase, absolute)."""
    out = bytearray()
    for label in name.rstrip(".").lower().split("."):
        if label:
            raw = label.encode("ascii")
            if len(raw) > 63:
                raise ValueError(f"label {label!r} of {name!r} is longer than 63 octets")
            out += bytes((len(raw),)) + raw
    out += b"\x00"
    if len(out) > 255:
        raise ValueError(f"{name!r} is longer than 255 octets")
    return bytes(out)


def suffixes(wire: bytes) -> list[bytes]:
    """Every ancestor of a wire name, itself first, root last."""
    out = []
    i = 0
    while True:
        out.append(wire[i:])
        n = wire[i]
        if n == 0:
            return out
        i += n + 1


def rr(owner: bytes, rtype: int, ttl: int, rdata: bytes) -> bytes:
    return owner + struct.pack("!HHIH", rtype, IN, ttl, len(rdata)) + rdata


def address_rr(owner: bytes, ttl: int, address: str) -> tuple[int, bytes]:
    """(A or AAAA, the record) for an IP address."""
    ip = ipaddress.ip_address(address)
    return (A if ip.version == 4 else AAAA), rr(
        owner, A if ip.version == 4 else AAAA, ttl, ip.packed
    )


def mailbox(value: str | None, zone: str) -> bytes:
    """SOA RNAME in wire format from 'hostmaster@example.com' or 'hostmaster.example.com'.

    The local part of an e-mail address is one label, dots included (RFC 1035 §8).
    """
    if not value:
        return name_wire(f"hostmaster.{zone}")
    if "@" in value:
        local, _, domain = value.partition("@")
        raw = local.encode("ascii")[:63]
        return bytes((len(raw),)) + raw + name_wire(domain)
    return name_wire(value)


@dataclass(frozen=True)
class Zone:
    """One served zone: its apex records and the negative answers' authority."""

    origin: str
    wire: bytes
    soa: bytes  # the SOA record, owner = the apex (uncompressed)
    ns: tuple[bytes, ...]  # NS records, owner = the question name (pointer)
    glue: tuple[bytes, ...]  # A/AAAA of in-zone name servers, for the additional section
    ns_names: tuple[bytes, ...]  # wire names of the name servers
    glue_by_name: dict[bytes, tuple[tuple[int, bytes], ...]]  # in-zone NS name -> (type, record)

    @classmethod
    def build(cls, origin: str, dns: DnsConfig, serial: int, ns_addresses: Sequence[str]) -> Zone:
        wire = name_wire(origin)
        ttl = dns.ttl
        servers = list(dns.nameservers) or [f"ns1.{origin}"]
        ns_wires = tuple(name_wire(s) for s in servers)
        rname = mailbox(dns.hostmaster, origin)
        soa_rdata = (
            ns_wires[0]
            + rname
            + struct.pack("!IIIII", serial & 0xFFFFFFFF, REFRESH, RETRY, EXPIRE, ttl)
        )
        glue_by_name: dict[bytes, tuple[tuple[int, bytes], ...]] = {}
        glue: list[bytes] = []
        for s in ns_wires:
            if _below(s, wire):
                records = tuple(address_rr(s, ttl, a) for a in ns_addresses)
                glue_by_name[s] = records
                glue.extend(r for _, r in records)
        return cls(
            origin=origin,
            wire=wire,
            soa=rr(wire, SOA, ttl, soa_rdata),
            ns=tuple(rr(QNAME, NS, ttl, s) for s in ns_wires),
            glue=tuple(glue),
            ns_names=ns_wires,
            glue_by_name=glue_by_name,
        )


def _below(name: bytes, zone: bytes) -> bool:
    """Whether wire `name` is `zone` or a name under it (on a label boundary)."""
    return zone in suffixes(name)


def glue_addresses(listen_host: str) -> list[str]:
    """The address name servers in the zone get: the listen address, unless a wildcard."""
    try:
        ip = ipaddress.ip_address(listen_host)
    except ValueError:
        return []
    return [] if ip.is_unspecified else [str(ip)]
