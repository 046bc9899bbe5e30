"""Every runbook dry run against a real member: the plan, exit 0 when it would pass, exit 3
with the guardrail and its numbers when it would be refused; nothing changes either way."""

from __future__ import annotations

from pathlib import Path

from api_members import Gtm, Members, until

from intent import IntentState


def as_operator(members: Members, files: dict[str, Path]) -> list[str]:
    return ["--server", members.url("dc1-a"), "--token-file", str(files["operator"])]


def unchanged(members: Members, before: IntentState, audited: int) -> bool:
    return members.intent() == before and len(members.history()) == audited


def test_region_exit_dry_run(gtm: Gtm, leader: Members, token_files: dict[str, Path]) -> None:
    r = gtm(
        "region", "exit", "dc2", "--reason", "power work", "--dry-run",
        *as_operator(leader, token_files),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "plan (dry run: nothing changed) — override exit-" in r.stdout
    assert "exit dc2 (all services)" in r.stdout
    assert "DNS rows that change (6)" in r.stdout and "dc2 1 → 0" in r.stdout
    assert "WorkloadEntry patches in cluster-dc1 (5):" in r.stdout
    assert "Healthy True -> False (Region Exit)" in r.stdout
    assert "share of DNS traffic moved: 33." in r.stdout
    assert "refused" not in r.stdout + r.stderr
    assert unchanged(leader, IntentState(), 0)


def test_region_exit_dry_run_refused(
    gtm: Gtm, leader: Members, token_files: dict[str, Path]
) -> None:
    ok = gtm("region", "exit", "dc2", "--reason", "first", *as_operator(leader, token_files))
    assert ok.returncode == 0, ok.stderr
    before = leader.intent()
    r = gtm(
        "region", "exit", "dc3", "--reason", "second", "--dry-run",
        *as_operator(leader, token_files),
    )  # fmt: skip
    assert r.returncode == 3, r.stdout + r.stderr
    assert "plan (dry run: nothing changed)" in r.stdout
    assert "refused by min_active_regions" in r.stderr
    assert "would leave 1 active region(s), below min_active_regions 2" in r.stderr
    assert "nothing changed" in r.stderr
    assert unchanged(leader, before, 1)  # a dry run is not audited
    # forced, it would pass
    r = gtm(
        "region", "exit", "dc3", "--reason", "dc1 copes", "--force", "--dry-run",
        *as_operator(leader, token_files),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert unchanged(leader, before, 1)


def test_region_enter_dry_run(gtm: Gtm, leader: Members, token_files: dict[str, Path]) -> None:
    ok = gtm(
        "region", "exit", "dc2", "-s", "foo", "--reason", "r", *as_operator(leader, token_files)
    )
    assert ok.returncode == 0, ok.stderr
    # the mesh follows DNS after the hold
    until(lambda: leader.wle_health()["foo-dc2-127-0-2-1-443"] == "False", what="the mesh exit")
    before = leader.intent()
    r = gtm(
        "region", "enter", "dc2", "-s", "foo", "--ramp", "0s", "--dry-run",
        *as_operator(leader, token_files),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "plan (dry run: nothing changed) — override enter-" in r.stdout
    assert "enter dc2 (foo)" in r.stdout
    assert "DNS rows once the ramp is over (3)" in r.stdout and "dc2 0 → 1" in r.stdout
    assert "ends exit-" in r.stdout and "DNS ramps back from" in r.stdout
    assert "Healthy False (Region Exit) -> True" in r.stdout
    assert unchanged(leader, before, 1)


def test_drain_dry_run(gtm: Gtm, leader: Members, token_files: dict[str, Path]) -> None:
    r = gtm(
        "drain", "foo", "--region", "dc3", "--reason", "bad deploy", "--dry-run",
        *as_operator(leader, token_files),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "plan (dry run: nothing changed) — override drain-" in r.stdout
    assert "DNS rows that change (3)" in r.stdout
    assert "foo-dc3-127-0-3-1-443/status" in r.stdout
    assert "Healthy True -> False (Service Drain)" in r.stdout
    assert unchanged(leader, IntentState(), 0)


def test_drain_dry_run_refused(gtm: Gtm, leader: Members, token_files: dict[str, Path]) -> None:
    ok = gtm("drain", "foo", "--region", "dc2", "--reason", "r", *as_operator(leader, token_files))
    assert ok.returncode == 0, ok.stderr
    before = leader.intent()
    r = gtm(
        "drain", "foo", "--region", "dc3", "--reason", "r", "--dry-run",
        *as_operator(leader, token_files),
    )  # fmt: skip
    assert r.returncode == 3, r.stdout + r.stderr
    assert "refused by min_active_regions" in r.stderr
    assert "below min_active_regions 2" in r.stderr
    assert unchanged(leader, before, 1)
