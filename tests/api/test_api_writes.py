"""The operator's writes over HTTP: validation, guardrails, dry runs, the leader's address."""

from __future__ import annotations

import pytest
from api_member import FakeMember
from api_served import Api

from failover.intent import IntentState
from gtm.service.actions import Drain, Enter, Exit, Remove, Rollout
from policies import Kind


async def test_exit_is_planned_stored_and_answered(api: Api, member: FakeMember) -> None:
    status, body, _ = await api.call(
        "POST",
        "/v1/region/exit",
        json={"region": "dc2", "reason": "maintenance", "ticket": "CHG-1", "expires_in": "2h"},
    )
    assert status == 200, body
    assert body["accepted"] is True and body["dry_run"] is False
    assert body["override_ids"] == ["exit-dc2-1"]
    assert {(r["service"], r["source"]) for r in body["dns"]} == {
        (s, r) for s in ("foo", "bar") for r in ("dc1", "dc2", "dc3")
    }
    assert body["mesh"]["cluster-dc1"] == [
        "foo-dc2: Healthy True -> False (Region Exit)",
        "bar-dc2: Healthy True -> False (Region Exit)",
    ]
    assert 0.3 < body["moved_share"] < 0.4
    assert body["intent_version"] == 1
    (o,) = member.state.overrides.values()
    assert (o.kind, o.region, o.who, o.why, o.ticket) == (
        Kind.EXIT,
        "dc2",
        "alice",
        "maintenance",
        "CHG-1",
    )
    assert o.expires is not None and o.expires - o.created == 7200
    assert member.asked == [
        (Exit("dc2", "maintenance", None, "CHG-1", 7200.0, False), "alice", False)
    ]


async def test_dry_run_plans_and_changes_nothing(api: Api, member: FakeMember) -> None:
    status, body, _ = await api.call(
        "POST", "/v1/region/exit", json={"region": "dc2", "reason": "r", "dry_run": True}
    )
    assert status == 200 and body["accepted"] and body["dry_run"]
    assert body["dns"] and body["mesh"]
    assert member.state == IntentState() and member.audit == []


async def test_refused_answers_409_with_the_guardrail_and_changes_nothing(
    api: Api, member: FakeMember
) -> None:
    await api.call("POST", "/v1/region/exit", json={"region": "dc2", "reason": "first"})
    before = member.state
    status, body, _ = await api.call(
        "POST", "/v1/region/exit", json={"region": "dc3", "reason": "second"}
    )
    assert status == 409
    assert "min_active_regions" in body["error"] and "--force" in body["error"]
    assert [r["rule"] for r in body["details"]["refusals"]] == ["min_active_regions"]
    assert member.state == before
    # a refused dry run answers 409 too, with its plan
    status, body, _ = await api.call(
        "POST", "/v1/region/exit", json={"region": "dc3", "reason": "x", "dry_run": True}
    )
    assert status == 409 and body["details"]["plan"]["dry_run"] is True
    assert body["details"]["refusals"][0]["rule"] == "min_active_regions"
    assert member.state == before


async def test_force_needs_a_reason_and_then_passes(api: Api, member: FakeMember) -> None:
    await api.call("POST", "/v1/region/exit", json={"region": "dc2", "reason": "first"})
    status, body, _ = await api.call(
        "POST", "/v1/region/exit", json={"region": "dc3", "reason": "  ", "force": True}
    )
    assert status == 400 and body["details"]["fields"] == [
        {"field": "reason", "error": "must not be empty"}
    ]
    status, body, _ = await api.call(
        "POST",
        "/v1/region/exit",
        json={"region": "dc3", "reason": "dc1 alone is enough tonight", "force": True},
    )
    assert status == 200 and body["accepted"]
    assert len(member.state.overrides) == 2


@pytest.mark.parametrize(
    "data",
    [b"{", b"", b"[1, 2]", b"\xff\xfe", b"null"],
    ids=["truncated", "empty", "array", "not-utf8", "null"],
)
async def test_bad_json_is_400(api: Api, member: FakeMember, data: bytes) -> None:
    status, body, _ = await api.call("POST", "/v1/region/exit", data=data)
    assert status == 400 and body["error"].startswith("bad JSON")
    assert member.asked == []


async def test_invalid_body_lists_every_field(api: Api, member: FakeMember) -> None:
    status, body, _ = await api.call(
        "POST",
        "/v1/region/exit",
        json={
            "services": [],
            "expires_in": "soon",
            "force": "yes",
            "dry": True,
        },
    )
    assert status == 400
    fields = {f["field"]: f["error"] for f in body["details"]["fields"]}
    assert set(fields) == {"region", "reason", "services", "expires_in", "force", "dry"}
    assert fields["region"] == "Field required"
    assert fields["dry"] == "unknown field"
    assert "is not a duration" in fields["expires_in"]
    assert body["error"].startswith("invalid body: ")
    assert "expires_in:" in body["error"] and "dry: unknown field" in body["error"]
    assert member.asked == []


async def test_unknown_region_is_422_from_the_member(api: Api, member: FakeMember) -> None:
    status, body, _ = await api.call(
        "POST", "/v1/region/exit", json={"region": "dc9", "reason": "r"}
    )
    assert (status, body) == (422, {"error": "no region named 'dc9'", "details": {"region": "dc9"}})
    assert member.state == IntentState()


async def test_standby_answers_503_with_the_leader(api: Api, member: FakeMember) -> None:
    member._role = "standby"
    member.leader = {"identity": "dc1-b", "address": "http://127.0.0.1:9"}
    status, body, _ = await api.call(
        "POST", "/v1/region/exit", json={"region": "dc2", "reason": "r"}
    )
    assert status == 503
    assert body["details"] == {"leader": "dc1-b", "address": "http://127.0.0.1:9"}
    assert member.state == IntentState()


async def test_enter_drain_rollout_and_remove(api: Api, member: FakeMember) -> None:
    status, body, _ = await api.call(
        "POST", "/v1/region/exit", json={"region": "dc2", "reason": "r", "services": ["foo"]}
    )
    assert status == 200
    status, body, _ = await api.call(
        "POST",
        "/v1/region/enter",
        json={"region": "dc2", "reason": "back", "services": ["foo"], "ramp": "90s"},
    )
    assert status == 200 and body["accepted"]
    assert member.asked[-1][0] == Enter("dc2", "back", frozenset({"foo"}), 90.0, None)
    assert [o.kind for o in member.state.overrides.values()] == [Kind.ENTER]

    status, body, _ = await api.call(
        "POST", "/v1/drain", json={"region": "dc3", "services": ["bar"], "reason": "deploy"}
    )
    assert status == 200
    assert member.asked[-1][0] == Drain("dc3", frozenset({"bar"}), "deploy")
    (drain_id,) = body["override_ids"]

    status, body, _ = await api.call(
        "POST", "/v1/rollout", json={"region": "dc1", "window": 600, "reason": "canary"}
    )
    assert status == 200
    assert member.asked[-1][0] == Rollout("dc1", 600.0, "canary")

    status, body, _ = await api.call(
        "DELETE", f"/v1/overrides/{drain_id}", json={"reason": "deploy done"}
    )
    assert status == 200 and body["override_ids"] == [drain_id]
    assert member.asked[-1][0] == Remove(drain_id, "deploy done")
    assert drain_id in member.state.tombstones


async def test_drain_needs_services_and_remove_unknown_is_404(api: Api, member: FakeMember) -> None:
    status, body, _ = await api.call("POST", "/v1/drain", json={"region": "dc3", "reason": "r"})
    assert status == 400 and body["details"]["fields"] == [
        {"field": "services", "error": "Field required"}
    ]
    status, body, _ = await api.call("DELETE", "/v1/overrides/nope", json={"reason": "r"})
    assert (status, body["error"]) == (404, "no override 'nope' in force")
    status, body, _ = await api.call("DELETE", "/v1/overrides/nope")
    assert status == 400
