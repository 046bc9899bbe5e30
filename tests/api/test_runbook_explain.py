"""`gtm explain` and `gtm answer` against a real member: why, and what clients get."""

from __future__ import annotations

import json
from pathlib import Path

from api_members import Gtm, Members, until


def as_viewer(members: Members, files: dict[str, Path]) -> list[str]:
    return ["--server", members.url("dc1-a"), "--token-file", str(files["viewer"])]


def as_operator(members: Members, files: dict[str, Path]) -> list[str]:
    return ["--server", members.url("dc1-a"), "--token-file", str(files["operator"])]


def test_answer_shows_the_row_and_what_dns_really_answers(
    gtm: Gtm, leader: Members, token_files: dict[str, Path]
) -> None:
    r = gtm(
        "answer", "foo.example.com", "--subnet", "127.0.2.0/24", "--ask", "60", "--json",
        *as_viewer(leader, token_files),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert (doc["region"], doc["matched"], doc["scope"], doc["service"]) == ("dc2", True, 24, "foo")
    chances = {t["region"]: t["vips"] for t in doc["targets"]}
    assert chances == {
        "dc1": {"127.0.1.1": 0.01},
        "dc2": {"127.0.2.1": 0.98},
        "dc3": {"127.0.3.1": 0.01},
    }
    assert sum(doc["observed"].values()) == 60 and doc["observed"].get("127.0.2.1", 0) >= 50
    # a subnet no region lists gets the default row, and says so
    other = gtm("answer", "foo.example.com", "--subnet", "10.9.0.0/16", "--ask", "0",
                *as_viewer(leader, token_files))  # fmt: skip
    assert other.returncode == 0, other.stderr
    assert "row dc1 (no region's CIDRs: default" in other.stdout
    bad = gtm("answer", "nope.example.com", "--subnet", "10.9.0.0/16",
              *as_viewer(leader, token_files))  # fmt: skip
    assert bad.returncode == 2 and "no service answers 'nope.example.com'" in bad.stderr
    worse = gtm("answer", "foo.example.com", "--subnet", "10.9.0.0/99",
                *as_viewer(leader, token_files))  # fmt: skip
    assert worse.returncode == 2 and "is not a client subnet" in worse.stderr


def test_explain_names_what_each_vantage_says(
    gtm: Gtm, tmp_path: Path, token_files: dict[str, Path]
) -> None:
    with Members(tmp_path / "probing", probe_interval=0.5) as member:

        def explained() -> dict:
            r = gtm("explain", "foo", "dc2", "--json", *as_viewer(member, token_files))
            assert r.returncode == 0, r.stdout + r.stderr
            return json.loads(r.stdout)

        def failing(doc: dict) -> bool:  # nothing listens on the VIPs here
            votes = doc["vips"][0]["vantages"]
            return bool(votes) and votes[0]["fail_run"] >= 3 and doc["vips"][0]["state"] == "down"

        until(lambda: failing(explained()), within=20, what="the VIP down after fall failures")
        doc = explained()
        (vip,) = doc["vips"]
        assert vip["id"] == "foo/dc2/127.0.2.1:443" and (vip["rise"], vip["fall"]) == (2, 3)
        (vote,) = vip["vantages"]  # this member's own vantage (no peers in this estate)
        assert vote["vantage"] == "dc1" and not vote["impaired"] and vote["at"] is not None
        assert vote["state"] == "down" and vote["ok_run"] == 0
        assert doc["regions"]["dc2"]["state"] == "down" and doc["regions"]["dc2"]["up"] == 0
        text = gtm("explain", "foo", "dc2", *as_viewer(member, token_files))
        assert "vantage dc1: down" in text.stdout and "failure(s) in a row" in text.stdout
        assert "region dc2: down since" in text.stdout


def test_explain_names_the_rule_behind_each_cell(
    gtm: Gtm, leader: Members, token_files: dict[str, Path]
) -> None:
    exit_ = gtm("region", "exit", "dc2", "--reason", "power", *as_operator(leader, token_files))
    assert exit_.returncode == 0, exit_.stdout + exit_.stderr

    def explained() -> dict:
        r = gtm("explain", "foo", "dc2", "--json", *as_viewer(leader, token_files))
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(r.stdout)

    until(lambda: any(c["out"] for c in explained()["cells"]), what="dc2 out of DNS")
    doc = explained()
    out = {(c["clients_in"], c["target"]): c for c in doc["cells"]}
    cell = out[("dc1", "dc2")]
    assert (cell["weight"], cell["out"]) == (0, "Region Exit")
    assert cell["decision"] is not None and cell["decision"]["new"] == 0
    assert doc["decisions_known"] is True
    text = gtm("explain", "foo", "dc2", *as_viewer(leader, token_files))
    assert "Region Exit" in text.stdout and "cells (the weight" in text.stdout
    missing = gtm("explain", "nope", *as_viewer(leader, token_files))
    assert missing.returncode == 2 and "no service named 'nope'" in missing.stderr
