"""The library, for real: the short variant of each drill against the simulated estate.

One test per drill, one after another (each starts its own estate and gtm
members in a port block of its own; two cores cannot run two at once). The
measured detection and convergence times are printed (`pytest -s`) and the
report lands in the test's temporary directory.

Known gtm bugs the drills catch are listed in `KNOWN`: the assertion they
fail and the shape of its details. A drill failing only because of them
passes the test (and says so); anything else fails it. Each depends on
timing, so a drill shows it in some runs and not in others.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from chaos.drills.layout import DrillPorts, find_free_base
from chaos.drills.model import load_drill
from chaos.drills.runner import RunOptions, run_drill
from chaos.drills.verdict import Verdict

ROOT = Path(__file__).resolve().parents[3]
LIBRARY = sorted((ROOT / "chaos" / "drills" / "library").glob("*.yaml"))


def path(detail: str) -> list[int]:
    """The values of a flip-flop detail: `… : 98 -> 0 -> 98 (2 reversals …)` -> [98, 0, 98]."""
    chain = detail.rsplit(": ", 1)[-1].split(" (")[0]
    return [int(v) for v in chain.split(" -> ") if v.strip().lstrip("-").isdigit()]


def any_detail(detail: str) -> bool:
    return True


def enter_missed(detail: str) -> bool:
    """A region's history without the `entered` record of an enter it only saw ended."""
    return bool(re.match(r"dc\d history: enter-\S+ \(\S+\) accepted 0 times$", detail))


def reentry_spike(detail: str) -> bool:
    """A WLE back from 0 first at a weight above the next one: 0 -> 10 -> 2 -> 4."""
    if not detail.startswith("WLE "):
        return False
    values = path(detail)
    return any(
        a == 0 and b > c > 0 for a, b, c in zip(values, values[1:], values[2:], strict=False)
    )


def ramp_end_dip(detail: str) -> bool:
    """A cell (or the WLE it drives) that ramped monotonically to X, moved once, came back to X."""
    values = path(detail)
    if not detail.startswith(("DNS ", "WLE ")) or len(values) < 5 or values[-1] != values[-3]:
        return False
    run = values[:-2]
    steps = [b - a for a, b in itertools.pairwise(run)]
    tail = steps[-2:]
    return len(tail) == 2 and (all(d > 0 for d in tail) or all(d < 0 for d in tail))


@dataclass(frozen=True)
class KnownBug:
    """A gtm bug a drill catches: the assertion it fails and what each of its details shows."""

    check: str  # the verdict's label, or the start of it
    detail: Callable[[str], bool]  # every detail line of the failing verdict satisfies it
    what: str


KNOWN = (
    KnownBug(
        "ordered ",
        any_detail,
        "gtm.service.layers: the hold runs from the override's creation, not from when each "
        "region's DNS took it; a region that pulls the intent late (every 5s) moves its mesh "
        "less than TTL + margin after its DNS, or at the same moment",
    ),
    KnownBug(
        "nothing lost",
        enter_missed,
        "gtm.service.operations/peers: an enter lives only for the hold (TTL + margin, 3s here) "
        "and other regions pull intent every 5s: a region can miss it in force and only see it "
        "ended; there its --ramp and the mesh-first order are lost, and its history has no "
        "'entered' record",
    ),
    KnownBug(
        "no flip-flop",
        reentry_spike,
        "failover.mesh_plan.diff writes Healthy=True before spec.weight: a WLE coming back is "
        "healthy with its pre-exit weight until the second patch lands",
    ),
    KnownBug(
        "no flip-flop",
        ramp_end_dip,
        "policies.row lifts every ramp cap while all available cells ramp; when the other ramps "
        "end the cap applies again: 98 -> 82 -> 98",
    ),
)


def known(v: Verdict) -> KnownBug | None:
    """The known bug a failed verdict shows (every one of its details fits it), or None."""
    for bug in KNOWN:
        if v.check.startswith(bug.check) and v.details and all(map(bug.detail, v.details)):
            return bug
    return None


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.stem)
async def test_drill_short(path: Path, tmp_path: Path) -> None:
    file = load_drill(path)
    base = find_free_base(random.randrange(30000, 40000, 100))
    result = await run_drill(file, RunOptions(report_dir=tmp_path, short=True), DrillPorts(base))
    lines = [f"{result.drill} ({result.took:.0f}s):"]
    lines += [f"  {v.state:7} {v.check}: {v.measured} [{v.bound}]" for v in result.verdicts]
    print("\n".join(lines))
    assert result.record is not None, "\n".join(lines)
    assert result.report is not None and result.report.exists()
    assert len(result.record.samples) >= file.drill.length(True) / file.drill.sample_every / 2
    unexpected = [v for v in result.verdicts if v.failed and known(v) is None]
    assert not unexpected, "\n".join(lines + [d for v in unexpected for d in v.details])
    for v in result.verdicts:
        bug = known(v) if v.failed else None
        if bug is not None:
            print(f"  known gtm bug ({v.check}): {bug.what}")
