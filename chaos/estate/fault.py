"""What a simulated VIP does to the requests it gets: one `Fault` value per VIP.

| mode        | effect                                                           |
|-------------|------------------------------------------------------------------|
| `ok`        | answers `200 ok`                                                 |
| `refuse`    | stops listening: new connections are refused, open ones reset    |
| `blackhole` | accepts connections and reads requests, never answers            |
| `slow`      | answers `200 ok` after `latency` seconds                         |
| `error`     | answers `status` (default 503)                                   |
| `flap`      | alternates `error` and `ok` every `period` seconds, error first  |

A whole region going down is `refuse` on each of its VIPs; the control API
takes `region_down` as a name for that (`REGION_DOWN`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

Mode = Literal["ok", "refuse", "blackhole", "slow", "error", "flap"]
MODES: tuple[str, ...] = get_args(Mode)
REGION_DOWN = "region_down"  # control API: `refuse` on every VIP of a region


class FaultError(ValueError):
    """A fault that cannot be: unknown mode, bad number, unknown field."""


@dataclass(frozen=True)
class Fault:
    """How one VIP misbehaves. `Fault()` is a healthy VIP."""

    mode: Mode = "ok"
    latency: float = 0.0  # slow: seconds before the answer
    status: int = 503  # error, flap: the status answered
    period: float = 1.0  # flap: seconds per phase

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in MODES:
            problems.append(f"unknown mode {self.mode!r} (modes: {', '.join(MODES)})")
        if not _finite(self.latency) or self.latency < 0:
            problems.append(f"latency must be a number of seconds >= 0, not {self.latency!r}")
        if self.mode == "slow" and self.latency <= 0:
            problems.append("mode slow needs a latency > 0")
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            problems.append(f"status must be an integer, not {self.status!r}")
        elif not 100 <= self.status <= 599:
            problems.append(f"status must be an HTTP status (100..599), not {self.status}")
        if not _finite(self.period) or self.period <= 0:
            problems.append(f"period must be a number of seconds > 0, not {self.period!r}")
        if problems:
            raise FaultError("; ".join(problems))

    def failing_at(self, elapsed: float) -> bool:
        """For `flap`: is the VIP in its error phase `elapsed` seconds after the fault was set?"""
        return int(elapsed // self.period) % 2 == 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode}
        if self.mode == "slow":
            out["latency"] = self.latency
        if self.mode in ("error", "flap"):
            out["status"] = self.status
        if self.mode == "flap":
            out["period"] = self.period
        return out

    @classmethod
    def from_dict(cls, data: Any, *, region: bool = False) -> Fault:
        """Parse a control request body; `region=True` also takes mode `region_down`."""
        if not isinstance(data, dict):
            raise FaultError('a fault is a JSON object: {"mode": ..., "latency"?, "status"?, ...}')
        unknown = sorted(set(data) - {"mode", "latency", "status", "period"})
        if unknown:
            raise FaultError(f"unknown fault fields: {', '.join(unknown)}")
        mode = data.get("mode")
        if not isinstance(mode, str):
            raise FaultError(f"mode is required (one of {', '.join(MODES)})")
        if region and mode == REGION_DOWN:
            mode = "refuse"
        fields: dict[str, Any] = {"mode": cast(Mode, mode)}
        for name in ("latency", "period"):
            if name in data:
                value = data[name]
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise FaultError(f"{name} must be a number of seconds, not {value!r}")
                fields[name] = float(value)
        if "status" in data:
            fields["status"] = data["status"]
        return cls(**fields)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


OK = Fault()
