"""Election settings, checked: retry period < renew deadline < lease duration.

The order is what makes the lease safe. A leader renews every `retry_period`;
it stops acting once its last successful renewal is `renew_deadline` old,
whatever went wrong; the standby may take the lease only when the last
renewal is `duration` old. So a leader that can no longer renew has stopped
acting `duration - renew_deadline` seconds (the margin for clock skew and
scheduling) before anyone else may start. Every call to the backend runs
under `call_timeout`, shorter than the retry period, so a hung API can
neither stall the loop nor keep a stale leader going.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

DEFAULT_TIMEOUT_SHARE = 0.75  # of the retry period, when call_timeout is not given


class LeaseTimings(Protocol):
    """What `from_config` reads: `gtm.config.model.LeaseConfig` has these fields."""

    @property
    def duration(self) -> float: ...

    @property
    def renew_deadline(self) -> float: ...

    @property
    def retry_period(self) -> float: ...


@dataclass(frozen=True)
class ElectionSettings:
    identity: str  # this member, unique in the pair ("dc1-a")
    address: str = ""  # where this member takes writes when it leads (its API URL)
    duration: float = 15.0  # seconds a renewal holds the lease against others
    renew_deadline: float = 10.0  # stop acting this long after the last successful renewal
    retry_period: float = 2.0  # between attempts to acquire or renew
    call_timeout: float | None = None  # per attempt (read + write); default 3/4 of retry_period

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid election settings: " + "; ".join(problems))

    def problems(self) -> list[str]:
        found: list[str] = []
        if not self.identity.strip():
            found.append("identity must not be empty")
        for name in ("duration", "renew_deadline", "retry_period"):
            if not getattr(self, name) > 0:
                found.append(f"{name} must be > 0 seconds, got {getattr(self, name)}")
        if not self.renew_deadline < self.duration:
            found.append(
                f"renew_deadline ({self.renew_deadline}s) must be shorter than duration"
                f" ({self.duration}s): a leader must stop acting before another can take the lease"
            )
        if not self.retry_period < self.renew_deadline:
            found.append(
                f"retry_period ({self.retry_period}s) must be shorter than renew_deadline"
                f" ({self.renew_deadline}s): a leader must get to retry before it gives up"
            )
        if self.call_timeout is not None and not 0 < self.call_timeout < self.retry_period:
            found.append(
                f"call_timeout ({self.call_timeout}s) must be > 0 and shorter than"
                f" retry_period ({self.retry_period}s)"
            )
        return found

    @property
    def timeout(self) -> float:
        """The time one attempt (read + write) may take."""
        if self.call_timeout is not None:
            return self.call_timeout
        return self.retry_period * DEFAULT_TIMEOUT_SHARE

    @classmethod
    def from_config(
        cls,
        lease: LeaseTimings,
        *,
        identity: str,
        address: str = "",
        call_timeout: float | None = None,
    ) -> ElectionSettings:
        """Settings from a `LeaseConfig` (or anything with its three timings)."""
        return cls(
            identity=identity,
            address=address,
            duration=float(lease.duration),
            renew_deadline=float(lease.renew_deadline),
            retry_period=float(lease.retry_period),
            call_timeout=call_timeout,
        )
