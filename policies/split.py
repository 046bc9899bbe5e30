"""Integer arithmetic of a row: share an amount among cells, within caps.

Every weight in a table is an integer and every row sums exactly to its
total, so shares are cut with the largest-remainder method; ties go to the
earlier cell, which keeps the result deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence


def distribute(amount: int, weights: Sequence[int], caps: Sequence[int]) -> list[int]:
    """Share `amount` among cells in proportion to `weights`, no cell above its cap.

    Cells whose weights are all zero share equally. What the caps cannot
    hold is left unassigned: callers check `sum(result) == amount` when they
    need it all placed.
    """
    n = len(weights)
    out = [0] * n
    remaining = amount
    open_cells = [i for i in range(n) if caps[i] > 0]
    while remaining > 0 and open_cells:
        w = [weights[i] for i in open_cells]
        if sum(w) <= 0:
            w = [1] * len(open_cells)
        tw = sum(w)
        # Water-filling: any cell whose ideal share reaches its cap is filled
        # and leaves the pool; the rest is shared again among the others.
        full = [
            i
            for i, wi in zip(open_cells, w, strict=True)
            if remaining * wi >= (caps[i] - out[i]) * tw
        ]
        if full:
            for i in full:
                take = min(caps[i] - out[i], remaining)
                out[i] += take
                remaining -= take
            open_cells = [i for i in open_cells if i not in full and caps[i] > out[i]]
            continue
        floors = []
        for i, wi in zip(open_cells, w, strict=True):
            q, r = divmod(remaining * wi, tw)
            floors.append((i, q, r))
        given = 0
        for i, q, _ in floors:
            out[i] += q
            given += q
        left = remaining - given
        for i, _, _ in sorted(floors, key=lambda f: -f[2])[:left]:
            out[i] += 1
        remaining = 0
    return out
