"""The runbook's reads: `gtm status`, `gtm region status`, `gtm history`, as text and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from api_members import Gtm, Members


def as_viewer(members: Members, files: dict[str, Path], identity: str = "dc1-a") -> list[str]:
    return ["--server", members.url(identity), "--token-file", str(files["viewer"])]


def exit_dc2(gtm: Gtm, members: Members, files: dict[str, Path]) -> None:
    r = gtm(
        "region", "exit", "dc2", "-s", "foo", "--reason", "maintenance", "--ticket", "CHG-7",
        "--wait", "--timeout", "20s",  # every member holds it
        "--server", members.url("dc1-a"), "--token-file", str(files["operator"]),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr


def test_status_text(gtm: Gtm, pair: Members, token_files: dict[str, Path]) -> None:
    exit_dc2(gtm, pair, token_files)
    r = gtm("status", *as_viewer(pair, token_files, "dc1-b"))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"dc1-b (standby) in dc1, epoch 1; leader dc1-a at {pair.url('dc1-a')}" in out
    assert "table generation served: 2" in out
    assert "health: vips 6 unknown; regions 6 unknown; impaired vantages: none" in out
    (exit_id,) = pair.intent().overrides
    assert f"intent version 1: {exit_id}" in out
    assert "mesh cluster-dc1" not in out  # a standby writes no WorkloadEntries
    assert "member dc1-a (leader): table generation 2; WLEs cluster-dc1 6/6" in out
    r = gtm("status", *as_viewer(pair, token_files, "dc1-a"))
    assert r.returncode == 0, r.stderr
    assert "mesh cluster-dc1: 6/6 WorkloadEntries in sync" in r.stdout
    assert "weight table, generation 2" in out and "0 exit" in out


def test_status_json(gtm: Gtm, pair: Members, token_files: dict[str, Path]) -> None:
    r = gtm("status", "--json", *as_viewer(pair, token_files))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"]["identity"] == "dc1-a" and doc["status"]["role"] == "leader"
    assert list(doc["members"]) == [pair.url("dc1-b")]
    assert doc["members"][pair.url("dc1-b")]["role"] == "standby"
    assert doc["table"]["generation"] == 1 and set(doc["table"]["rows"]) == {"foo", "bar"}


def test_region_status_and_history(gtm: Gtm, pair: Members, token_files: dict[str, Path]) -> None:
    exit_dc2(gtm, pair, token_files)
    r = gtm("region", "status", *as_viewer(pair, token_files))
    assert r.returncode == 0, r.stderr
    (exit_id,) = pair.intent().overrides
    assert "exit (foo)" in r.stdout and exit_id in r.stdout and "CHG-7" in r.stdout
    r = gtm("region", "status", "--json", *as_viewer(pair, token_files))
    doc = json.loads(r.stdout)
    assert [o["id"] for o in doc["overrides"]["overrides"]] == [exit_id]
    assert [o["id"] for o in doc["status"]["intent"]["active"]] == [exit_id]
    r = gtm("history", "--limit", "5", *as_viewer(pair, token_files))
    assert r.returncode == 0, r.stderr
    assert "accepted" in r.stdout and "maintenance" in r.stdout
    r = gtm("history", "--json", "--since", "1h", *as_viewer(pair, token_files))
    (entry,) = json.loads(r.stdout)
    assert (entry["action"], entry["who"], entry["ticket"]) == ("accepted", "alice", "CHG-7")


def test_history_pages_with_the_cursor_it_prints(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    exit_dc2(gtm, pair, token_files)
    (exit_id,) = pair.intent().overrides
    r = gtm(
        "override", "remove", exit_id, "--reason", "done",
        "--server", pair.url("dc1-a"), "--token-file", str(token_files["operator"]),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = gtm("history", "--limit", "1", *as_viewer(pair, token_files))
    assert r.returncode == 0, r.stderr
    assert "removed" in r.stdout and "accepted" not in r.stdout
    (hint,) = [line for line in r.stdout.splitlines() if line.startswith("older: ")]
    cursor = hint.split("--before ")[1]
    r = gtm("history", "--limit", "1", "--before", cursor, *as_viewer(pair, token_files))
    assert r.returncode == 0, r.stderr
    assert "accepted" in r.stdout and "removed" not in r.stdout and "older:" not in r.stdout
    r = gtm("history", "--before", "nonsense", *as_viewer(pair, token_files))
    assert r.returncode == 2 and "not a cursor" in r.stderr
