"""BGP-style route-flap damping for a VIP, as pure arithmetic on an explicit `now`.

Each flap (an up->down change) adds a penalty; the penalty halves every
half-life. Above the suppress threshold the VIP is held down; it is released
when the penalty has decayed below the reuse threshold. The penalty is capped
so that suppression never outlasts `max_suppress` after the last flap.
"""

from __future__ import annotations

import math

from probes.health import HealthSettings


class FlapDamper:
    """The damping state of one VIP: penalty as of `updated`, and whether suppressed."""

    __slots__ = ("penalty", "suppressed", "updated")

    def __init__(self) -> None:
        self.penalty = 0.0
        self.updated = 0.0
        self.suppressed = False

    def current(self, settings: HealthSettings, now: float) -> float:
        """The penalty decayed to `now`."""
        if self.penalty == 0.0:
            return 0.0
        elapsed = max(0.0, now - self.updated)
        return self.penalty * math.pow(2.0, -elapsed / settings.half_life)

    def flap(self, settings: HealthSettings, now: float) -> None:
        """Records one flap at `now`; suppresses when the penalty crosses the threshold."""
        if settings.flap_penalty == 0.0:
            return
        penalty = self.current(settings, now) + settings.flap_penalty
        self.penalty = min(penalty, settings.max_penalty)
        self.updated = max(now, self.updated)
        if self.penalty >= settings.suppress_threshold:
            self.suppressed = True

    def check(self, settings: HealthSettings, now: float) -> bool:
        """Whether the VIP is suppressed at `now`, releasing it once below reuse."""
        if self.suppressed and self.current(settings, now) < settings.reuse_threshold:
            self.suppressed = False
        return self.suppressed

    def release_at(self, settings: HealthSettings) -> float | None:
        """When a suppressed VIP is released if it does not flap again; None if not suppressed."""
        if not self.suppressed:
            return None
        return self.updated + settings.half_life * math.log2(
            self.penalty / settings.reuse_threshold
        )
