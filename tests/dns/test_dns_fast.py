"""The compiled UDP path answers byte for byte as the Python one, given the same draws.

`test_compiled_and_python_paths_answer_the_same_bytes` sends one list of
datagrams — every service name and the apex in A/AAAA/ANY/CNAME/TXT/MX,
plain, with RD/CD flags, mixed case, EDNS (payload 512/1232/4096, DO), ECS
of each region (and a /0, a subnet with a finer CIDR inside, an IPv6 one),
replies that need the TC bit, NODATA, NXDOMAIN, REFUSED (out of zone, AXFR,
class CH), malformed ones (FORMERR), other opcodes (NOTIMP), EDNS version 1
(BADVERS), responses and runts (no reply) — each twice, from clients in each
region and one in none, to a socket served by `gtm.dns.fast.Compiled` and to
one served by `PythonUdp`, each over its own fresh generation drawing from
its own copy of one replayable source. Both must send each client the same
replies in the same order, make the same number of draws, count the same
tally and drop the same query when a draw raises. The estate with four
records per answer runs the same test (the drawer path), and both run on an
IPv4 and a dual-stack socket (v4-mapped and IPv6 source addresses), and once
with query caches so small that they start over every few queries.

TCP is answered by Python on both paths and is not part of this comparison.
"""

from __future__ import annotations

import dataclasses
import os
import random
import select
import socket
import struct
from collections.abc import Callable

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rdataclass
import dns.rdatatype
import pytest
from dns_estate import planned

from gtm.config import Inventory
from gtm.dns import Answers, DnsServer
from gtm.dns import fast as fastpath
from gtm.dns.fast import Compiled, PythonUdp, UdpPath
from gtm.dns.metrics import Snapshot
from gtm.dns.wire import CACHE_BYTES, Replies, replies

pytestmark = pytest.mark.skipif(
    os.environ.get(fastpath.ENV, "1").strip().lower() in ("0", "false", "no", "off"),
    reason=f"{fastpath.ENV} switches the compiled path off for this run",
)

NAMES = [
    "foo.example.com",
    "FoO.ExAmPlE.CoM",
    "pay.example.com",
    "local.example.com",
    "alias.example.com",
    "www.deep.example.com",
    "deep.example.com",  # an empty non-terminal: NODATA
    "big.example.org",  # 40 AAAA: TC over plain UDP
    "example.com",
    "ns1.example.com",
    "gen.example.com",  # the swap estate's service
    "nope.example.com",  # NXDOMAIN
    "nope.example.net",  # REFUSED: in no zone
]
TYPES = ["A", "AAAA", "ANY", "CNAME", "TXT", "MX"]
ECS = [
    ("127.0.1.0", 24),
    ("127.0.2.0", 24),
    ("127.0.3.0", 24),
    ("10.2.0.0", 16),  # dc2, with dc3's 10.2.3.0/24 inside: scope 24
    ("10.2.3.0", 24),
    ("0.0.0.0", 0),
    ("192.0.2.0", 24),  # in no region: the default row
    ("fd00:3::", 48),
]


def _query(name: str, rdtype: str, **kw: object) -> bytes:
    return dns.message.make_query(name, rdtype, **kw).to_wire()  # type: ignore[arg-type]


def _edited(wire: bytes, flags: int | None = None, opcode: int | None = None) -> bytes:
    b = bytearray(wire)
    if flags is not None:
        b[2], b[3] = flags >> 8, flags & 0xFF
    if opcode is not None:
        b[2] = (b[2] & 0x87) | (opcode << 3)
    return bytes(b)


def datagrams() -> list[bytes]:
    out: list[bytes] = []
    for name in NAMES:
        for t in TYPES:
            plain = _query(name, t)
            out += [plain, _edited(plain, flags=0x0000), _edited(plain, flags=0x0110)]
            out.append(_query(name, t, use_edns=0, payload=1232))
            out.append(_query(name, t, use_edns=0, payload=512, want_dnssec=True))
            out.append(_query(name, t, use_edns=0, payload=4096))
            for address, prefix in ECS:
                option = dns.edns.ECSOption(address, prefix)
                out.append(_query(name, t, use_edns=0, payload=1232, options=[option]))
    # the UDP limit around the size of big's AAAA reply (1,164 octets): the TC bit's edge
    for payload in range(1160, 1170):
        out.append(_query("big.example.org", "AAAA", use_edns=0, payload=payload))
    out += _hostile()
    return out


def _hostile() -> list[bytes]:
    foo = _query("foo.example.com", "A")
    two_ecs = [dns.edns.ECSOption("127.0.1.0", 24), dns.edns.ECSOption("127.0.2.0", 24)]
    scoped = dns.edns.GenericOption(dns.edns.OptionType.ECS, b"\x00\x01\x18\x10\x7f\x00\x02")
    rng = random.Random(1)
    out = [
        b"\x12",  # a runt: no reply
        foo[:11],  # shorter than a header: no reply
        foo[:12],  # a header that promises a question it lacks: FORMERR
        foo[:20],  # cut inside the name: FORMERR
        _edited(foo, flags=0x8100),  # a response: never answered
        _edited(foo, opcode=dns.opcode.NOTIFY),  # NOTIMP
        _edited(foo, opcode=dns.opcode.UPDATE),  # NOTIMP
        foo[:4] + b"\x00\x02" + foo[6:] + foo[12:],  # two questions: FORMERR
        _query("foo.example.com", "A", use_edns=1),  # BADVERS
        _query("foo.example.com", "A", use_edns=0, options=two_ecs),  # FORMERR
        _query("foo.example.com", "A", use_edns=0, options=[scoped]),  # scope in a query: FORMERR
        _query("example.com", "AXFR"),  # REFUSED
        _query("foo.example.com", "A", rdclass=dns.rdataclass.CH),  # REFUSED
        _query("foo.example.com", "OPT"),  # a meta type: FORMERR
        foo[:12] + b"\xc0\x0c\x00\x01\x00\x01",  # a name pointing at itself: FORMERR
    ]
    out += [bytes(rng.randrange(256) for _ in range(rng.randrange(12, 80))) for _ in range(20)]
    return out


class Draws:
    """A replayable source of draws: boundary values among seeded ones; raises at `fail_at`."""

    EDGES = (0.0, 0.98, 0.9799999999, 0.99, 0.9999999999, 0.5)

    def __init__(self, seed: int, fail_at: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.fail_at = fail_at

    def __call__(self) -> float:
        n = self.n
        self.n += 1
        if n == self.fail_at:
            raise ValueError("a draw that fails: that query is dropped and counted")
        return self.EDGES[n // 2 % len(self.EDGES)] if n % 2 else self.rng.random()


def _clients(family: int) -> list[socket.socket]:
    """Clients in dc1, dc2, dc3, in no region (the default row) and, dual-stack, over IPv6."""
    sources = ["127.0.1.9", "127.0.2.9", "127.0.3.9", "127.0.0.1"]
    out = []
    for source in sources:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((source, 0))
        out.append(s)
    if family == socket.AF_INET6:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        out.append(s)
    for s in out:
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return out


def _server(family: int) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("::" if family == socket.AF_INET6 else "127.0.0.1", 0))
    s.setblocking(False)
    return s


@dataclasses.dataclass
class Run:
    received: list[list[bytes]]  # per client, in arrival order
    draws: int
    errors: int
    snapshot: Snapshot
    respond_calls: int


def _run(
    path_of: Callable[[socket.socket, Replies], UdpPath],
    inventory: Inventory,
    family: int,
    packets: list[bytes],
    fail_at: int,
    cache_bytes: int,
) -> Run:
    answers = Answers.build(inventory, planned(inventory))
    draws = Draws(seed=20261207, fail_at=fail_at)
    r = replies(answers, cache_bytes, rand=draws)
    calls = 0
    respond = r.respond

    def counted(data: bytes, ip: str, udp: bool) -> bytes | None:
        nonlocal calls
        calls += 1
        return respond(data, ip, udp)

    r = dataclasses.replace(r, respond=counted)
    server = _server(family)
    clients = _clients(family)
    port = server.getsockname()[1]
    path = path_of(server, r)
    received: list[list[bytes]] = [[] for _ in clients]
    errors = 0
    try:
        sent = 0
        for repeat in range(2):
            for i, packet in enumerate(packets):
                for c, client in enumerate(clients):
                    if len(packet) >= 2:  # a fresh ID per datagram
                        ident = (repeat * 7919 + i * 13 + c) & 0xFFFF
                        packet = struct.pack("!H", ident) + packet[2:]
                    to = ("::1" if client.family == socket.AF_INET6 else "127.0.0.1", port)
                    client.sendto(packet, to)
                    sent += 1
                    if sent % 40 == 0:
                        errors += _serve_all(path)
                        _collect(clients, received)
        errors += _serve_all(path)
        _collect(clients, received, wait=0.2)
    finally:
        server.close()
        for client in clients:
            client.close()
    return Run(received, draws.n, errors, answers.tally.snapshot(), calls)


def _serve_all(path: UdpPath) -> int:
    errors = 0
    while True:
        read, e = path.serve()
        errors += e
        if not read:
            return errors


def _collect(clients: list[socket.socket], received: list[list[bytes]], wait: float = 0) -> None:
    while True:
        ready, _, _ = select.select(clients, [], [], wait)
        if not ready:
            return
        for s in ready:
            while True:
                try:
                    received[clients.index(s)].append(s.recv(65535))
                except BlockingIOError:
                    break


@pytest.mark.skipif(not fastpath.built(), reason="gtm.dns._fast is not built here")
@pytest.mark.parametrize(
    ("which", "family", "cache_bytes"),
    [
        ("estate", socket.AF_INET, CACHE_BYTES),
        ("estate", socket.AF_INET6, CACHE_BYTES),
        ("four-per-answer", socket.AF_INET, CACHE_BYTES),
        ("four-per-answer", socket.AF_INET6, CACHE_BYTES),
        ("estate", socket.AF_INET, 4096),  # the query caches start over every ~15 entries
    ],
    ids=["ipv4", "dual-stack", "four-per-answer-ipv4", "four-per-answer-dual-stack", "tiny-cache"],
)
def test_compiled_and_python_paths_answer_the_same_bytes(
    which: str, family: int, cache_bytes: int, inventory: Inventory, swap_inventory: Inventory
) -> None:
    inv = inventory if which == "estate" else swap_inventory
    packets = datagrams()
    fail_at = 300  # one draw raises: the query it was for is dropped by both paths
    compiled = _run(Compiled, inv, family, packets, fail_at, cache_bytes)
    python = _run(PythonUdp, inv, family, packets, fail_at, cache_bytes)

    sent_per_client = 2 * len(packets)
    assert [len(r) for r in python.received] == [len(r) for r in compiled.received]
    for c, (mine, theirs) in enumerate(zip(compiled.received, python.received, strict=True)):
        for k, (a, b) in enumerate(zip(mine, theirs, strict=True)):
            assert a == b, f"client {c}, reply {k}: compiled {a.hex()} != python {b.hex()}"
        assert 0 < len(mine) < sent_per_client  # runts, responses: no reply
    assert compiled.draws == python.draws > fail_at
    assert compiled.errors == python.errors == 1
    assert compiled.snapshot == python.snapshot
    # Python's loop calls respond for each datagram; the compiled path answers the queries
    # its `seen` cache knows (here, more than one per packet) without it
    assert python.respond_calls == sent_per_client * len(compiled.received)
    assert python.respond_calls - compiled.respond_calls > len(packets)
    # the draws decide: the weighted service got more than one answer
    replies_for = {r for got in compiled.received for r in got if b"\x03foo" in r[12:20].lower()}
    assert len(replies_for) > 3


def test_the_compiled_path_is_built_here() -> None:
    """`pip install -e .` (scripts/setup) compiles gtm.dns._fast on these machines."""
    assert fastpath.built(), "gtm.dns._fast did not build: gcc and the Python headers?"


def test_the_switch_picks_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(fastpath.ENV, raising=False)
    assert fastpath.wanted() == fastpath.built()
    assert not fastpath.wanted(False)
    for off in ("0", "false", "OFF", "no"):
        monkeypatch.setenv(fastpath.ENV, off)
        assert not fastpath.wanted()
        assert fastpath.wanted(True) == fastpath.built()
    monkeypatch.setenv(fastpath.ENV, "1")
    assert fastpath.wanted() == fastpath.built()


@pytest.mark.parametrize("fast", [True, False])
async def test_a_server_serves_on_the_path_chosen(inventory: Inventory, fast: bool) -> None:
    answers = Answers.build(inventory, planned(inventory))
    server = DnsServer(inventory.config.dns, answers, ("127.0.0.1", 0), fast=fast)
    assert server.udp_path == ""
    async with server:
        want = "compiled" if fast and fastpath.built() else "python"
        assert server.udp_path == want
        server.swap(Answers.build(inventory, planned(inventory)))
        assert server.udp_path == want
