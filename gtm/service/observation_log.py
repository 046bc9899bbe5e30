"""This member's own probe results, kept a while for its peers to pull.

Peers in other regions read them through `GET /v1/observations?since=N`, so
quorum over vantages sees every result, not a sample. Rows are compact lists
`[target_id, ok, latency, wall, reason]`; the cursor is a sequence number
that keeps counting when old rows fall off the end.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

from probes import Observation


class ObservationLog:
    def __init__(self, capacity: int = 200_000) -> None:
        self._rows: deque[list[Any]] = deque(maxlen=capacity)
        self._next = 0  # sequence number of the next row appended

    def append(self, obs: Observation) -> None:
        self._rows.append([obs.target_id, obs.ok, round(obs.latency, 6), obs.wall, obs.reason])
        self._next += 1

    @property
    def cursor(self) -> int:
        return self._next

    def since(self, cursor: int, limit: int) -> tuple[list[list[Any]], int]:
        """Rows after `cursor` (at most `limit`) and the cursor to ask with next.

        A cursor older than what is kept starts at the oldest row kept; one
        from the future (the peer restarted) starts over from the oldest too.
        """
        first = self._next - len(self._rows)
        if cursor < first or cursor > self._next:
            cursor = first
        start = cursor - first
        stop = min(len(self._rows), start + max(0, limit))
        rows = list(itertools.islice(self._rows, start, stop))
        return rows, first + stop


def from_row(row: list[Any], vantage: str) -> Observation:
    """A peer's row as an observation of its vantage; raises ValueError on a bad row."""
    try:
        target_id, ok, latency, wall, reason = row
        wall = float(wall)
        return Observation(
            str(target_id), vantage, bool(ok), float(latency), wall, wall, str(reason)
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"not an observation row: {row!r}") from e
