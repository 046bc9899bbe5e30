"""The estate config: one bad-*.yaml per failure mode, each declaring the errors it must produce."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gtm.config import ConfigError, load, loads
from gtm.config.readiness import serving
from gtm.config.source import parse
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
    # bad-serve-*: what `gtm validate` checks beyond `load` (readiness.serving)
    rules = partial(serving, files=True) if path.name.startswith("bad-serve-") else None
    with pytest.raises(ConfigError) as e:
        load(path, rules=rules)
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
    assert bad.returncode == 2  # ExitCode.INPUT
    assert (
        "tests/config/bad-port.yaml:10 services[0].vips.dc1[0].port: 70000 is not a valid port"
        in bad.stderr
    )
    # its six shape problems, and dc1 lists no client CIDRs (what serve needs)
    assert "bad-shapes.yaml: 7 problem(s)" in bad.stderr


def test_validate_reports_every_problem_of_a_file_at_once() -> None:
    # shapes and the rules across sections in one run, the misshapen region dc2 still known
    out = gtm("validate", "tests/config/bad-all-at-once.yaml")
    assert "bad-all-at-once.yaml: 5 problem(s)" in out.stderr, out.stderr
    assert "unknown region 'dc2'" not in out.stderr


@pytest.mark.parametrize("name", ["bad-alias-self.yaml", "bad-alias-bomb.yaml", "bad-nesting.yaml"])
def test_validate_never_prints_a_traceback(name: str) -> None:
    out = gtm("validate", f"tests/config/{name}")
    assert out.returncode == 2  # ExitCode.INPUT
    assert "Traceback" not in out.stderr
    assert f"tests/config/{name}:" in out.stderr.splitlines()[0]


def test_validate_reads_the_token_file_as_serve_does(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("tokens:\n  - {name: alice, token: short, role: operator}\n")
    config = tmp_path / "estate.yaml"
    estate = yaml.safe_load((ROOT / "examples" / "estate.yaml").read_text())
    estate["api"]["tokens_file"] = str(tokens)
    config.write_text(yaml.safe_dump(estate))
    out = gtm("validate", str(config))
    assert out.returncode == 2  # ExitCode.INPUT
    assert f"{tokens}:2 tokens[0].token: " in out.stderr
    assert "must be at least 16 characters" in out.stderr
    tokens.unlink()
    out = gtm("validate", str(config))
    assert f"api.tokens_file: cannot read {tokens}: No such file or directory" in out.stderr
    assert gtm("validate", "--no-files", str(config)).returncode == 0


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


def test_the_c_parser_reads_configs_where_libyaml_is_installed() -> None:
    from gtm.config import source

    assert not yaml.__with_libyaml__ or source._Parser is yaml.CSafeLoader


def test_merge_keys_and_aliases_still_work() -> None:
    text = """
regions: [{name: dc1, locality: r1/z1}]
services:
  - name: foo
    fqdn: foo.example.org
    probe: &probe {kind: tcp, interval: 2s, timeout: 1s}
    vips: {dc1: [&vip {address: 10.0.0.1, port: 8443}]}
  - name: bar
    fqdn: bar.example.org
    probe: {<<: *probe, interval: 3s}
    vips: {dc1: [{<<: *vip, address: 10.0.0.2}]}
"""
    foo, bar = loads(text).config.services
    assert (bar.probe.kind, bar.probe.interval, bar.probe.timeout) == ("tcp", 3.0, 1.0)
    assert (bar.vips["dc1"][0].address, bar.vips["dc1"][0].port) == ("10.0.0.2", 8443)
    assert foo.probe.interval == 2.0


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#%@,?\n\t 1.\\e\u00e9")), max_size=80)
)
def test_any_text_is_a_source_or_a_config_error(text: str) -> None:
    try:
        parse(text, "fuzz.yaml")
    except ConfigError as e:
        assert all(p.file == "fuzz.yaml" for p in e.problems)


def test_parsing_leaves_the_garbage_collector_as_it_was() -> None:
    import gc

    loads((ROOT / "examples" / "estate.yaml").read_text())
    assert gc.isenabled()
    with pytest.raises(ConfigError):
        parse("x: &a [*a]\n")
    assert gc.isenabled()


def test_the_config_bench_runs_and_reports_the_target() -> None:
    out = gtm("bench", "config", "--services", "30")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())  # rich wraps at 80 columns
    assert "ok (3 regions, 30 services, 135 VIPs" in text
    assert "the target of 10 s and 500 MB (set for 30,000 services)" in text
