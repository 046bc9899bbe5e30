"""Malformed packets never crash the server nor keep it from answering the next query.

Each example sends one bad packet (random bytes, a cut or mangled query,
compression pointer loops, absurd section counts), checks that whatever
comes back is a well-formed FORMERR-or-better reply with the query's ID,
then checks that a valid query is still answered. At the end no query may
have raised inside the server (its `errors` counter stays 0).
"""

from __future__ import annotations

import socket
import struct

import dns.edns
import dns.message
import dns.rcode
from dns_estate import Running
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

VALID = [
    dns.message.make_query("foo.example.com", "A").to_wire(),
    dns.message.make_query("FOO.example.com", "AAAA", use_edns=0).to_wire(),
    dns.message.make_query(
        "local.example.com", "A", use_edns=0, options=[dns.edns.ECSOption("127.0.2.0", 24)]
    ).to_wire(),
    dns.message.make_query("nope.example.org", "TXT", use_edns=0, want_dnssec=True).to_wire(),
]

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def header(qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0, ident: int = 0x4242) -> bytes:
    return struct.pack("!HHHHHH", ident, 0x0100, qd, an, ns, ar)


def check(served: Running, packet: bytes) -> None:
    """Send `packet` then a valid query on one socket; replies come back in order."""
    good = dns.message.make_query("foo.example.com", "A")
    if packet[:2] == struct.pack("!H", good.id):
        good.id ^= 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(packet, ("127.0.0.1", served.port))
        s.sendto(good.to_wire(), ("127.0.0.1", served.port))
        reply = s.recv(65535)
        if reply[:2] != struct.pack("!H", good.id):  # the reply to the bad packet
            assert len(packet) >= 12 and reply[:2] == packet[:2]  # its ID is copied
            assert len(reply) >= 12 and reply[2] & 0x80  # a response header at least
            reply = s.recv(65535)
    r = dns.message.from_wire(reply)
    assert r.id == good.id and r.rcode() == dns.rcode.NOERROR and r.answer


@SETTINGS
@given(st.binary(max_size=600))
def test_random_bytes(served: Running, packet: bytes) -> None:
    check(served, packet)


@SETTINGS
@given(st.sampled_from(VALID), st.data())
def test_truncated_queries(served: Running, query: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(query) - 1))
    check(served, query[:cut])


@SETTINGS
@given(st.sampled_from(VALID), st.data())
def test_mangled_queries(served: Running, query: bytes, data: st.DataObject) -> None:
    packet = bytearray(query)
    for _ in range(data.draw(st.integers(min_value=1, max_value=6))):
        i = data.draw(st.integers(min_value=2, max_value=len(packet) - 1))  # keep the ID
        packet[i] = data.draw(st.integers(min_value=0, max_value=255))
    packet[2] &= 0x7F  # a query, so a reply is due unless it is unreadable
    check(served, bytes(packet))


@SETTINGS
@given(
    st.integers(min_value=0, max_value=0xFFFF),
    st.integers(min_value=0, max_value=0xFFFF),
    st.integers(min_value=0, max_value=0xFFFF),
    st.integers(min_value=0, max_value=0xFFFF),
    st.sampled_from(VALID),
)
def test_huge_counts(served: Running, qd: int, an: int, ns: int, ar: int, query: bytes) -> None:
    check(served, header(qd, an, ns, ar) + query[12:])


@SETTINGS
@given(st.integers(min_value=12, max_value=40), st.binary(max_size=20))
def test_compression_pointer_loops(served: Running, target: int, filler: bytes) -> None:
    # A name whose pointer points at itself, or at a label leading back to it.
    self_loop = header() + struct.pack("!H", 0xC000 | 12) + b"\x00\x01\x00\x01"
    check(served, self_loop)
    two_step = header() + b"\x03abc" + struct.pack("!H", 0xC000 | 12) + b"\x00\x01\x00\x01"
    check(served, two_step)
    anywhere = header() + filler + struct.pack("!H", 0xC000 | target) + b"\x00\x01\x00\x01"
    check(served, anywhere)
    # A valid question, then an answer record whose owner loops.
    answer = VALID[0][12:] + struct.pack("!H", 0xC000 | (12 + len(VALID[0]) - 12)) + b"\x00\x01"
    check(served, header(1, 1) + answer + b"\x00\x01\x00\x00\x00\x1e\x00\x04\x7f\x00\x00\x01")


def test_no_query_raised_inside_the_server(served: Running) -> None:
    check(served, b"\x00" * 12)
    assert served.server.metrics.errors == 0
