"""Numbered files written by compare-and-swap: the retry loop around a lost race."""

from __future__ import annotations

from pathlib import Path

import pytest

from intent.versioned import VersionedFiles, VersionTaken


def test_a_lost_race_is_tried_again_on_the_newest(tmp_path: Path) -> None:
    files = VersionedFiles(tmp_path / "value")
    files.write(1, b"one")
    seen = []

    def attempt() -> int:
        newest = files.newest()
        assert newest is not None
        seen.append(newest.version)
        if len(seen) == 1:
            files.write(newest.version + 1, b"the other writer's")  # it wins this round
        files.write(newest.version + 1, b"ours")
        return newest.version + 1

    assert files.retry(attempt, timeout=5) == 3
    assert seen == [1, 2]
    assert files.newest() == (3, b"ours")


def test_a_writer_that_always_loses_gives_up_after_the_timeout(tmp_path: Path) -> None:
    files = VersionedFiles(tmp_path / "value")

    def attempt() -> None:
        raise VersionTaken("someone else, every time")

    with pytest.raises(TimeoutError, match=r"lost every race for 0\.05s"):
        files.retry(attempt, timeout=0.05)


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    files = VersionedFiles(tmp_path / "value")
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise ValueError("not a race")

    with pytest.raises(ValueError):
        files.retry(attempt, timeout=5)
    assert calls == [1]
