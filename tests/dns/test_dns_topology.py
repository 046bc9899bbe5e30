"""The client's region picks the row: from ECS when present, else the source address."""

from __future__ import annotations

import dns.asyncquery
import dns.edns
import dns.message
import dns.rcode
import pytest
from dns_estate import Running, planned

from gtm.config import Inventory
from gtm.dns import Answers, DnsServer, Match, Topology


def ecs_query(name: str, subnet: str, prefix: int, rdtype: str = "A") -> dns.message.Message:
    return dns.message.make_query(
        name, rdtype, use_edns=0, options=[dns.edns.ECSOption(subnet, prefix)]
    )


def answer(r: dns.message.Message) -> list[str]:
    return sorted(x.to_text() for rrset in r.answer for x in rrset)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("127.0.1.7", "127.0.1.10"),
        ("127.0.2.7", "127.0.2.10"),
        ("127.0.3.7", "127.0.3.10"),
        ("127.0.0.1", "127.0.1.10"),  # in no region: the default row (dc1)
    ],
)
def test_source_address_picks_the_row(served: Running, source: str, expected: str) -> None:
    for _ in range(3):
        r = served.query(dns.message.make_query("local.example.com", "A"), source=source)
        assert answer(r) == [expected]


@pytest.mark.parametrize(
    "subnet, prefix, expected, scope",
    [
        ("127.0.3.0", 24, "127.0.3.10", 24),
        ("127.0.2.128", 25, "127.0.2.10", 24),
        ("10.2.0.0", 16, "127.0.2.10", 24),  # 10.2.3.0/24 (dc3) lies inside: scope says so
        ("10.2.3.0", 24, "127.0.3.10", 24),  # the longer prefix wins over dc2's /16
        ("10.2.9.0", 24, "127.0.2.10", 16),
        ("192.0.2.0", 24, "127.0.1.10", 24),  # in no region: the default row
        ("0.0.0.0", 0, "127.0.1.10", 0),  # the client opts out: default, scope 0
        ("fd00:3::", 56, "127.0.3.10", 48),
        ("fd00:2:0:1::", 64, "127.0.2.10", 48),
    ],
)
def test_ecs_picks_the_row_and_is_echoed_with_its_scope(
    served: Running, subnet: str, prefix: int, expected: str, scope: int
) -> None:
    # The resolver sits in dc1; the client subnet decides.
    for _ in range(2):  # the second query takes the fast path (cached OPT)
        r = served.query(ecs_query("local.example.com", subnet, prefix), source="127.0.1.1")
        assert answer(r) == [expected]
        [ecs] = r.options
        assert isinstance(ecs, dns.edns.ECSOption)
        assert (ecs.address, ecs.srclen, ecs.scopelen) == (subnet, prefix, scope)


@pytest.mark.parametrize(
    "name, rdtype",
    [
        ("nope.example.com", "A"),  # NXDOMAIN
        ("foo.example.com", "TXT"),  # NODATA
        ("example.com", "SOA"),
        ("big.example.org", "AAAA"),  # VIPs in one region only: every row answers alike
    ],
)
def test_answers_alike_for_every_client_have_scope_zero(
    served: Running, name: str, rdtype: str
) -> None:
    for _ in range(2):
        query = ecs_query(name, "127.0.2.0", 24, rdtype)
        r = served.query(query, source="127.0.1.1")
        [ecs] = r.options
        assert isinstance(ecs, dns.edns.ECSOption)
        assert (ecs.address, ecs.srclen, ecs.scopelen) == ("127.0.2.0", 24, 0)


@pytest.mark.parametrize(
    "option",
    [
        b"\x00\x01\x21\x00\x7f\x00\x02\x00\x00",  # IPv4 source prefix 33
        b"\x00\x01\x18\x00\x7f\x00\x02\x01",  # non-zero bits beyond the /24
        b"\x00\x03\x18\x00\x7f\x00\x02",  # unknown family
        b"\x00\x01\x18",  # cut short
    ],
)
def test_bad_ecs_is_formerr(served: Running, option: bytes) -> None:
    query = dns.message.make_query(
        "local.example.com",
        "A",
        use_edns=0,
        options=[dns.edns.GenericOption(dns.edns.OptionType.ECS, option)],
    )
    reply = served.raw(query.to_wire())
    assert reply is not None
    assert reply[:2] == query.to_wire()[:2]
    assert reply[3] & 0x0F == dns.rcode.FORMERR


def test_longest_prefix_and_cache(inventory: Inventory) -> None:
    topo = Topology.from_config(inventory.config)
    assert topo.regions == ("dc1", "dc2", "dc3")
    assert topo.row_for_address("10.2.3.4") == 2
    assert topo.row_for_address("10.2.4.4") == 1
    assert (
        topo.row_for_address("::ffff:127.0.2.9") == 1
    )  # v4-mapped, as a dual-stack socket reports
    assert topo.row_for_address("fd00:3::1") == 2
    assert topo.row_for_address("8.8.8.8") == 0
    assert topo.cache["10.2.3.4"] == 2
    assert topo.row_for_subnet(4, int.from_bytes(bytes([10, 2, 3, 0]), "big"), 24) == Match(2, 24)


def test_default_region_is_the_first_when_not_configured() -> None:
    topo = Topology.of(["a", "b"], {"b": ["10.0.0.0/8"]}, "a")
    assert topo.row_for_address("10.1.1.1") == 1
    assert topo.row_for_address("11.1.1.1") == 0


async def test_dual_stack_listener_maps_v4_clients(inventory: Inventory) -> None:
    """On "::" both UDP and TCP take IPv4 clients too, seen as ::ffff:a.b.c.d."""
    answers = Answers.build(inventory, planned(inventory))
    async with DnsServer(inventory.config.dns, answers, ("::", 0)) as server:
        q = dns.message.make_query("local.example.com", "A")
        for host, source, expected in (
            ("127.0.0.1", "127.0.2.1", "127.0.2.10"),
            ("::1", None, "127.0.1.10"),
        ):
            r = await dns.asyncquery.udp(q, host, port=server.port, source=source, timeout=2)
            t = await dns.asyncquery.tcp(q, host, port=server.port, source=source, timeout=2)
            assert answer(r) == answer(t) == [expected]
