"""The composition root before it runs: which region it is in, and what it says while starting.

A running member is tested through its API (`tests/api`, over `api_members.Members`)
and as real `gtm serve` processes (`tests/service/test_service_e2e.py`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gtm.ha import NotLeader
from gtm.member import MemberRuntime
from gtm.service.actions import Exit

ROOT = Path(__file__).resolve().parents[2]


def config(tmp_path: Path, **instance: str) -> str:
    data = yaml.safe_load((ROOT / "examples" / "estate.yaml").read_text())
    data["instance"] = {"state_dir": str(tmp_path / "state"), **instance}
    path = tmp_path / "estate.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_the_region_comes_from_the_flag_or_the_config(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="which region does this member run in"):
        MemberRuntime(config(tmp_path))
    with pytest.raises(ValueError, match="--region dc9: no such region"):
        MemberRuntime(config(tmp_path), region="dc9")
    member = MemberRuntime(config(tmp_path, region="dc2", member="dc2-b"))
    assert (member.region, member.identity) == ("dc2", "dc2-b")
    assert MemberRuntime(config(tmp_path, region="dc2"), region="dc3").region == "dc3"


async def test_a_starting_member_says_so_and_takes_no_action(tmp_path: Path) -> None:
    member = MemberRuntime(config(tmp_path), region="dc1", member="dc1-a")
    assert member.role() == "starting" and not member.ready() and member.table() is None
    s = member.status()
    assert (s.identity, s.region, s.role, s.ready) == ("dc1-a", "dc1", "starting", False)
    assert s.dns is not None and s.dns.generation is None and s.dns.workers is None
    assert s.leader is None and s.epoch is None and s.layers is None and s.mesh == {}
    assert s.prober is None and [p.exchange for p in s.peers] == [None] * len(s.peers)
    assert not await member.history(10, None)
    with pytest.raises(NotLeader):
        await member.act(Exit("dc2", "r"), who="alice", dry_run=True)
