"""Picks: how one table row answers one question, drawn per query.

A `Variant` is one possible reply body: the header counts (without and with
an OPT record), the records after the question, and the tally slot counting
it. A `Pick` chooses a variant per query — a region by its cell weight, then
a VIP by its share, folded into one cumulative weight list — and is a tuple
rather than a function so the hot path (wire.py) picks inline, without a
call. `records_per_answer` > 1 draws distinct VIPs at query time instead.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from random import random

Rand = Callable[[], float]  # a draw in [0, 1)
# (counts without OPT, counts with OPT, records after the question, tally slot or -1)
Variant = tuple[bytes, bytes, bytes, int]
# How one row answers one question: (cumulative weights, their total, variants, draw).
# Weighted: variants[bisect(cum, rand() * total)]; a single variant: cum None,
# variants[0]; several records per answer: cum None, draw(rand) builds the variant.
# A tuple rather than a function so the hot path picks inline, without a call.
Pick = tuple[list[float] | None, float, Sequence[Variant], Callable[[Rand], Variant] | None]


def choose(p: Pick, rand: Rand = random) -> Variant:
    """The variant a pick yields (the hot paths, wire.py and _fast.c, inline this)."""
    cum, total, variants, drawer = p
    if cum is not None:
        return variants[bisect_right(cum, rand() * total)]
    if drawer is not None:
        return drawer(rand)
    return variants[0]


def single(v: Variant) -> Pick:
    return (None, 0.0, (v,), None)


def uniform(picks: Sequence[Pick]) -> bool:
    """Whether every row answers alike (the builder shares one pick among equal rows)."""
    first = picks[0]
    return all(p is first for p in picks)


def counts(an: int, ns: int, ar: int) -> tuple[bytes, bytes]:
    """QDCOUNT..ARCOUNT, without and with an OPT record in the additional section."""
    return struct.pack("!HHHH", 1, an, ns, ar), struct.pack("!HHHH", 1, an, ns, ar + 1)


@dataclass(frozen=True)
class Unit:
    """One VIP's records for one query type, and its chance of being drawn."""

    weight: float
    records: tuple[bytes, ...]
    cname: bool
    region: str
    slot: int  # tally slot of answers that start with this VIP


def weighted(variants: list[Variant], weights: list[float]) -> Pick:
    if len(variants) == 1:
        return single(variants[0])
    cum = list(accumulate(weights))
    return (cum, cum[-1], tuple(variants), None)


def draw(units: list[Unit], k: int) -> Pick:
    """Up to k distinct VIPs drawn without replacement by weight; a CNAME stands alone."""

    def pick(rand: Rand) -> Variant:
        pool = list(units)
        chosen: list[Unit] = []
        while pool and len(chosen) < k:
            cum = list(accumulate(u.weight for u in pool))
            u = pool.pop(bisect_right(cum, rand() * cum[-1]))
            if u.cname:
                if not chosen:
                    chosen.append(u)
                    break
                continue
            chosen.append(u)
            pool = [p for p in pool if not p.cname]
        records = [r for u in chosen for r in u.records]
        plain, opt = counts(len(records), 0, 0)
        return (plain, opt, b"".join(records), chosen[0].slot)

    return (None, 0.0, (), pick)
