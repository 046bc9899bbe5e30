"""The alert rules and the dashboard: promtool checks and unit-tests the rules (Debian's
`prometheus`), and every metric they use is one a running member serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "gtm-rules.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "gtm-rules.test.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "gtm-dashboard.json"
PROMTOOL = shutil.which("promtool")
sys.path.append(
    str(ROOT / "tests" / "api")
)  # `api_members`: real members, as the API tests run them

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus)")


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    r = subprocess.run(
        [PROMTOOL or "", "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


@needs_promtool
def test_every_alert_has_a_unit_test_and_they_pass() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {c["alertname"] for t in tests for c in t.get("alert_rule_test", [])}
    assert alerts == tested
    r = subprocess.run(
        [PROMTOOL or "", "test", "rules", RULE_TESTS.name],
        capture_output=True, text=True, cwd=RULE_TESTS.parent,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def _used() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dash = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dash["panels"] for t in p["targets"]]
    return {m for e in exprs for m in re.findall(r"\bgtm_[a-z_]+", e)}


async def test_every_metric_the_rules_and_dashboard_use_is_served(tmp_path: Path) -> None:
    from api_members import Members

    with Members(tmp_path / "m", powerdns="http://127.0.0.1:9") as members:  # every room
        async with aiohttp.ClientSession() as session:
            async with session.get(members.url("dc1-a") + "/metrics") as r:
                text = await r.text()
    served = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for family in text_string_to_metric_families(text):
        served |= {family.name} | {family.name + x for x in suffixes.get(family.type, ())}
    missing = sorted(_used() - served)
    assert not missing, f"used by the rules or the dashboard, served by no member: {missing}"
