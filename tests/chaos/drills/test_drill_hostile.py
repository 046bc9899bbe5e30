"""The hostile steps' parts (chaos.drills.hostile): bad configs the loader must refuse, the
refusal read from a status, a full state directory and its way back, a torn audit, an intent
file moved aside and back."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from chaos.drills import hostile
from chaos.drills.model import load_drill
from chaos.drills.steps import BadReload, IntentDelete, StateClear, StateFull
from gtm.config import ConfigError, load

ROOT = Path(__file__).resolve().parents[3]
FAST = ROOT / "chaos" / "drills" / "estates" / "fast.yaml"


@pytest.mark.parametrize(
    "kind",
    [
        "alias_bomb",
        "duplicate_key",
        "tagged_scalar",  # a fuzz finding, fixed (fuzz/findings/README.md)
    ],
)
def test_the_bad_configs_are_refused_by_the_loader_naming_why(tmp_path: Path, kind: str) -> None:
    good = FAST.read_text()
    load(FAST)  # the good one loads
    path = tmp_path / "member.yaml"
    path.write_text(hostile.bad_config(good, kind))
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert any(hostile.EXPECTED[kind] in str(p) for p in caught.value.problems), caught.value


def test_a_refusal_is_read_from_the_status() -> None:
    refused = {
        "config": {"digest": "d1", "refused_at": 100.0, "refused": ["x:9 (top): duplicate key"]}
    }
    assert hostile.refusal_problems(refused, since=99.0, digest="d1", kind="duplicate_key") == []
    late = hostile.refusal_problems(refused, since=101.0, digest="d1", kind="duplicate_key")
    assert late and "no refused reload" in late[0]
    other = hostile.refusal_problems(refused, since=99.0, digest="d2", kind="duplicate_key")
    assert other and "another config" in other[0]
    unnamed = hostile.refusal_problems(refused, since=99.0, digest="d1", kind="alias_bomb")
    assert unnamed and "alias bomb" in unnamed[0]


def test_a_torn_audit_is_found(tmp_path: Path) -> None:
    line = json.dumps({"at": 1.0, "kind": "accepted"}) + "\n"
    (tmp_path / "audit.jsonl").write_text(line * 3)
    assert hostile.torn_audit(tmp_path) == []
    (tmp_path / "audit.jsonl.0000000001").write_text(line + line[:10])
    problems = hostile.torn_audit(tmp_path)
    assert any("cut" in p for p in problems) and any(":2: not a whole entry" in p for p in problems)


def test_the_newest_intent_file_goes_aside_and_back(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    for n in (1, 2, 10):
        (state / f"intent.json.{n}").write_text(str(n))
    (state / "intent.json.tmp").write_text("partial")
    newest = hostile.newest_intent(state)
    assert newest == state / "intent.json.10"
    kept = hostile.move_aside(newest, tmp_path / "deleted")
    assert hostile.newest_intent(state) == state / "intent.json.2"
    assert hostile.put_back(kept, state) == "intent.json.10 restored"
    assert (state / "intent.json.10").read_text() == "10"
    # written again meanwhile: the deleted one stays aside, the new one is not touched
    os.unlink(state / "intent.json.10")
    (state / "intent.json.10").write_text("new")
    assert "written again" in hostile.put_back(kept, state)
    assert (state / "intent.json.10").read_text() == "new"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_state_directory_refuses_writes_and_comes_back_whole(tmp_path: Path) -> None:
    state = tmp_path / "state" / "dc1"
    state.mkdir(parents=True)
    (state / "intent.json.1").write_text("one")
    (state / "audit.jsonl").write_text('{"n": 1}\n')
    disk = hostile.FullDisk(state, size=256 << 10)
    try:
        assert disk.fill() > 0 and disk.mounted()
        assert (state / "intent.json.1").read_text() == "one"  # the state as it was
        with pytest.raises(OSError) as caught, (state / "intent.json.2").open("wb") as f:
            f.write(b"x" * (64 << 10))
            f.flush()
            os.fsync(f.fileno())
        assert caught.value.errno == errno.ENOSPC
        os.unlink(state / "intent.json.2")
        os.unlink(state / hostile.BALLAST)  # room for one write, as after `state_clear` began
        (state / "intent.json.2").write_text("two")
        with (state / "audit.jsonl").open("a") as f:
            f.write('{"n": 2}\n')
    finally:
        torn = disk.clear()
    assert not disk.mounted() and torn == []
    assert (state / "intent.json.2").read_text() == "two"  # what was written meanwhile is back
    assert (state / "audit.jsonl").read_text() == '{"n": 1}\n{"n": 2}\n'
    assert not disk.full.exists() and not disk.under.exists()


def test_the_hostile_drill_uses_every_new_step() -> None:
    drill = load_drill(ROOT / "chaos" / "drills" / "library" / "hostile-inputs.yaml").drill
    kinds = {type(s) for s in drill.timeline}
    assert {BadReload, StateFull, StateClear, IntentDelete} <= kinds
    unavailable = [s for s in drill.timeline if getattr(s, "expect", None) == "unavailable"]
    assert unavailable and unavailable[0].region == "dc2"


def test_the_cause_is_found_in_the_members_logs(tmp_path: Path) -> None:
    a, b = tmp_path / "dc1-a.log", tmp_path / "dc1-b.log"
    a.write_text(
        '{"event": "leader.released", "reason": "ENOSPC on table", '
        '"timestamp": "2026-12-07T13:07:22.601595Z"}\nnot json ENOSPC\n'
    )
    b.write_text('{"event": "dns.start", "timestamp": "2026-12-07T13:07:23Z"}\n')
    after = hostile._unix("2026-12-07T13:07:20Z")
    assert hostile.cause_named([a, b, tmp_path / "gone.log"], "ENOSPC", since=after) == [
        "dc1-a (leader.released)"
    ]
    assert hostile.cause_named([a, b], "ENOSPC", since=after + 10) == []
