"""Integer weights of a row's answers: the region split exact, VIPs by share."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from gtm.exporters import Pick, row_pick
from gtm.exporters.weights import APPROXIMATE_TOTAL
from policies import Cell, Out, Row


def row(**cells: tuple[int, dict[str, int]]) -> Row:
    return Row("svc", "dc1", 100, {t: Cell(w, None, vips) for t, (w, vips) in cells.items()})


ONE_EACH = {"v1": ("10.0.0.1",), "v2": ("10.0.0.2",), "v3": ("10.0.0.3",), "v4": ("10.0.0.4",)}


def test_the_98_1_1_split_is_kept_as_is() -> None:
    r = row(dc1=(98, {"v1": 1}), dc2=(1, {"v2": 1}), dc3=(1, {"v3": 1}))
    assert row_pick(r, ONE_EACH) == Pick(((98, "10.0.0.1"), (1, "10.0.0.2"), (1, "10.0.0.3")))


def test_vip_shares_split_their_region_exactly_by_integer_scaling() -> None:
    # dc1 has 50 split 2:1 between two VIPs; 30 and 20 go to the other regions.
    r = row(dc1=(50, {"v1": 2, "v2": 1}), dc2=(30, {"v3": 1}), dc3=(20, {"v4": 1}))
    pick = row_pick(r, ONE_EACH)
    # 50*2/3, 50*1/3, 30, 20: times 3, then divided by their common divisor 10.
    assert pick.choices == ((10, "10.0.0.1"), (5, "10.0.0.2"), (9, "10.0.0.3"), (6, "10.0.0.4"))
    assert pick.exact
    shares = pick.shares()
    assert shares["10.0.0.1"] + shares["10.0.0.2"] == Fraction(50, 100)


def test_two_regions_of_two_vips_need_the_lcm_of_their_share_sums() -> None:
    # share sums 3 and 2: 1/3, 2/3, 1/2, 1/2, scaled by their lcm 6.
    r = row(dc1=(1, {"v1": 1, "v2": 2}), dc2=(1, {"v3": 1, "v4": 1}))
    assert row_pick(r, ONE_EACH).choices == (
        (2, "10.0.0.1"),
        (4, "10.0.0.2"),
        (3, "10.0.0.3"),
        (3, "10.0.0.4"),
    )


def test_cells_of_weight_zero_and_vips_of_share_zero_are_left_out() -> None:
    r = Row(
        "svc",
        "dc1",
        100,
        {
            "dc1": Cell(99, None, {"v1": 1, "v2": 0}),
            "dc2": Cell(0, Out.EXIT, {"v3": 0}),
            "dc3": Cell(1, None, {"v4": 1}),
        },
    )
    assert row_pick(r, ONE_EACH).choices == ((99, "10.0.0.1"), (1, "10.0.0.4"))


def test_a_region_whose_vips_are_all_at_share_zero_gets_nothing() -> None:
    r = row(dc1=(98, {"v1": 1}), dc2=(2, {"v2": 0}))
    assert row_pick(r, ONE_EACH).choices == ((1, "10.0.0.1"),)


def test_vips_without_an_answer_of_the_record_type_are_left_out() -> None:
    answers = {"v1": ("10.0.0.1",), "v2": ()}  # v2 has no IPv4 address
    r = row(dc1=(60, {"v1": 1, "v2": 1}), dc2=(40, {"v2": 1}))
    assert row_pick(r, answers).choices == ((1, "10.0.0.1"),)


def test_a_vip_with_several_ips_splits_its_share_evenly_and_equal_ips_add_up() -> None:
    answers = {"v1": ("10.0.0.1", "10.0.0.9"), "v2": ("10.0.0.9",)}
    r = row(dc1=(1, {"v1": 1}), dc2=(1, {"v2": 1}))
    assert row_pick(r, answers).choices == ((1, "10.0.0.1"), (3, "10.0.0.9"))


def test_an_empty_row_gives_an_empty_pick() -> None:
    assert not row_pick(row(dc1=(0, {"v1": 1})), ONE_EACH)


def test_weights_that_would_overflow_pdns_int_are_rounded_and_say_so() -> None:
    r = row(dc1=(97, {"v1": 101, "v2": 1}), dc2=(3, {"v3": 103, "v4": 7}))
    exact = row_pick(r, ONE_EACH)
    small = row_pick(r, ONE_EACH, max_total=10_000)
    assert exact.exact and exact.total > 10_000
    assert not small.exact
    assert small.total <= APPROXIMATE_TOTAL and all(w >= 1 for w, _ in small)
    for answer, share in small.shares().items():
        assert abs(share - exact.shares()[answer]) < Fraction(1, 1000)


cells = st.dictionaries(
    st.sampled_from(["dc1", "dc2", "dc3", "dc4"]),
    st.tuples(
        st.integers(0, 1000),
        st.dictionaries(st.sampled_from(["v1", "v2", "v3", "v4"]), st.integers(0, 50)),
    ),
    min_size=1,
)


@given(cells)
def test_each_region_gets_exactly_its_weight_and_each_vip_its_share(
    spec: dict[str, tuple[int, dict[str, int]]],
) -> None:
    # Give each (region, VIP) its own address so parts can be traced back.
    vip_cells = {t: (w, {f"{t}/{v}": s for v, s in vips.items()}) for t, (w, vips) in spec.items()}
    answers = {vid: (vid,) for _, vips in vip_cells.values() for vid in vips}
    r = row(**vip_cells)
    pick = row_pick(r, answers)
    live = {t: (w, vips) for t, (w, vips) in vip_cells.items() if w > 0 and sum(vips.values()) > 0}
    if not live:
        assert not pick
        return
    assert all(isinstance(w, int) and w > 0 for w, _ in pick)
    shares = pick.shares()
    row_total = sum(w for w, _ in live.values())
    # Exact unless the exact integers would overflow PowerDNS's int (co-prime
    # share sums across four regions can): then rounded onto 1,000,000.
    tolerance = Fraction(0) if pick.exact else Fraction(len(shares), 1_000_000)
    if pick.exact:
        assert math.gcd(*(w for w, _ in pick)) == 1
    for target, (weight, vips) in live.items():
        got = sum(shares.get(vid, Fraction(0)) for vid in vips)
        assert abs(got - Fraction(weight, row_total)) <= tolerance, target
        share_sum = sum(vips.values())
        for vid, s in vips.items():
            want = Fraction(weight * s, row_total * share_sum)
            assert abs(shares.get(vid, Fraction(0)) - want) <= tolerance


def test_share_sums_of_large_primes_fall_back_to_rounding_within_pdns_int() -> None:
    r = row(dc1=(97, {"v1": 999_983, "v2": 1}), dc2=(3, {"v3": 999_979, "v4": 7}))
    pick = row_pick(r, ONE_EACH)
    assert not pick.exact
    assert pick.total <= APPROXIMATE_TOTAL
    assert abs(pick.shares()["10.0.0.1"] - Fraction(97 * 999_983, 100 * 999_984)) < Fraction(
        1, 10_000
    )
