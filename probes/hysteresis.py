"""Rise/fall hysteresis: one vantage's opinion of one target, from its consecutive results.

Unknown until there is enough data; `up` after `rise` successes in a row and
`down` after `fall` failures in a row; a single contrary result only resets
the run. Pure state, fed in observation order.
"""

from __future__ import annotations

from probes.health import DOWN, UNKNOWN, UP, State


class RiseFall:
    """What one vantage thinks of one target: state, the runs behind it, and the latest result."""

    __slots__ = ("fail_run", "ok_run", "reason", "state", "wall")

    def __init__(self) -> None:
        self.state: State = UNKNOWN
        self.ok_run = 0
        self.fail_run = 0
        self.wall = float("-inf")
        self.reason = "no data"

    def record(self, ok: bool, reason: str, wall: float, rise: int, fall: int) -> bool:
        """Takes one result taken at `wall`; returns True when `state` changed."""
        self.wall = wall
        self.reason = reason
        if ok:
            self.ok_run += 1
            self.fail_run = 0
            if self.state != UP and self.ok_run >= rise:
                self.state = UP
                return True
        else:
            self.fail_run += 1
            self.ok_run = 0
            if self.state != DOWN and self.fail_run >= fall:
                self.state = DOWN
                return True
        return False

    def reset(self) -> None:
        """Forgets the runs (the vantage was impaired): unknown until rise/fall again."""
        self.state = UNKNOWN
        self.ok_run = 0
        self.fail_run = 0
        self.reason = "no data since vantage recovered"
