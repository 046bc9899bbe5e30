"""The runbook's writes as an operator runs them: `python -m gtm …` against a real pair."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from api_members import Gtm, Members

from intent import IntentState
from policies import Kind


def as_operator(members: Members, files: dict[str, Path], identity: str = "dc1-a") -> list[str]:
    return ["--server", members.url(identity), "--token-file", str(files["operator"])]


def test_exit_prints_the_plan_and_stores_the_override(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    r = gtm(
        "region", "exit", "dc2", "--reason", "power work", "--ticket", "CHG-1",
        "--expires", "2h", *as_operator(pair, token_files),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    accepted = re.search(r"accepted: override (exit-\w+)", r.stdout)
    assert accepted is not None, r.stdout
    assert "DNS rows that change (6)" in r.stdout
    assert "dc2 1 → 0" in r.stdout
    assert "WorkloadEntry patches in cluster-dc1 (5):" in r.stdout  # the head, 4 patches
    assert "foo-dc2-127-0-2-1-443/status (rv" in r.stdout
    assert "Healthy True -> False (Region Exit)" in r.stdout
    assert "share of DNS traffic moved: 33." in r.stdout
    (o,) = pair.intent().overrides.values()
    assert (o.id, o.kind, o.region, o.who, o.why, o.ticket) == (
        accepted[1],
        Kind.EXIT,
        "dc2",
        "alice",
        "power work",
        "CHG-1",
    )


def test_refused_exits_3_with_the_guardrail_and_changes_nothing(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    ok = gtm("region", "exit", "dc2", "--reason", "first", *as_operator(pair, token_files))
    assert ok.returncode == 0, ok.stderr
    before = pair.intent()
    r = gtm("region", "exit", "dc3", "--reason", "second", *as_operator(pair, token_files))
    assert r.returncode == 3, r.stdout + r.stderr
    assert "refused by min_active_regions" in r.stderr
    assert "would leave 1 active region(s), below min_active_regions 2" in r.stderr
    assert "nothing changed" in r.stderr
    assert pair.intent() == before
    forced = gtm(
        "region", "exit", "dc3", "--reason", "dc1 copes", "--force", *as_operator(pair, token_files)
    )
    assert forced.returncode == 0, forced.stderr
    assert len(pair.intent().overrides) == 2


def test_a_standby_sends_the_write_to_the_leader(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    r = gtm("region", "exit", "dc2", "--reason", "r", *as_operator(pair, token_files, "dc1-b"))
    assert r.returncode == 0, r.stderr
    assert f"is not the leader: asking dc1-a at {pair.url('dc1-a')}" in r.stderr
    standby = pair.members["dc1-b"].registry
    asked = {"method": "POST", "route": "/v1/region/exit", "status": "503"}
    assert standby.get_sample_value("gtm_api_requests_total", asked) == 1.0
    assert len(pair.intent().overrides) == 1


def test_a_write_before_any_leader_is_elected_asks_again(
    tmp_path: Path, token_files: dict[str, Path]
) -> None:
    """The lease is held by a member with no address yet: there is no leader to ask."""
    lease = {"duration": 30.0, "renew_deadline": 20.0, "retry_period": 0.2}
    with Members(tmp_path / "unelected", lease=lease, held_by="dc1-z") as members:
        assert members.holder is not None
        cli = subprocess.Popen(
            [sys.executable, "-m", "gtm", "region", "exit", "dc2", "--reason", "r",
             *as_operator(members, token_files)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert cli.stderr is not None
        lines = [cli.stderr.readline() for _ in range(2)]
        assert all("no leader yet; asking again" in line for line in lines), lines
        members.call(members.holder.release())  # the holder goes: dc1-a takes the lease
        out, err = cli.communicate(timeout=30)
        assert cli.returncode == 0, out + err
        assert sum(line.count("no leader yet; asking again") for line in [*lines, err]) == 2
        assert len(members.intent().overrides) == 1


def test_bad_input_and_credentials_exit_2_server_trouble_1(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    r = gtm("region", "exit", "dc9", "--reason", "r", *as_operator(pair, token_files))
    assert r.returncode == 2 and "error: no region named 'dc9'" in r.stderr
    r = gtm(
        "region", "exit", "dc2", "--reason", "r", "--server", pair.url("dc1-a"),
        "--token-file", str(token_files["viewer"]),
    )  # fmt: skip
    assert r.returncode == 2 and "has role viewer; this needs operator" in r.stderr
    r = gtm("region", "exit", "dc2", "--reason", "r", "--server", pair.url("dc1-a"))
    assert r.returncode == 2 and "no token for" in r.stderr and "GTM_TOKEN_FILE" in r.stderr
    r = gtm("region", "exit", "dc2", "--reason", "r", "--expires", "soon")
    assert r.returncode == 2 and "'soon' is not a duration" in r.stderr
    r = gtm(
        "region", "exit", "dc2", "--reason", "r", "--server", "http://127.0.0.1:9",
        "--token-file", str(token_files["operator"]),
    )  # fmt: skip
    assert r.returncode == 1 and "cannot reach http://127.0.0.1:9" in r.stderr
    assert pair.intent() == IntentState()
