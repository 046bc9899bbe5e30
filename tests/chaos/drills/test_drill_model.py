"""Drill files: the library loads; each bad file is refused with its file, line and field.

Each `bad/bad-*.yaml` starts with `# expect: LINE: TEXT`: one of the problems
must be reported at that line and contain that text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chaos.drills.model import DrillError, load_drill
from chaos.drills.steps import KINDS, VipFault

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
LIBRARY = sorted((ROOT / "chaos" / "drills" / "library").glob("*.yaml"))
BAD = sorted((HERE / "bad").glob("bad-*.yaml"))


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.stem)
def test_library_drills_load(path: Path) -> None:
    loaded = load_drill(path)
    drill = loaded.drill
    assert drill.name == path.stem
    assert drill.short_duration is not None and drill.short_duration < drill.duration
    assert loaded.inventory.region_names == ("dc1", "dc2", "dc3")
    for short in (False, True):
        times = [s.when(short) for s in drill.schedule(short)]
        assert times == sorted(times) and times[-1] <= drill.length(short)
    kinds = {c.label() for c in drill.checks()}
    assert {"bounds", "no flip-flop", "answers", "nothing_lost"} & kinds or kinds


def test_the_library_covers_the_issue() -> None:
    names = {p.stem for p in LIBRARY}
    assert names >= {
        "region-exit",
        "vip-outage",
        "total-outage",
        "impaired-prober",
        "leader-kill",
        "api-brownout",
        "flapping-vip",
        "rollout-window",
    }
    used = {s.do for p in LIBRARY for s in load_drill(p).drill.timeline}
    assert used >= set(KINDS) - {"remove"}, set(KINDS) - used


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_drill_files_say_where(path: Path) -> None:
    head = path.read_text().splitlines()[0]
    match = re.match(r"# expect: (\d+): (.+)$", head)
    assert match, f"{path.name} must start with '# expect: LINE: TEXT'"
    line, text = int(match[1]), match[2]
    with pytest.raises(DrillError) as caught:
        load_drill(path)
    shown = [str(p) for p in caught.value.problems]
    wanted = f"{path}:{line} "
    assert any(s.startswith(wanted) and text in s for s in shown), "\n".join(shown)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    estate = ROOT / "chaos" / "drills" / "estates" / "fast.yaml"
    path = tmp_path / "many.yaml"
    path.write_text(
        f"""name: many
title: several problems
estate: {{path: {estate}, members_per_region: 1}}
duration: 10s
timeline:
  - {{id: a, at: 1s, do: region_exit, region: dc7}}
  - {{id: a, at: 2s, do: kill_leader, region: dc1}}
assertions:
  - {{check: takeover, step: b}}
"""
    )
    with pytest.raises(DrillError) as caught:
        load_drill(path)
    lines = sorted(p.line or 0 for p in caught.value.problems)
    assert lines == [6, 7, 7, 9], [str(p) for p in caught.value.problems]


def test_a_missing_file_is_a_problem_too(tmp_path: Path) -> None:
    with pytest.raises(DrillError, match="cannot read"):
        load_drill(tmp_path / "nope.yaml")


def test_steps_describe_themselves() -> None:
    step = VipFault(id="x", at=1.0, do="vip_fault", vips=["foo/dc2"], mode="refuse")
    assert step.describe() == "refuse on foo/dc2"
    assert step.when(short=True) == 1.0


def test_the_command_refuses_bad_files_before_starting_anything(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from chaos.cli.drill import drill

    bad = [str(p) for p in BAD[:2]]
    got = CliRunner().invoke(drill, ["run", *bad, "--report", str(tmp_path)])
    assert got.exit_code == 2
    assert all(f"{p}:" in got.output for p in bad), got.output
    assert not any(tmp_path.iterdir())  # nothing was started, nothing written
