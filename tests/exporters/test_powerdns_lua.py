"""The LUA record body: row by the client's network (longest prefix), answer by weight."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from gtm.exporters import MARKER, Pick, is_managed
from gtm.exporters.lua import CHUNK, Branch, branches, chunks, code, content, render

net = ipaddress.ip_network
P1 = Pick(((98, "127.0.1.1"), (1, "127.0.2.1"), (1, "127.0.3.1")))
P2 = Pick(((1, "127.0.1.1"), (98, "127.0.2.1"), (1, "127.0.3.1")))
P3 = Pick(((1, "127.0.1.1"), (1, "127.0.2.1"), (98, "127.0.3.1")))
ORDER = ("dc1", "dc2", "dc3")
NETWORKS = {
    "dc1": (net("127.0.1.0/24"), net("fd00:1::/48")),
    "dc2": (net("127.0.2.0/24"), net("fd00:2::/48")),
    "dc3": (net("127.0.3.0/24"),),
}


def test_one_test_per_row_and_the_default_row_last() -> None:
    body = code(branches({"dc1": P1, "dc2": P2, "dc3": P3}, NETWORKS, ORDER, P1), P1)
    assert body == (
        f";{MARKER} "
        "if netmask({ '127.0.2.0/24', 'fd00:2::/48' }) then return "
        "pickwrandom({ {1,'127.0.1.1'}, {98,'127.0.2.1'}, {1,'127.0.3.1'} }) end "
        "if netmask({ '127.0.3.0/24' }) then return "
        "pickwrandom({ {1,'127.0.1.1'}, {1,'127.0.2.1'}, {98,'127.0.3.1'} }) end "
        "return pickwrandom({ {98,'127.0.1.1'}, {1,'127.0.2.1'}, {1,'127.0.3.1'} })"
    )


def test_a_single_answer_is_returned_without_a_pick() -> None:
    only = Pick(((1, "127.0.3.1"),))
    assert code((), only) == f";{MARKER} return '127.0.3.1'"


def test_regions_with_the_same_row_share_a_test() -> None:
    rules = branches({"dc1": P1, "dc2": P2, "dc3": P2}, NETWORKS, ORDER, P1)
    assert rules == (Branch((net("127.0.2.0/24"), net("fd00:2::/48"), net("127.0.3.0/24")), P2),)


def test_a_row_without_answers_sends_its_clients_to_the_default_row() -> None:
    rules = branches({"dc1": P1, "dc2": Pick(()), "dc3": P3}, NETWORKS, ORDER, P1)
    assert [b.pick for b in rules] == [P3]


def test_the_first_region_with_answers_stands_in_for_an_empty_default_row() -> None:
    record = render("A", {"dc1": Pick(()), "dc2": P2, "dc3": P3}, NETWORKS, ORDER, "dc1")
    assert record is not None
    assert record.endswith(
        "return pickwrandom({ {1,'127.0.1.1'}, {98,'127.0.2.1'}, {1,'127.0.3.1'} })\""
    )
    assert render("A", {"dc1": Pick(())}, NETWORKS, ORDER, "dc1") is None


def test_a_nested_network_of_the_default_row_stays_when_a_broader_one_would_catch_it() -> None:
    nets = {"dc1": (net("10.1.0.0/16"),), "dc2": (net("10.0.0.0/8"),)}
    rules = branches({"dc1": P1, "dc2": P2}, nets, ("dc1", "dc2"), P1)
    assert rules == (Branch((net("10.1.0.0/16"),), P1), Branch((net("10.0.0.0/8"),), P2))


def test_content_is_quoted_strings_of_at_most_255_bytes_that_join_back() -> None:
    body = code(branches({"dc1": P1, "dc2": P2, "dc3": P3}, NETWORKS, ORDER, P1), P1)
    record = content("A", body)
    assert record.startswith('A ";--[[gtm]] ')
    pieces = chunks(body)
    assert len(pieces) > 1
    assert "".join(pieces) == body
    assert all(len(p.encode()) <= CHUNK for p in pieces)
    assert record == "A " + " ".join(f'"{p}"' for p in pieces)
    assert is_managed(record)
    assert not is_managed("A \"return '192.0.2.1'\"")


@given(st.text(alphabet="ab ", max_size=700), st.integers(5, 60))
def test_chunks_join_back_to_the_text(text: str, size: int) -> None:
    pieces = chunks(text, size)
    assert "".join(pieces) == text
    assert all(len(p) <= size or " " not in p.rstrip(" ") for p in pieces)


# -- the order of the tests is a longest-prefix match ------------------------------------

networks = st.builds(
    lambda addr, bits: ipaddress.ip_network(f"{ipaddress.IPv4Address(addr)}/{bits}", strict=False),
    st.integers(0x0A000000, 0x0A0FFFFF),
    st.integers(8, 24),
)
PICKS = [Pick(((1, f"192.0.2.{i}"),)) for i in range(4)] + [Pick(())]


@given(
    st.dictionaries(
        st.sampled_from(["r0", "r1", "r2", "r3"]),
        st.tuples(st.lists(networks, max_size=4), st.sampled_from(PICKS)),
        min_size=1,
    ),
    st.lists(st.integers(0x0A000000, 0x0A0FFFFF), min_size=1, max_size=30),
)
def test_first_matching_test_is_the_longest_prefix_match(
    regions: dict[str, tuple[list[ipaddress.IPv4Network], Pick]], addresses: list[int]
) -> None:
    order = sorted(regions)
    picks = {r: p for r, (_, p) in regions.items()}
    nets = {r: tuple(n) for r, (n, _) in regions.items()}
    default = picks[order[0]] or next((picks[r] for r in order if picks[r]), None)
    if default is None:
        return
    rules = branches(picks, nets, order, default)
    owner: dict[ipaddress.IPv4Network, str] = {}
    for r in order:
        for n in nets[r]:
            owner.setdefault(n, r)
    probes = [ipaddress.IPv4Address(a) for a in addresses]
    probes += [n.network_address for n in owner]
    for addr in probes:
        matching = [n for n in owner if addr in n]
        if matching:
            best = max(matching, key=lambda n: n.prefixlen)
            expected = picks[owner[best]] or default
        else:
            expected = default
        got = next((b.pick for b in rules if any(addr in n for n in b.networks)), default)
        assert got == expected, (str(addr), rules)


def test_rows_nesting_both_ways_fall_back_to_longest_prefix_first() -> None:
    nets = {
        "dc1": (net("10.1.0.0/16"), net("10.0.0.0/8")),
        "dc2": (net("10.0.0.0/12"),),
        "dc3": (),
    }
    rules = branches({"dc1": P1, "dc2": P2, "dc3": P3}, nets, ORDER, P3)
    assert rules == (
        Branch((net("10.1.0.0/16"),), P1),
        Branch((net("10.0.0.0/12"),), P2),
        Branch((net("10.0.0.0/8"),), P1),
    )
