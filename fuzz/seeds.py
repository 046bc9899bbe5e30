"""`python -m fuzz.seeds`: write the DNS seed corpus (`fuzz/corpus/dns/`) again.

A few queries of each shape the answer path treats apart: the fast path's
plain and EDNS queries, ECS, case variants, a compressed question, AAAA, a
CNAME, a truncated big answer, NXDOMAIN and NODATA, other opcodes, zone
transfers, another class, two questions, a bad EDNS version, and a runt.
"""

from __future__ import annotations

import struct

import dns.edns
import dns.message
import dns.opcode
import dns.rdataclass

from fuzz.targets import HERE


def seeds() -> dict[str, bytes]:
    def q(name: str, rdtype: str = "A", **kw: object) -> dns.message.QueryMessage:
        m = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
        m.id = 0x1234
        return m

    ecs = dns.edns.ECSOption("127.0.2.0", 24)
    out = {
        "a-plain": q("foo.example.com").to_wire(),
        "a-edns": q("pay.example.com", use_edns=0, payload=1232).to_wire(),
        "a-ecs": q("foo.example.com", use_edns=0, options=[ecs]).to_wire(),
        "a-case": q("FoO.ExAmPlE.cOm").to_wire(),
        "aaaa-ecs6": q(
            "local.example.com", "AAAA", use_edns=0, options=[dns.edns.ECSOption("fd00:3::", 48)]
        ).to_wire(),
        "cname": q("alias.example.com", "CNAME").to_wire(),
        "any": q("alias.example.com", "ANY", use_edns=0).to_wire(),
        "big-truncated": q("big.example.org", "AAAA").to_wire(),
        "nxdomain": q("nope.example.com", "TXT").to_wire(),
        "nodata-ent": q("deep.example.com", "A").to_wire(),
        "soa-apex": q("example.org", "SOA", use_edns=0, want_dnssec=True).to_wire(),
        "refused-zone": q("foo.example.net").to_wire(),
        "axfr": q("example.com", "AXFR").to_wire(),
        "chaos-class": q("version.bind", "TXT", rdclass=dns.rdataclass.CH).to_wire(),
        "badvers": q("foo.example.com", use_edns=1).to_wire(),
    }
    notify = q("example.com", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    out["notify"] = notify.to_wire()
    two = q("foo.example.com")
    two.question.append(q("pay.example.com").question[0])
    out["two-questions"] = two.to_wire()
    # the question's name as a pointer to itself at offset 12: a loop dnspython refuses
    out["compressed-loop"] = (
        struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    )
    out["runt"] = b"\x12\x34\x01\x00\x00\x01"
    return out


def main() -> None:
    folder = HERE / "corpus" / "dns"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (folder / name).write_bytes(data)
    print(f"wrote {len(seeds())} seeds to {folder}")


if __name__ == "__main__":
    main()
