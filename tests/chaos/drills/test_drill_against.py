"""`gtm drill run --against`: a practice run, with the simulated estate standing in for a deployment.

The estate and its members are started here, the way an SRE's deployment
would already run; the practice run only gets a config naming the API
server, a token file, the region to exit and when to enter it again.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from click.testing import CliRunner

from chaos.cli.drill import drill as drill_cli
from chaos.drills.against import AgainstConfig, load_against, practice_plan, run_against
from chaos.drills.layout import DrillPorts, find_free_base
from chaos.drills.model import load_drill
from chaos.drills.runner import member_argv
from chaos.estate import SimulatedEstate

IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[3]
FAST = ROOT / "chaos" / "drills" / "estates" / "fast.yaml"
REGION_EXIT = ROOT / "chaos" / "drills" / "library" / "region-exit.yaml"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimulatedEstate]:
    """Three regions, one member each, healthy: the "real" deployment."""
    work = tmp_path_factory.mktemp("deployment")
    ports = DrillPorts(
        find_free_base(random.randrange(15000, 20000, 100))
    )  # below the ephemeral range
    file = load_drill(REGION_EXIT)
    async with SimulatedEstate(
        FAST,
        work,
        base_port=ports.base,
        vip_port_offset=ports.vip_offset(file.inventory),
        pair=("a",),
    ) as estate:
        estate.start_members(None, member_argv(sys.executable))
        await estate.wait_members(path="/readyz", within=60)
        await asyncio.sleep(4)  # probes rise, leaders settle
        yield estate


def config(estate: SimulatedEstate, tmp: Path, **extra: object) -> Path:
    body = {
        "server": estate.api_urls["dc1-a"],
        "token_file": str(estate.tokens.operator_file),
        "region": "dc2",
        "reenter_after": "9s",
        "ramp": "3s",
        "estate": str(estate.estate_file),
        "sample_every": "500ms",
        "reason": "practice in a test",
        "ticket": "CHG-1",
        **extra,
    }
    path = tmp / "practice.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_the_plan_keeps_the_exit_and_the_reentry_only() -> None:
    cfg = AgainstConfig(
        server="https://gtm.example:8080", token_file="t", region="dc3", reenter_after=600.0
    )
    plan, left = practice_plan(load_drill(REGION_EXIT).drill, cfg)
    assert [(s.do, getattr(s, "region", None)) for s in plan.timeline] == [
        ("region_exit", "dc3"),
        ("measure_split", None),  # reads only: kept, at the same distance from the exit
        ("region_enter", "dc3"),
    ]
    assert plan.timeline[1].at - plan.timeline[0].at == 10.0
    assert plan.timeline[2].at - plan.timeline[0].at == 600.0
    assert any("second-exit" in x for x in left) and any("ordered" in x for x in left)
    assert {c.label() for c in plan.assertions} >= {"converged exit", "converged enter"}


@IN_MODULE_LOOP
async def test_practice_run_exits_and_reenters(deployment: SimulatedEstate, tmp_path: Path) -> None:
    practice = tmp_path / "practice-drill.yaml"
    practice.write_text(
        f"""name: practice
title: exit, split, re-enter
estate: {{path: {FAST}, members_per_region: 1}}
duration: 36s
timeline:
  - {{id: exit, at: 2s, do: region_exit, region: dc3}}
  - {{id: split, at: 7s, do: measure_split, queries: 50, services: [foo]}}
  - {{id: enter, at: 20s, do: region_enter, region: dc3}}
  - {{id: noise, at: 21s, do: vip_fault, vips: [foo/dc1], mode: refuse}}
# every region holds its mesh for TTL + margin (3s) from when it pulled the
# intent (every 2s): the exit converges within about 6s, the enter (3s ramp) 9s
assertions:
  - {{check: converged, step: exit, within: 10s}}
  - {{check: reflects, step: exit, dns_within: 6s}}
  - {{check: converged, step: enter, within: 13s}}
"""
    )
    cfg = load_against(config(deployment, tmp_path))
    result = await run_against(load_drill(practice), cfg, tmp_path / "reports")
    shown = [f"{v.state} {v.check}: {v.measured}" for v in result.verdicts]
    shown += [f"  {d}" for v in result.verdicts if v.failed for d in v.details]
    assert result.passed, "\n".join(shown)
    assert result.record is not None and result.record.mode == "against"
    assert [s.do for s in result.record.steps] == ["region_exit", "measure_split", "region_enter"]
    assert any("noise" in n for n in result.record.notes)  # faults are left out
    assert result.report is not None and result.report.exists()
    final = result.record.final["dc1-a"]
    assert not any(o.kind == "exit" for o in final.active)  # the region is back


@IN_MODULE_LOOP
async def test_a_failed_check_aborts_and_reenters(
    deployment: SimulatedEstate, tmp_path: Path
) -> None:
    impatient = tmp_path / "impatient.yaml"
    impatient.write_text(
        f"""name: impatient
title: an exit that must converge in 100ms
estate: {{path: {FAST}, members_per_region: 1}}
duration: 60s
timeline:
  - {{id: exit, at: 1s, do: region_exit, region: dc2}}
  - {{id: enter, at: 50s, do: region_enter, region: dc2, ramp: 2s}}
assertions:
  - {{check: converged, step: exit, within: 100ms}}
"""
    )
    path = config(deployment, tmp_path, reenter_after="10m")
    runner = CliRunner()
    got = await asyncio.to_thread(
        runner.invoke,
        drill_cli,
        ["run", "--against", str(path), "--report", str(tmp_path / "r"), str(impatient)],
    )
    assert got.exit_code == 1, got.output
    assert "aborted" in got.output
    from chaos.drills.report import read_samples

    record, verdicts = read_samples(tmp_path / "r" / "impatient" / "samples.json")
    assert [s.id for s in record.steps] == ["exit", "abort-reenter"]
    assert all(s.ok for s in record.steps)
    assert any(v.kind == "abort" and v.failed for v in verdicts)
    last = record.samples[-1]
    assert all(not any(o.kind == "exit" for o in m.active) for m in last.running())
