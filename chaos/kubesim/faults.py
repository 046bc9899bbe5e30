"""Faults injected into API requests on demand: latency, 500s, 429s, a rate limit, dropped watches.

And resources RBAC does not grant: `forbidden` answers 403 Forbidden before
anything else (no latency, no random draw), as the authorizer does, whatever
`verbs` and `resources` say.

`Faults` is a value (settable in-process or as JSON on `POST /_sim/faults`);
`FaultInjector` applies the current one to each API request. Randomness comes
from one `random.Random(seed)` that draws the same numbers for every request
whatever its outcome, so a seeded run injects the same faults into the same
request sequence. The rate limit is a token bucket (rate per second, burst);
a request that finds it empty gets 429 with Retry-After, like API Priority
and Fairness answers.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pydantic
import structlog

from chaos.kubesim.errors import (
    ApiError,
    bad_request,
    forbidden,
    internal_error,
    too_many_requests,
)
from chaos.kubesim.watch import WatchHub

log = structlog.get_logger(__name__)

ANONYMOUS = "system:anonymous"  # who the simulator's unauthenticated clients are
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


@dataclass(frozen=True)
class Faults:
    """What to inject. The default injects nothing.

    latency, jitter: seconds added to each request (latency + uniform 0..jitter).
    error_rate: fraction of requests answered 500 InternalError.
    throttle_rate: fraction answered 429 TooManyRequests with `Retry-After: retry_after`.
    rate_limit, burst: a token bucket of `rate_limit` requests/s holding `burst`
        (default: one second's worth); a request finding it empty gets 429.
    drop_watches: close every open watch stream when these faults are set.
    drop_watches_after: close each watch opened while set this many seconds after it opened.
    verbs, resources: limit all of the above to these verbs / resource plurals
        (empty: all). A resource matches its subresources (`workloadentries`
        covers `workloadentries/status`).
    forbidden: resource plurals (and their subresources) every request for
        which is answered 403 Forbidden, as when RBAC does not grant them.
    seed: seed of the random draws (None: unseeded).
    """

    latency: float = 0.0
    jitter: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    retry_after: int = 1
    rate_limit: float | None = None
    burst: int | None = None
    drop_watches: bool = False
    drop_watches_after: float | None = None
    verbs: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "verbs", tuple(self.verbs))
        object.__setattr__(self, "resources", tuple(self.resources))
        object.__setattr__(self, "forbidden", tuple(self.forbidden))
        problems = []
        if self.latency < 0 or self.jitter < 0:
            problems.append("latency and jitter must be >= 0")
        for name in ("error_rate", "throttle_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be between 0 and 1")
        if self.retry_after < 0:
            problems.append("retry_after must be >= 0")
        if self.rate_limit is not None and self.rate_limit <= 0:
            problems.append("rate_limit must be > 0 (or null for no limit)")
        if self.burst is not None and self.burst < 1:
            problems.append("burst must be >= 1")
        if self.drop_watches_after is not None and self.drop_watches_after <= 0:
            problems.append("drop_watches_after must be > 0")
        problems += [f"unknown verb {v!r}" for v in self.verbs if v not in VERBS]
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def bucket_size(self) -> int:
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.rate_limit or 1))

    def applies_to(self, verb: str, resource: str) -> bool:
        if self.verbs and verb not in self.verbs:
            return False
        return not self.resources or _covered(resource, self.resources)

    def forbids(self, resource: str) -> bool:
        return _covered(resource, self.forbidden)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("verbs", "resources", "forbidden"):
            out[name] = list(getattr(self, name))
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Faults:
        """Parse a JSON body; unknown keys and wrong types are a 400."""
        if not isinstance(data, dict):
            raise bad_request("faults must be a JSON object")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise bad_request(f"unknown fault settings: {', '.join(unknown)}")
        try:
            return pydantic.TypeAdapter(cls).validate_python(data, strict=False)
        except (pydantic.ValidationError, ValueError) as error:
            raise bad_request(f"invalid faults: {error}") from error


def _covered(resource: str, scopes: tuple[str, ...]) -> bool:
    """`workloadentries` covers `workloadentries/status`; the latter names only itself."""
    return any(resource == scope or resource.startswith(scope + "/") for scope in scopes)


class TokenBucket:
    """`rate` tokens per second, at most `size` kept; one token per request."""

    def __init__(self, rate: float, size: int, now: float) -> None:
        self.rate = rate
        self.size = size
        self._tokens = float(size)
        self._last = now

    def take(self, now: float) -> float:
        """0 if a token was taken, else the seconds until one will be there."""
        self._tokens = min(self.size, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


@dataclass(frozen=True)
class Verdict:
    """What the injector decided for one request."""

    delay: float = 0.0
    error: ApiError | None = None
    cause: str | None = None  # "error" | "throttle" | "rate_limit" | "forbidden"


class FaultInjector:
    """The faults in force on one simulated API server (`sim.faults`)."""

    def __init__(self, hub: WatchHub, clock: Callable[[], float] = time.monotonic) -> None:
        self._hub = hub
        self._clock = clock
        self._injected: Counter[str] = Counter()
        self.current = Faults()
        self._random = random.Random()
        self._bucket: TokenBucket | None = None

    @property
    def injected(self) -> dict[str, int]:
        return dict(self._injected)

    def set(self, faults: Faults) -> None:
        """Put `faults` in force (replacing the previous ones)."""
        self.current = faults
        self._random = random.Random(faults.seed)
        self._bucket = (
            TokenBucket(faults.rate_limit, faults.bucket_size, self._clock())
            if faults.rate_limit
            else None
        )
        dropped = (
            self._hub.drop_all("fault: drop_watches", faults.resources)
            if faults.drop_watches
            else 0
        )
        log.info("kubesim.faults.set", faults=faults.to_dict(), dropped_watches=dropped)

    def clear(self) -> None:
        if self.current != Faults():
            self.current = Faults()
            self._bucket = None
            log.info("kubesim.faults.cleared")

    def reset_counters(self) -> None:
        self._injected.clear()

    def judge(self, verb: str, resource: str) -> Verdict:
        """The delay and the error (if any) for one API request."""
        faults = self.current
        if faults.forbids(resource):  # the authorizer answers before any other fault applies
            self._injected["forbidden"] += 1
            return Verdict(error=forbidden(verb, resource, ANONYMOUS), cause="forbidden")
        if not faults.applies_to(verb, resource):
            return Verdict()
        # Always three draws, whatever the outcome, so a seed fixes the whole sequence.
        jitter, throttle, error = (self._random.random() for _ in range(3))
        delay = faults.latency + faults.jitter * jitter
        if self._bucket is not None:
            wait = self._bucket.take(self._clock())
            if wait > 0:
                self._injected["rate_limit"] += 1
                return Verdict(delay, too_many_requests(max(1, math.ceil(wait))), "rate_limit")
        if throttle < faults.throttle_rate:
            self._injected["throttle"] += 1
            return Verdict(delay, too_many_requests(faults.retry_after), "throttle")
        if error < faults.error_rate:
            self._injected["error"] += 1
            return Verdict(delay, internal_error("injected fault"), "error")
        return Verdict(delay)

    def watch_lifetime(self, resource: str) -> float | None:
        """Seconds after which a watch opened now is to be dropped, if any."""
        faults = self.current
        if faults.drop_watches_after is None or not faults.applies_to("watch", resource):
            return None
        return faults.drop_watches_after

    def note_dropped_watch(self) -> None:
        self._injected["dropped_watches"] += 1
