"""How a Kubernetes client retries: the one settings type, used by every room that talks to the API."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """How `Client.request()` retries a temporary error (429, 5xx, timeouts, broken connections).

    The wait before attempt n+1 is an exponential backoff with full jitter from
    `backoff` up to `backoff_max`, and never less than the server's
    Retry-After (capped at `retry_after_max`). `conflict_attempts` bounds the
    caller's own re-read-and-rebuild rounds after a 409 (a `Conflict` is
    never retried as is).
    """

    attempts: int = 8
    backoff: float = 0.1
    backoff_max: float = 5.0
    retry_after_max: float = 60.0
    conflict_attempts: int = 5

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.conflict_attempts < 1:
            raise ValueError("attempts and conflict_attempts must be >= 1")
        if self.backoff < 0 or self.backoff_max < self.backoff:
            raise ValueError("need 0 <= backoff <= backoff_max")
        if self.retry_after_max < 0:
            raise ValueError("retry_after_max must be >= 0")

    def pause(self, failures: int) -> float:
        """The wait after `failures` failed rounds of a loop that resumes on its own (a watch)."""
        return min(self.backoff_max, self.backoff * 2 ** min(failures, 10))


NO_RETRY = RetrySettings(attempts=1)  # for a caller whose own loop retries (the Lease elector)
