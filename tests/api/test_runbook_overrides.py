"""`gtm override list|show|remove`, `gtm rollout start|end` and ending a drain by naming
its service, as an operator runs them: `python -m gtm …` against a real pair."""

from __future__ import annotations

import json
import re
from pathlib import Path

from api_members import Gtm, Members, until

from policies import Kind


def as_operator(members: Members, files: dict[str, Path]) -> list[str]:
    return ["--server", members.url("dc1-a"), "--token-file", str(files["operator"])]


def _drain(gtm: Gtm, pair: Members, files: dict[str, Path]) -> str:
    r = gtm(
        "drain", "foo", "--region", "dc2", "--reason", "bad deploy", "--ticket", "INC-9",
        *as_operator(pair, files),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    found = re.search(r"accepted: override (drain-\w+)", r.stdout)
    assert found is not None, r.stdout
    return found[1]


def test_list_and_show_name_who_why_and_until(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    drain = _drain(gtm, pair, token_files)
    listed = gtm("override", "list", "--json", *as_operator(pair, token_files))
    assert listed.returncode == 0, listed.stderr
    (o,) = json.loads(listed.stdout)
    assert (o["id"], o["kind"], o["region"], o["services"], o["who"], o["ticket"]) == (
        drain, "drain", "dc2", ["foo"], "alice", "INC-9",
    )  # fmt: skip
    other = gtm("override", "list", "--region", "dc3", "--json", *as_operator(pair, token_files))
    assert other.returncode == 0 and json.loads(other.stdout) == []
    table = gtm("override", "list", *as_operator(pair, token_files))
    assert drain in table.stdout and "bad deploy" in table.stdout
    shown = gtm("override", "show", drain, *as_operator(pair, token_files))
    assert shown.returncode == 0, shown.stderr
    assert "bad deploy" in shown.stdout and "INC-9" in shown.stdout and "until: —" in shown.stdout
    missing = gtm("override", "show", "drain-nope", *as_operator(pair, token_files))
    assert missing.returncode == 2 and f"in force: {drain}" in missing.stderr


def test_remove_ends_a_drain_and_dry_run_changes_nothing(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    drain = _drain(gtm, pair, token_files)
    before = pair.intent()
    dry = gtm(
        "override",
        "remove",
        drain,
        "--reason",
        "fixed",
        "--dry-run",
        *as_operator(pair, token_files),
    )
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "plan (dry run: nothing changed)" in dry.stdout and f"ends {drain}" in dry.stdout
    assert "DNS rows once the ramp is over" not in dry.stdout  # a removal is not an enter
    assert pair.intent() == before
    r = gtm(
        "override", "remove", drain, "--reason", "fixed", "--wait", "--timeout", "30s",
        *as_operator(pair, token_files),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "converged after" in r.stdout
    intent = pair.intent()
    assert not intent.overrides and intent.tombstones[drain].why == "fixed"
    shown = gtm("override", "show", drain, *as_operator(pair, token_files))
    assert f"{drain}: ended (removed)" in shown.stdout and "fixed" in shown.stdout
    again = gtm("override", "remove", drain, "--reason", "x", *as_operator(pair, token_files))
    assert again.returncode == 2 and "no override" in again.stderr


def test_enter_naming_the_service_ends_its_drain(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    drain = _drain(gtm, pair, token_files)
    # the whole region is not exited: entering it would do nothing, so it is refused
    whole = gtm("region", "enter", "dc2", "--reason", "undo", *as_operator(pair, token_files))
    assert whole.returncode == 2, whole.stdout + whole.stderr
    assert "nothing to enter" in whole.stderr and f"{drain} (foo)" in whole.stderr
    assert pair.intent().overrides.keys() == {drain}
    r = gtm(
        "region", "enter", "dc2", "-s", "foo", "--reason", "undo", "--ramp", "0s",
        *as_operator(pair, token_files),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"ends {drain}: drain dc2 (foo)" in r.stdout
    intent = pair.intent()
    assert drain in intent.tombstones
    assert [o.kind for o in intent.overrides.values()] == [Kind.ENTER]


def test_rollout_start_and_end(gtm: Gtm, pair: Members, token_files: dict[str, Path]) -> None:
    started = gtm(
        "rollout", "start", "dc2", "--window", "30m", "--reason", "release 4.2",
        *as_operator(pair, token_files),
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    (o,) = pair.intent().overrides.values()
    assert (o.kind, o.region, o.why) == (Kind.ROLLOUT, "dc2", "release 4.2")
    assert o.expires is not None and 1790 < o.expires - o.created <= 1800
    ended = gtm("rollout", "end", "dc2", "--reason", "done", *as_operator(pair, token_files))
    assert ended.returncode == 0, ended.stdout + ended.stderr
    until(lambda: not pair.intent().overrides, what="the rollout ended")
    none = gtm("rollout", "end", "dc2", "--reason", "done", *as_operator(pair, token_files))
    assert none.returncode == 2 and "no rollout of dc2 is in force" in none.stderr


def test_rollout_dry_run_prints_the_plan_and_stores_nothing(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    before = pair.intent()
    r = gtm(
        "rollout", "start", "dc2", "--window", "10m", "--reason", "release", "--dry-run",
        *as_operator(pair, token_files),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "plan (dry run: nothing changed) — override rollout-" in r.stdout
    assert "rollout dc2 (all services)" in r.stdout
    assert pair.intent() == before and pair.history() == []
