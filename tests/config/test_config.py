"""The estate config: one bad-*.yaml per failure mode, each declaring the errors it must produce."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gtm.config import ConfigError, load, loads
from policies import Bounds, Redistribute

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
BAD = sorted(HERE.glob("bad-*.yaml"))


def expectations(path: Path) -> list[str]:
    return re.findall(r"^# expect: (.+)$", path.read_text(), re.MULTILINE)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_file_reports_every_expected_error(path: Path) -> None:
    wanted = expectations(path)
    assert wanted, f"{path.name} declares no '# expect:' lines"
    with pytest.raises(ConfigError) as e:
        load(path)
    lines = [str(p).replace(str(path), path.name) for p in e.value.problems]
    for w in wanted:
        assert any(line.startswith(w) for line in lines), f"{w!r} not in:\n" + "\n".join(lines)


def test_example_estate_is_valid_and_resolved() -> None:
    inv = load(ROOT / "examples" / "estate.yaml")
    est = inv.estate
    assert est.regions == ("dc1", "dc2", "dc3")
    assert len(est.services) >= 5
    pay = est.service("pay")
    assert pay.policy.split["dc3"] == {"dc1": 5, "dc2": 5, "dc3": 90}
    assert pay.policy.redistribute is Redistribute.PRIORITY
    assert pay.policy.bounds["dc1"]["dc2"] == Bounds(1, 100)
    foo = est.service("foo")
    assert foo.policy.split["dc1"] == {"dc1": 98, "dc2": 1, "dc3": 1}
    assert foo.policy.ramp == 120.0
    assert foo.vips["dc2"][0].id == "foo/dc2/127.0.2.1:18080"
    assert inv.zones() == ["example.com"]


def test_defaults_make_a_minimal_file_work() -> None:
    inv = loads(
        """
regions:
  - {name: dc1, locality: r1/z1}
  - {name: dc2, locality: r2/z1}
  - {name: dc3, locality: r3/z1}
services:
  - {name: foo, fqdn: foo.example.org, vips: {dc1: [{address: 10.0.0.1}]}}
"""
    )
    assert inv.estate.service("foo").policy.total == 100
    assert inv.config.services[0].probe.interval == 5.0
    assert inv.zones() == ["example.org"]


@pytest.mark.parametrize(
    ("value", "seconds"), [("5s", 5.0), ("1m30s", 90.0), ("250ms", 0.25), ("2h", 7200.0), (3, 3.0)]
)
def test_durations(value: object, seconds: float) -> None:
    inv = loads(
        f"""
regions: [{{name: dc1, locality: r1/z1}}]
services: [{{name: foo, fqdn: foo.example.org, probe: {{interval: {value}, timeout: 0.1}}, vips: {{dc1: [{{address: 10.0.0.1}}]}}}}]
"""
    )
    assert inv.config.services[0].probe.interval == seconds


def test_bad_duration_names_the_value() -> None:
    with pytest.raises(ConfigError, match=r"'5 parsecs' is not a duration"):
        loads(
            """
regions: [{name: dc1, locality: r1/z1}]
services: [{name: foo, fqdn: foo.example.org, probe: {interval: 5 parsecs}, vips: {dc1: [{address: 10.0.0.1}]}}]
"""
        )


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "nope.yaml")


def gtm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gtm", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_validate_command_exit_codes_and_messages() -> None:
    ok = gtm("validate", "examples/estate.yaml")
    assert ok.returncode == 0, ok.stderr
    assert "ok (3 regions, 6 services" in ok.stdout
    bad = gtm("validate", "tests/config/bad-shapes.yaml", "tests/config/bad-port.yaml")
    assert bad.returncode == 1
    assert (
        "tests/config/bad-port.yaml:10 services[0].vips.dc1[0].port: 70000 is not a valid port"
        in bad.stderr
    )
    assert "bad-shapes.yaml: 6 problem(s)" in bad.stderr


def test_a_config_dumped_with_its_defaults_loads_again() -> None:
    inv = load(ROOT / "examples" / "estate.yaml")
    again = loads(yaml.safe_dump(inv.config.model_dump(mode="json")), "dumped.yaml")
    assert again.estate == inv.estate


def test_a_setting_of_another_probe_kind_is_still_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"services\[0\]\.probe\.body: not a setting of a tcp probe"
    ):
        loads(
            """
regions: [{name: dc1, locality: r1/z1}]
services: [{name: foo, fqdn: foo.example.org, probe: {kind: tcp, body: ok}, vips: {dc1: [{address: 10.0.0.1}]}}]
"""
        )
