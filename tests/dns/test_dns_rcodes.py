"""Every rcode case of the embedded server, over UDP, checked with dnspython."""

from __future__ import annotations

import struct
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.update
import pytest
from dns_estate import Running


def q(name: str, rdtype: str = "A", **kw: Any) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, **kw)


def test_a_answer_is_authoritative_with_id_and_rd_copied(served: Running) -> None:
    for rd in (True, False):
        query = q("local.example.com")
        if not rd:
            query.flags &= ~dns.flags.RD
        r = served.query(query, source="127.0.2.1")
        assert r.id == query.id
        assert r.rcode() == dns.rcode.NOERROR
        assert r.flags & dns.flags.AA and r.flags & dns.flags.QR
        assert bool(r.flags & dns.flags.RD) is rd
        assert not r.flags & dns.flags.RA
        [rrset] = r.answer
        assert rrset.ttl == 30
        assert [x.address for x in rrset] == ["127.0.2.10"]
        assert r.edns == -1  # no OPT in the query, none in the reply


def test_aaaa_answer(served: Running) -> None:
    r = served.query(q("local.example.com", "AAAA"), source="127.0.3.1")
    assert [x.address for x in r.answer[0]] == ["fd00:3::10"]


def test_host_name_vip_is_a_cname_or_its_addresses(served: Running) -> None:
    r = served.query(q("alias.example.com"), source="127.0.2.1")
    [rrset] = r.answer
    assert rrset.rdtype == dns.rdatatype.CNAME
    assert rrset[0].target.to_text() == "lb2.cdn.example.net."
    r = served.query(q("alias.example.com", "AAAA"), source="127.0.3.1")
    assert [x.address for x in r.answer[0]] == ["fd00:3::30"]
    r = served.query(q("alias.example.com", "A"), source="127.0.3.1")
    assert [x.address for x in r.answer[0]] == ["127.0.3.30"]


def test_soa_and_ns_at_each_apex(served: Running) -> None:
    for zone in ("example.com", "example.org"):
        r = served.query(q(zone, "SOA"))
        [soa] = r.answer
        assert soa[0].serial == 1  # the table generation
        assert soa[0].mname.to_text() == f"ns1.{zone}."
        assert soa[0].rname.to_text() == f"hostmaster.{zone}."
        r = served.query(q(zone, "NS"))
        assert [x.target.to_text() for x in r.answer[0]] == [f"ns1.{zone}."]
        [glue] = r.additional
        assert glue.name.to_text() == f"ns1.{zone}." and glue[0].address == "127.0.0.1"
        assert r.flags & dns.flags.AA


def test_nxdomain_has_the_zone_soa_in_authority(served: Running) -> None:
    for name, zone in (
        ("nope.example.com", "example.com"),
        ("x.foo.example.com", "example.com"),
        ("a.b.example.org", "example.org"),
    ):
        r = served.query(q(name))
        assert r.rcode() == dns.rcode.NXDOMAIN
        assert r.flags & dns.flags.AA
        assert not r.answer
        [soa] = r.authority
        assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == f"{zone}."


@pytest.mark.parametrize(
    "name, rdtype",
    [
        ("foo.example.com", "TXT"),
        ("foo.example.com", "MX"),
        ("foo.example.com", "AAAA"),  # only IPv4 VIPs
        ("foo.example.com", "HTTPS"),
        ("foo.example.com", "CAA"),
        ("deep.example.com", "A"),  # an empty non-terminal (www.deep.example.com exists)
        ("example.com", "A"),
        ("ns1.example.com", "AAAA"),
    ],
)
def test_nodata_is_noerror_with_soa(served: Running, name: str, rdtype: str) -> None:
    r = served.query(q(name, rdtype))
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.answer
    assert r.authority[0].rdtype == dns.rdatatype.SOA
    assert r.flags & dns.flags.AA


def test_refused_outside_the_zones(served: Running) -> None:
    for name in ("example.net", "com", "notexample.com", "lb1.cdn.example.net"):
        r = served.query(q(name))
        assert r.rcode() == dns.rcode.REFUSED
        assert not r.flags & dns.flags.AA
        assert not r.answer and not r.authority


def test_refused_for_zone_transfers_and_other_classes(served: Running) -> None:
    assert served.query(q("example.com", "AXFR")).rcode() == dns.rcode.REFUSED
    assert served.query(q("example.com", "A", rdclass="CH")).rcode() == dns.rcode.REFUSED


def test_formerr_for_no_question_and_for_a_meta_type(served: Running) -> None:
    query = q("foo.example.com")
    wire = bytearray(query.to_wire())
    wire[4:6] = b"\x00\x00"  # QDCOUNT 0, question left as trailing junk
    reply = served.raw(bytes(wire[:12]))
    assert reply is not None
    r = dns.message.from_wire(reply)
    assert r.rcode() == dns.rcode.FORMERR and r.id == query.id
    wire = bytearray(q("foo.example.com").to_wire())
    wire[-4:-2] = struct.pack("!H", dns.rdatatype.OPT)
    r = dns.message.from_wire(served.raw(bytes(wire)) or b"")
    assert r.rcode() == dns.rcode.FORMERR


def test_formerr_for_garbage_keeps_the_id(served: Running) -> None:
    reply = served.raw(b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07examp")
    assert reply is not None and reply[:2] == b"\xab\xcd"
    assert reply[3] & 0x0F == dns.rcode.FORMERR and reply[2] & 0x80


def test_notimp_for_other_opcodes(served: Running) -> None:
    notify = q("example.com", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    r = served.query(notify)
    assert r.rcode() == dns.rcode.NOTIMP and r.opcode() == dns.opcode.NOTIFY
    update = dns.update.UpdateMessage("example.com")
    update.add("x", 30, "A", "10.0.0.1")
    reply = served.raw(update.to_wire())
    assert reply is not None and reply[3] & 0x0F == dns.rcode.NOTIMP


def test_no_reply_to_responses_or_runts(served: Running) -> None:
    response = dns.message.make_response(q("foo.example.com")).to_wire()
    assert served.raw(response, timeout=0.3) is None
    assert served.raw(b"\x12\x34\x01", timeout=0.3) is None


def test_edns_reply_carries_opt_with_our_payload_and_do_copied(served: Running) -> None:
    for do in (False, True):
        query = q("foo.example.com", use_edns=0, payload=4096, want_dnssec=do)
        r = served.query(query)
        assert r.edns == 0 and r.payload == 1232
        assert bool(r.ednsflags & dns.flags.DO) is do
        assert r.answer


def test_badvers_for_edns_version_above_zero(served: Running) -> None:
    r = served.query(q("foo.example.com", use_edns=1))
    assert r.rcode() == dns.rcode.BADVERS
    assert r.edns == 0
    assert not r.answer


def test_question_case_is_echoed_exactly(served: Running) -> None:
    cases: list[tuple[str, dict[str, int]]] = [
        ("FoO.ExAmPlE.CoM", {}),  # fast path
        ("FoO.ExAmPlE.CoM", {"use_edns": 0, "payload": 1400}),  # slow then fast path (OPT cache)
        ("FoO.ExAmPlE.CoM", {"use_edns": 0, "payload": 1400}),
        ("NoPe.ExAmPlE.cOm", {}),  # NXDOMAIN
        ("OtHeR.NeT", {}),  # REFUSED
        ("ExAmPlE.CoM", {"use_edns": 1}),  # BADVERS
    ]
    for name, kw in cases:
        query = q(name, "A", **kw).to_wire()
        end = 12 + len(name) + 2 + 4
        reply = served.raw(query)
        assert reply is not None
        assert reply[12:end] == query[12:end]
        assert dns.message.from_wire(reply).question[0].name.to_text() == name + "."


def test_any_at_a_service_and_at_the_apex(served: Running) -> None:
    r = served.query(q("local.example.com", "ANY"), source="127.0.1.1")
    got = sorted(x.to_text() for rrset in r.answer for x in rrset)
    assert got in (["127.0.1.10"], ["fd00:1::10"])
    r = served.query(q("example.com", "ANY"))
    assert {rrset.rdtype for rrset in r.answer} == {dns.rdatatype.SOA, dns.rdatatype.NS}
