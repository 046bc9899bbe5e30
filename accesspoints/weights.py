"""The weights of an upstream's WorkloadEntries, as clients in one region see them.

The rendering cluster's region gets the local share (98 by default), every other
region the remote share (1 each), each region's share split evenly among its
VIPs. Weights are whole numbers, never 0 (Istio reads a 0 weight as 1), and
exact: the whole row is scaled by the least common multiple of the VIP counts,
then divided by the greatest common divisor of the result, so 98/1/1 with one
VIP per region stays 98/1/1 and two local VIPs give 98/98/2/2 (49:49:1:1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def split_weights(
    counts: Mapping[str, int], local_region: str, local: int, remote: int
) -> dict[str, int]:
    """Region -> the weight of each of its VIPs (regions with no VIPs are left out)."""
    if local < 1 or remote < 1:
        raise ValueError(f"weights must be >= 1 (local {local}, remote {remote})")
    present = {r: n for r, n in counts.items() if n > 0}
    if not present:
        return {}
    scale = math.lcm(*present.values())
    raw = {r: (local if r == local_region else remote) * (scale // n) for r, n in present.items()}
    divisor = math.gcd(*raw.values())
    return {r: w // divisor for r, w in raw.items()}
