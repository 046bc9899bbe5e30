"""A member's own probe results, kept for its peers to pull by cursor."""

from __future__ import annotations

import pytest

from gtm.service.observation_log import ObservationLog, from_row
from probes import Observation


def obs(i: int) -> Observation:
    return Observation(
        f"foo/dc1/10.0.0.{i}:443",
        "dc1",
        i % 2 == 0,
        0.001 * i,
        100.0 + i,
        1e9 + i,
        "ok" if i % 2 == 0 else "refused",
    )


def test_rows_after_a_cursor_and_the_next_cursor() -> None:
    log = ObservationLog(capacity=100)
    for i in range(10):
        log.append(obs(i))
    rows, nxt = log.since(0, 4)
    assert [r[0] for r in rows] == [f"foo/dc1/10.0.0.{i}:443" for i in range(4)] and nxt == 4
    rows, nxt = log.since(nxt, 100)
    assert len(rows) == 6 and nxt == 10
    assert log.since(10, 100) == ([], 10)


def test_a_cursor_that_fell_off_or_comes_from_a_restarted_peer_starts_at_the_oldest() -> None:
    log = ObservationLog(capacity=5)
    for i in range(12):
        log.append(obs(i))
    rows, nxt = log.since(2, 100)  # rows 0..6 are gone
    assert rows[0][0] == "foo/dc1/10.0.0.7:443" and nxt == 12
    rows, nxt = log.since(999, 100)
    assert len(rows) == 5 and nxt == 12


def test_rows_become_observations_of_the_peers_vantage() -> None:
    log = ObservationLog()
    log.append(obs(3))
    (row,), _ = log.since(0, 10)
    o = from_row(row, "dc2")
    assert (o.target_id, o.vantage, o.ok, o.reason, o.wall) == (
        "foo/dc1/10.0.0.3:443",
        "dc2",
        False,
        "refused",
        1e9 + 3,
    )
    with pytest.raises(ValueError, match="not an observation row"):
        from_row(["x", True], "dc2")
