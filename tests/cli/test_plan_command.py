"""`gtm plan`: the operator's what-if, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
ESTATE = "examples/estate.yaml"


def gtm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gtm", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_plan_prints_the_table_and_decisions() -> None:
    r = gtm("plan", "-c", ESTATE, "-o", "exit=dc2", "-s", "foo")
    assert r.returncode == 0, r.stderr
    assert "planned weight table" in r.stdout
    assert "0 exit" in r.stdout and "(was 98)" in r.stdout
    assert "redistribute" in r.stdout


def test_plan_json_what_if_region_exit() -> None:
    r = gtm("plan", "-c", ESTATE, "-o", "exit=dc2", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    foo_dc2 = doc["table"]["rows"]["foo"]["dc2"]["cells"]
    assert {t: c["weight"] for t, c in foo_dc2.items()} == {"dc1": 50, "dc2": 0, "dc3": 50}
    assert foo_dc2["dc2"]["out"] == "Region Exit"
    assert any(d["rule"] == "exit" and d["service"] == "foo" for d in doc["decisions"])
    assert doc["refusals"] == []


def test_plan_refused_by_a_guardrail_exits_3_and_force_applies(tmp_path: Path) -> None:
    refused = gtm("plan", "-c", ESTATE, "-o", "exit=dc3", "--json")
    assert refused.returncode == 3
    doc = json.loads(refused.stdout)
    assert doc["refusals"][0]["rule"] == "min_active_regions"
    assert doc["table"]["rows"]["foo"]["dc1"]["cells"]["dc3"]["weight"] == 1  # nothing changed
    forced = gtm("plan", "-c", ESTATE, "-o", "exit=dc3", "--force", "--json")
    assert forced.returncode == 0
    assert json.loads(forced.stdout)["table"]["rows"]["foo"]["dc1"]["cells"]["dc3"]["weight"] == 0


def test_plan_with_a_health_snapshot(tmp_path: Path) -> None:
    snap = tmp_path / "health.yaml"
    snap.write_text(
        "regions:\n  foo/dc1: {state: down, reason: http 503}\nvips:\n  bar/dc1/127.0.1.2:18080: down\n"
    )
    r = gtm("plan", "-c", ESTATE, "--health", str(snap), "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["table"]["rows"]
    assert rows["foo"]["dc1"]["cells"]["dc1"]["out"] == "VIP Down"
    assert rows["foo"]["dc1"]["cells"]["dc1"]["weight"] == 0
    assert rows["bar"]["dc1"]["cells"]["dc1"]["vips"] == {
        "bar/dc1/127.0.1.2:18080": 0,
        "bar/dc1/127.0.1.3:18080": 1,
    }


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    bad_override = gtm("plan", "-c", ESTATE, "-o", "vanish=dc2")
    assert bad_override.returncode == 2 and "kind must be one of" in bad_override.stderr
    drain_of_nothing = gtm("plan", "-c", ESTATE, "-o", "drain=dc2")
    assert drain_of_nothing.returncode == 2
    assert "a drain names its services" in drain_of_nothing.stderr
    snap = tmp_path / "health.yaml"
    snap.write_text("regions:\n  nope/dc1: down\n  foo/dc1: sideways\n")
    bad_health = gtm("plan", "-c", ESTATE, "--health", str(snap))
    assert bad_health.returncode == 2
    assert "regions.nope/dc1: unknown service 'nope'" in bad_health.stderr
    assert "'sideways' is not up, down or unknown" in bad_health.stderr
    bad_config = gtm("plan", "-c", "tests/config/bad-port.yaml")
    assert bad_config.returncode == 2 and "70000 is not a valid port" in bad_config.stderr
