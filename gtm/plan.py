"""What would happen: the table for given health and overrides, and the change from today's.

`gtm plan` prints it and `gtm dns serve` serves it, so an operator checks the
answers before the service runs. The baseline is the table with every
region healthy and no overrides; the plan is one evaluation from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gtm.config import Inventory
from policies import Evaluation, Health, Override, evaluate


@dataclass(frozen=True)
class WhatIf:
    baseline: Evaluation
    planned: Evaluation


def what_if(
    inventory: Inventory, health: Health, overrides: Sequence[Override], now: float
) -> WhatIf:
    baseline = evaluate(inventory.estate, Health(), [], None, now)
    planned = evaluate(inventory.estate, health, overrides, baseline.table, now)
    return WhatIf(baseline, planned)
