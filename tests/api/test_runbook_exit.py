"""The runbook's writes as an operator runs them: `python -m gtm …` against a served pair."""

from __future__ import annotations

from pathlib import Path

from api_served import Gtm, Members

from failover.intent import IntentState
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
    assert "accepted: override exit-dc2-1" in r.stdout
    assert "DNS rows that change (6)" in r.stdout
    assert "dc2 1 → 0" in r.stdout
    assert "WorkloadEntry patches in cluster-dc1 (2):" in r.stdout
    assert "foo-dc2: Healthy True -> False (Region Exit)" in r.stdout
    assert "share of DNS traffic moved: 33." in r.stdout
    (o,) = pair.members["dc1-a"].state.overrides.values()
    assert (o.kind, o.region, o.who, o.why, o.ticket) == (
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
    leader = pair.members["dc1-a"]
    before = leader.state
    r = gtm("region", "exit", "dc3", "--reason", "second", *as_operator(pair, token_files))
    assert r.returncode == 3, r.stdout + r.stderr
    assert "refused by min_active_regions" in r.stderr
    assert "would leave 1 active region(s), below min_active_regions 2" in r.stderr
    assert "nothing changed" in r.stderr
    assert leader.state == before
    forced = gtm(
        "region", "exit", "dc3", "--reason", "dc1 copes", "--force", *as_operator(pair, token_files)
    )
    assert forced.returncode == 0, forced.stderr
    assert len(leader.state.overrides) == 2


def test_dry_run_prints_the_plan_and_changes_nothing(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    r = gtm(
        "drain", "foo", "--region", "dc3", "--reason", "bad deploy", "--dry-run",
        *as_operator(pair, token_files),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "plan (dry run: nothing changed)" in r.stdout
    assert "DNS rows that change (3)" in r.stdout
    assert "foo-dc3: Healthy True -> False (Service Drain)" in r.stdout
    leader = pair.members["dc1-a"]
    assert leader.state == IntentState() and leader.audit == []
    assert leader.asked[-1][2] is True  # asked as a dry run


def test_a_standby_sends_the_write_to_the_leader(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    r = gtm("region", "exit", "dc2", "--reason", "r", *as_operator(pair, token_files, "dc1-b"))
    assert r.returncode == 0, r.stderr
    assert f"is not the leader: asking dc1-a at {pair.url('dc1-a')}" in r.stderr
    assert len(pair.members["dc1-b"].asked) == 1
    assert len(pair.members["dc1-a"].state.overrides) == 1


def test_a_write_before_any_leader_is_elected_asks_again(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    pair.members["dc1-a"].unelected = 2
    r = gtm("region", "exit", "dc2", "--reason", "r", *as_operator(pair, token_files, "dc1-a"))
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("no leader yet; asking again") == 2
    assert len(pair.members["dc1-a"].state.overrides) == 1


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
    assert r.returncode == 2 and "no token: pass --token-file or set GTM_TOKEN" in r.stderr
    r = gtm("region", "exit", "dc2", "--reason", "r", "--expires", "soon")
    assert r.returncode == 2 and "'soon' is not a duration" in r.stderr
    r = gtm(
        "region", "exit", "dc2", "--reason", "r", "--server", "http://127.0.0.1:9",
        "--token-file", str(token_files["operator"]),
    )  # fmt: skip
    assert r.returncode == 1 and "cannot reach http://127.0.0.1:9" in r.stderr
    assert pair.members["dc1-a"].state == IntentState()
