"""Impaired-vantage detection: a prober that sees almost everything fail is broken itself.

For each vantage the latest result per target is kept; when more than
`impaired_fraction` of them fail (over at least `impaired_min_targets`
targets) the vantage is impaired, and it recovers when the failing share
drops to `impaired_clear_fraction`. Every target is probed once per interval,
so the latest results are those of the last interval. Pure state.
"""

from __future__ import annotations

from probes.health import HealthSettings


class VantageRecord:
    """One vantage's latest result per target, and whether it is impaired."""

    __slots__ = ("failing", "impaired", "latest", "name", "since")

    def __init__(self, name: str) -> None:
        self.name = name
        self.latest: dict[str, bool] = {}
        self.failing = 0
        self.impaired = False
        self.since = 0.0

    def record(self, target_id: str, ok: bool) -> None:
        previous = self.latest.get(target_id)
        if previous is not None and not previous:
            self.failing -= 1
        self.latest[target_id] = ok
        if not ok:
            self.failing += 1

    def forget(self, target_id: str) -> None:
        previous = self.latest.pop(target_id, None)
        if previous is False:
            self.failing -= 1

    @property
    def total(self) -> int:
        return len(self.latest)

    def failing_share(self) -> float:
        return self.failing / len(self.latest) if self.latest else 0.0

    def update(self, settings: HealthSettings, now: float) -> bool:
        """Re-decides `impaired`; returns True when it changed."""
        share = self.failing_share()
        if self.impaired:
            impaired = share > settings.impaired_clear_fraction
        else:
            impaired = (
                self.total >= settings.impaired_min_targets and share > settings.impaired_fraction
            )
        if impaired == self.impaired:
            return False
        self.impaired = impaired
        self.since = now
        return True

    def describe(self) -> str:
        return f"{self.failing}/{self.total} targets failing ({self.failing_share():.0%})"
