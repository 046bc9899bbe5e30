"""Integer weights of one row's answers: the region split exact, the VIPs by their shares.

PowerDNS's `pickwrandom` takes integer weights. A row gives each target
region an integer weight and each VIP of the region an integer share; a
VIP's part of the row is its region's weight times its share over the sum
of the region's live shares, split evenly among the VIP's answers. Those
parts are fractions: scaled by the least common multiple of their
denominators they become integers in exactly the same ratios, then divided
by their greatest common divisor to stay small. A region's answers thus add
up to exactly its weight's part of the row, whatever its VIPs' shares.

Cells of weight 0 and VIPs of share 0 are left out. PowerDNS sums the
weights in a C int; in the rare case the exact integers would overflow it,
the parts are rounded onto a smaller total (largest remainder, every
answer keeps at least 1) and the pick says it is not exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from policies import Row

PDNS_MAX_TOTAL = 2**31 - 1  # pdns adds the weights up in an int
APPROXIMATE_TOTAL = 1_000_000  # the total a pick is rounded onto when exact would overflow


@dataclass(frozen=True, slots=True)
class Pick:
    """The answers of one row for one record type, with their weights, in row order."""

    choices: tuple[tuple[int, str], ...]  # (weight, answer)
    exact: bool = True

    def __bool__(self) -> bool:
        return bool(self.choices)

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return iter(self.choices)

    @property
    def total(self) -> int:
        return sum(w for w, _ in self.choices)

    def shares(self) -> dict[str, Fraction]:
        """Each answer's share of the row (they add up to 1)."""
        total = self.total
        return {a: Fraction(w, total) for w, a in self.choices}


EMPTY = Pick(())


def row_parts(row: Row, answers: Mapping[str, Sequence[str]]) -> dict[str, Fraction]:
    """Each answer's exact part of the row's total weight, in row order.

    `answers[vip_id]` are the records a VIP is answered with for one record
    type (its IPv4 addresses, its IPv6 addresses, or its host name); a VIP
    without any is not part of this record type's pick.
    """
    parts: dict[str, Fraction] = {}
    for cell in row.cells.values():
        if cell.weight <= 0:
            continue
        live = {v: s for v, s in cell.vips.items() if s > 0 and answers.get(v)}
        shares = sum(live.values())
        if not shares:
            continue
        for vip, share in live.items():
            targets = answers[vip]
            part = Fraction(cell.weight * share, shares * len(targets))
            for target in targets:
                parts[target] = parts.get(target, Fraction(0)) + part
    return parts


def row_pick(
    row: Row, answers: Mapping[str, Sequence[str]], *, max_total: int = PDNS_MAX_TOTAL
) -> Pick:
    """The integer weights of a row's answers for one record type (see the module doc)."""
    parts = row_parts(row, answers)
    if not parts:
        return EMPTY
    scale = math.lcm(*(p.denominator for p in parts.values()))
    weights = {a: int(p * scale) for a, p in parts.items()}
    divisor = math.gcd(*weights.values())
    weights = {a: w // divisor for a, w in weights.items()}
    if sum(weights.values()) <= max_total:
        return Pick(tuple((w, a) for a, w in weights.items()))
    return Pick(tuple(_rounded(parts, min(APPROXIMATE_TOTAL, max_total))), exact=False)


def _rounded(parts: Mapping[str, Fraction], total: int) -> list[tuple[int, str]]:
    """Largest-remainder rounding of `parts` onto `total`, each answer at least 1."""
    whole = sum(parts.values())
    ideal = {a: p / whole * total for a, p in parts.items()}
    weights = {a: max(1, math.floor(x)) for a, x in ideal.items()}
    left = total - sum(weights.values())
    by_remainder = sorted(parts, key=lambda a: -(ideal[a] - math.floor(ideal[a])))
    for a in by_remainder[: max(0, left)]:
        weights[a] += 1
    return [(weights[a], a) for a in parts]
