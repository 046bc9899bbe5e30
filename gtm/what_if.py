"""What if: the table for given health and overrides, and the change from the all-healthy one.

`gtm plan` prints it and `gtm dns serve` serves it, so an operator checks the
answers before the service runs. The baseline is the table with every
region healthy and no overrides; the what-if is one evaluation from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gtm.config import Inventory
from policies import Evaluation, Health, Kind, Override, evaluate


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


def parse_spec(spec: str) -> tuple[Kind, str, frozenset[str] | None]:
    """`exit=dc2`, `exit=dc2:foo,bar`, `drain=dc1:foo`, `rollout=dc3`, `enter=dc2`."""
    kind_s, eq, rest = spec.partition("=")
    try:
        kind = Kind(kind_s.strip().lower())
    except ValueError:
        kinds = ", ".join(k.value for k in Kind)
        raise ValueError(f"{spec!r}: the kind must be one of {kinds}") from None
    region, _, names = rest.partition(":")
    if not eq or not region.strip():
        raise ValueError(f"{spec!r}: expected KIND=REGION[:SERVICE,…]")
    services = frozenset(s.strip() for s in names.split(",") if s.strip()) or None
    if kind is Kind.DRAIN and services is None:
        raise ValueError(f"{spec!r}: a drain names its services (drain=REGION:SERVICE,…)")
    return kind, region.strip(), services


def what_if_overrides(
    specs: Sequence[str], *, who: str, why: str, force: bool, now: float
) -> list[Override]:
    """The overrides as the engine takes them: created just before `now`, in the given order.

    Raises ValueError naming the spec that is not an override.
    """
    out = []
    for i, spec in enumerate(specs):
        kind, region, services = parse_spec(spec)
        try:
            out.append(
                Override(
                    id=f"what-if-{i}",
                    kind=kind,
                    region=region,
                    who=who,
                    why=why,
                    created=now - 1e-6 * (len(specs) - i),
                    services=services,
                    force=force,
                )
            )
        except ValueError as e:
            raise ValueError(f"{spec!r}: {e}") from None
    return out
