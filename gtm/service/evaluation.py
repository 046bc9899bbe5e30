"""Evaluations on the member's event loop, a slice of services at a time.

`policies.evaluating` yields between slices; `evaluated` drives it and lets
the loop run other work (the API, lease renewals, peer pulls, probes) at
every yield, so no evaluation holds the loop for long however large the
estate. The controller's ticks, the standby's view and the operator
actions' plans all evaluate through it.
"""

from __future__ import annotations

from collections.abc import Sequence

from policies import Estate, Evaluation, Health, Override, WeightTable, evaluating, stepped


async def evaluated(
    estate: Estate,
    health: Health,
    overrides: Sequence[Override],
    previous: WeightTable | None,
    now: float,
) -> Evaluation:
    """`policies.evaluate`, with this loop running other work between its steps."""
    return await stepped(evaluating(estate, health, overrides, previous, now))
