"""Counters of API requests by verb, resource and response code.

The failover benchmark reads them (`GET /_sim/stats`, `sim.stats()`) to see
how much of the allowed request rate a reconciler used: `total` requests
over `window_seconds` (first to last request since the last reset).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RequestKey:
    verb: str
    resource: str
    code: int


class RequestStats:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        self._counts: Counter[RequestKey] = Counter()
        self._first: float | None = None
        self._last: float | None = None
        self._watches_opened = 0

    def record(self, verb: str, resource: str, code: int) -> None:
        now = self._clock()
        if self._first is None:
            self._first = now
        self._last = now
        self._counts[RequestKey(verb, resource, code)] += 1
        if verb == "watch" and code == 200:
            self._watches_opened += 1

    def snapshot(self, **extra: Any) -> dict[str, Any]:
        by_code: Counter[str] = Counter()
        by_verb: Counter[str] = Counter()
        by_resource: Counter[str] = Counter()
        for key, count in self._counts.items():
            by_code[str(key.code)] += count
            by_verb[key.verb] += count
            by_resource[key.resource] += count
        total = sum(self._counts.values())
        window = (self._last - self._first) if self._first is not None and self._last else 0.0
        return {
            "total": total,
            "window_seconds": window,
            "rate_per_second": total / window if window > 0 else None,
            "by_code": dict(sorted(by_code.items())),
            "by_verb": dict(sorted(by_verb.items())),
            "by_resource": dict(sorted(by_resource.items())),
            "requests": [
                {"verb": k.verb, "resource": k.resource, "code": k.code, "count": n}
                for k, n in sorted(
                    self._counts.items(),
                    key=lambda item: (item[0].resource, item[0].verb, item[0].code),
                )
            ],
            "watches_opened": self._watches_opened,
            **extra,
        }

    def count(
        self, *, verb: str | None = None, resource: str | None = None, code: int | None = None
    ) -> int:
        """Requests matching every given part (a shortcut for tests and benchmarks)."""
        return sum(
            n
            for k, n in self._counts.items()
            if (verb is None or k.verb == verb)
            and (resource is None or k.resource == resource)
            and (code is None or k.code == code)
        )
