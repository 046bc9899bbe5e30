"""Every fuzz target runs a few thousand inputs on every submission (scripts/fuzz), and its
checked-in seeds are what they say they are."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNS = {"dns": 3000, "config": 3000}  # a few seconds each, after ~5 s of instrumented imports


@pytest.mark.parametrize("target", sorted(RUNS))
def test_a_bounded_fuzz_run_finds_nothing(target: str) -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "fuzz"), target, str(RUNS[target])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    tail = "\n".join(done.stderr.splitlines()[-40:])
    assert done.returncode == 0, f"scripts/fuzz {target} found something:\n{tail}"
    assert f"Done {RUNS[target]} runs" in done.stderr, tail


def test_the_targets_hold_on_their_seeds() -> None:
    """In-process, without atheris: each seed passes its target (a seed that fails is a bug)."""
    for target in _targets().values():
        seeds = sorted(target.corpus.iterdir())
        assert 5 <= len(seeds) <= 40 and sum(p.stat().st_size for p in seeds) < 64 << 10
        test = target.setup()
        for seed in seeds:
            test(seed.read_bytes())


def test_scripts_fuzz_replays_a_reproducer(tmp_path: Path) -> None:
    """`scripts/fuzz TARGET FILE` runs the file once (how a finding is reported and checked)."""
    runt = tmp_path / "runt"
    runt.write_bytes(b"\x12\x34\x01")
    done = subprocess.run(
        [str(ROOT / "scripts" / "fuzz"), "dns", str(runt)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Running: {runt}" in done.stderr and "Executed" in done.stderr


FINDINGS = sorted((ROOT / "fuzz" / "findings").glob("*/*.yaml"))


@pytest.mark.parametrize("path", FINDINGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
@pytest.mark.xfail(strict=True, reason="a fuzz finding not fixed yet (fuzz/findings/README.md)")
def test_a_known_finding_still_fails(path: Path) -> None:
    """When its owner fixes one, this XPASSes and fails: move the file into fuzz/corpus/."""
    _targets()[path.parent.name].setup()(path.read_bytes())


def _targets() -> dict:
    sys.path.insert(0, str(ROOT))
    try:
        from fuzz.targets import TARGETS
    finally:
        sys.path.remove(str(ROOT))
    return TARGETS
