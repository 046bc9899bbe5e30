"""Config drift: a refused reload and a pair on different configs show in /v1/status,
`gtm status` and the metrics, not only in a log."""

from __future__ import annotations

from pathlib import Path

import yaml
from api_members import Gtm, Members


def as_viewer(members: Members, files: dict[str, Path]) -> list[str]:
    return ["--server", members.url("dc1-a"), "--token-file", str(files["viewer"])]


def test_a_refused_reload_and_a_pair_on_different_configs_are_shown(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    a, b = pair.members["dc1-a"], pair.members["dc1-b"]
    same = a.status().config, b.status().config
    assert same[0] is not None and same[1] is not None
    assert same[0].digest == same[1].digest  # the same estate, whatever is each member's own
    ok = gtm("status", *as_viewer(pair, token_files))
    assert ok.returncode == 0, ok.stderr
    assert "run different configs" not in ok.stdout and "reload refused" not in ok.stdout

    path = pair.config_path("dc1-b")
    good = path.read_text()
    path.write_text(good + "dns: {ttl: -5}\n")  # a duplicate key: refused whole
    assert pair.call(b.reload()) is False
    refused = b.status().config
    assert refused is not None and refused.refused_at is not None
    assert refused.digest == same[1].digest  # still running what it ran
    assert any("dns" in p for p in refused.refused)
    assert b.registry.get_sample_value("gtm_config_reload_refused") == 1.0
    assert b.registry.get_sample_value("gtm_config_reloads_total", {"result": "refused"}) == 1.0
    shown = gtm("status", *as_viewer(pair, token_files))
    assert "config of dc1-b:" in shown.stdout and "reload refused at" in shown.stdout

    changed = yaml.safe_load(good)
    changed["dns"]["ttl"] = 7
    path.write_text(yaml.safe_dump(changed, sort_keys=False))
    assert pair.call(b.reload()) is True
    now = b.status().config
    assert now is not None and now.refused_at is None and now.digest != same[0].digest
    assert b.registry.get_sample_value("gtm_config_reload_refused") == 0.0
    assert b.registry.get_sample_value("gtm_config_info", {"digest": now.digest}) == 1.0
    drift = gtm("status", *as_viewer(pair, token_files))
    assert "members of dc1 run different configs" in drift.stdout
    assert (
        f"dc1-a run {same[0].digest}" in drift.stdout and f"dc1-b run {now.digest}" in drift.stdout
    )
