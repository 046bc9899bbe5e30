"""What one probe saw: its result from the prober, and the observation the scheduler makes of it."""

from __future__ import annotations

from dataclasses import dataclass

OK = "ok"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The prober's verdict on one probe, before timing and identity are added.

    `reason` is short and starts with a word from a fixed vocabulary, which is the
    metric label of failures: `timeout`, `refused`, `reset`, `closed`,
    `unreachable`, `http 503`, `body mismatch`, `tls: certificate expired`,
    `dns NXDOMAIN`, `error: ...`. Successes read e.g. `http 200`, `connected`.
    """

    ok: bool
    reason: str
    days_to_expiry: float | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """One probe of one target from one vantage.

    `mono` is the vantage's monotonic clock at the start of the probe (comparable
    only with that vantage's own observations); `wall` is the epoch time of the
    start, which is what other vantages and the health tracker compare. `latency`
    is seconds from start to result; `lag` is how late the probe started against
    its schedule.
    """

    target_id: str
    vantage: str
    ok: bool
    latency: float
    mono: float
    wall: float
    reason: str
    lag: float = 0.0
    days_to_expiry: float | None = None

    @property
    def outcome(self) -> str:
        """`ok`, or the first word of the reason: a bounded label for metrics."""
        return outcome(self.ok, self.reason)


def outcome(ok: bool, reason: str) -> str:
    """`ok` for a success, else the first word of `reason` without a trailing colon."""
    if ok:
        return OK
    head = reason.split(" ", 1)[0].rstrip(":")
    return head or "error"
