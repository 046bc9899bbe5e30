from hypothesis import given
from hypothesis import strategies as st

from policies.split import distribute


def test_proportional_with_largest_remainder() -> None:
    assert distribute(10, [1, 1, 1], [100, 100, 100]) == [4, 3, 3]
    assert distribute(98, [1, 1], [98, 98]) == [49, 49]
    assert distribute(7, [5, 2, 0], [100, 100, 100]) == [5, 2, 0]


def test_caps_fill_and_spill_to_the_others() -> None:
    assert distribute(10, [9, 1], [3, 100]) == [3, 7]


def test_zero_weights_share_equally() -> None:
    assert distribute(4, [0, 0], [10, 10]) == [2, 2]


def test_what_caps_cannot_hold_is_left_out() -> None:
    assert distribute(10, [1, 1], [2, 3]) == [2, 3]


@given(
    amount=st.integers(0, 1000),
    cells=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 500)), min_size=1, max_size=6),
)
def test_never_above_cap_never_more_than_asked(amount: int, cells: list[tuple[int, int]]) -> None:
    weights = [w for w, _ in cells]
    caps = [c for _, c in cells]
    out = distribute(amount, weights, caps)
    assert all(0 <= o <= c for o, c in zip(out, caps, strict=True))
    assert sum(out) == min(amount, sum(caps))
    assert out == distribute(amount, weights, caps)  # deterministic
