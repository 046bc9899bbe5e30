"""Health as the policy engine consumes it.

The service layer converts the probes' health view (quorum over vantages,
damping, impaired vantages already applied) into this value. Anything
missing is `unknown`, and `unknown` never moves traffic: only `down` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TargetHealth:
    state: State
    since: float | None = None  # wall-clock seconds of the last transition
    reason: str = ""


UNKNOWN = TargetHealth(State.UNKNOWN)


@dataclass(frozen=True)
class Health:
    """`regions[(service, region)]` and `vips[vip_id]`."""

    regions: Mapping[tuple[str, str], TargetHealth] = field(default_factory=dict)
    vips: Mapping[str, TargetHealth] = field(default_factory=dict)

    def region(self, service: str, region: str) -> TargetHealth:
        return self.regions.get((service, region), UNKNOWN)

    def vip(self, vip_id: str) -> TargetHealth:
        return self.vips.get(vip_id, UNKNOWN)
