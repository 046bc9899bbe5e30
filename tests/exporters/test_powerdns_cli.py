"""`gtm publish`: prints the plan, applies it unless --dry-run, exit codes that say why."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from click.testing import CliRunner

from gtm.cli.publish import publish

if TYPE_CHECKING:
    from conftest import PdnsServer


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "estate.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(publish, list(args))
    return result.exit_code, result.output


def zones(pdns: PdnsServer) -> list[str]:
    return [z["name"] for z in pdns.api("GET", "/zones")]


def test_dry_run_prints_the_plan_and_changes_nothing(
    pdns: PdnsServer, tmp_path: Path, estate_text: Callable[[str], str]
) -> None:
    code, out = run("-c", config(tmp_path, estate_text(pdns.api_url)), "--dry-run")
    assert code == 0, out
    assert "publish generation 1 (serving nothing)" in out
    assert "zone example.com.: missing; create it (Native, SOA and NS ns1.example.com., " in out
    assert "+ create  foo.example.com. LUA ttl 30" in out
    assert "dry run: nothing changed" in out
    assert zones(pdns) == []


def test_publish_applies_then_finds_nothing_to_do(
    pdns: PdnsServer,
    tmp_path: Path,
    estate_text: Callable[[str], str],
    dig: Callable[..., list[str]],
) -> None:
    path = config(tmp_path, estate_text(pdns.api_url))
    code, out = run("-c", path)
    assert code == 0, out
    assert "published generation 1: 5 rrset(s) written; created zone(s) example.com." in out
    assert dig("TXT", "_gtm-generation.example.com") == ['"1"']
    code, out = run("-c", path)
    assert code == 0, out
    assert "generation 1 already published: nothing written" in out


def test_a_region_exit_needs_force_past_the_blast_radius(
    pdns: PdnsServer,
    tmp_path: Path,
    estate_text: Callable[[str], str],
    dig: Callable[..., list[str]],
) -> None:
    path = config(tmp_path, estate_text(pdns.api_url))
    assert run("-c", path)[0] == 0
    code, out = run("-c", path, "-o", "exit=dc2", "--dry-run")
    assert code == 3, out  # ExitCode.REFUSED
    assert "5 of 5 existing gtm rrset(s) change (100%), limit 30%: REFUSED unless forced" in out
    code, out = run("-c", path, "-o", "exit=dc2")
    assert code == 3, out  # ExitCode.REFUSED
    assert "refused: plan changes 5 of 5 existing gtm records (100%)" in out
    assert dig("TXT", "_gtm-generation.example.com") == ['"1"']
    code, out = run("-c", path, "-o", "exit=dc2", "--force")
    assert code == 0, out
    assert "published generation 2" in out
    assert dig("TXT", "_gtm-generation.example.com") == ['"2"']
    answers = {a for _ in range(20) for a in dig("+subnet=127.0.2.0/24", "foo.example.com")}
    assert answers and "127.0.2.1" not in answers


def test_a_config_without_powerdns_is_a_config_error(
    tmp_path: Path, estate_text: Callable[[str], str]
) -> None:
    text = "\n".join(line for line in estate_text("x").splitlines() if "powerdns" not in line)
    code, out = run("-c", config(tmp_path, text))
    assert code == 2
    assert "dns.powerdns is not set" in out


def test_an_unreachable_powerdns_exits_1_after_the_retries(
    tmp_path: Path, estate_text: Callable[[str], str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    text = estate_text(f"http://127.0.0.1:{port}")
    code, out = run("-c", config(tmp_path, text), "--dry-run")
    assert code == 1
    assert "cannot read the zones: PowerDNS GET /zones/example.com.: no response" in out
