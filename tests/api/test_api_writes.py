"""The operator's writes over HTTP, against a real member: validation, guardrails, dry runs,
the leader's address."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from api_members import Api, Members

from chaos.kubesim import Faults
from intent import IntentState
from policies import Kind


def nothing_changed(members: Members) -> bool:
    """No intent stored and nothing audited: the action never reached the store."""
    return members.intent() == IntentState() and members.history() == []


async def test_exit_is_planned_stored_and_answered(api: Api, leader: Members) -> None:
    status, body, _ = await api.call(
        "POST",
        "/v1/region/exit",
        json={"region": "dc2", "reason": "maintenance", "ticket": "CHG-1", "expires_in": "2h"},
    )
    assert status == 200, body
    assert body["accepted"] is True and body["dry_run"] is False
    (oid,) = body["override_ids"]
    assert oid.startswith("exit-")
    assert {(r["service"], r["source"]) for r in body["dns"]} == {
        (s, r) for s in ("foo", "bar") for r in ("dc1", "dc2", "dc3")
    }
    lines = body["mesh"]["cluster-dc1"]
    # dc2's WLEs out, the local ones take their weight
    assert "4 patches; 2/6 WorkloadEntries in sync; 2 unhealthy after (2 taken out)" in lines[0]
    assert sum("weight 98 -> 99" in line for line in lines) == 2
    for wle in ("foo-dc2-127-0-2-1-443/status", "bar-dc2-127-0-2-2-443/status"):
        assert any(wle in line and "Healthy True -> False (Region Exit)" in line for line in lines)
    assert 0.3 < body["moved_share"] < 0.4
    checks = {c["rule"]: c for c in body["checks"]}
    assert checks["max_traffic_share"]["passed"] and checks["max_traffic_share"]["limit"] == 0.4
    assert checks["max_unhealthy_share"]["changed"] == 2  # of the cluster's 6 WLEs
    assert checks["min_active_regions"]["passed"] and body["refusals"] == []
    assert body["intent_version"] == 1
    (o,) = leader.intent().overrides.values()
    assert (o.id, o.kind, o.region, o.who, o.why, o.ticket, o.services, o.force) == (
        oid,
        Kind.EXIT,
        "dc2",
        "alice",
        "maintenance",
        "CHG-1",
        None,
        False,
    )
    assert o.expires is not None and o.expires - o.created == 7200


async def test_dry_run_plans_and_changes_nothing(api: Api, leader: Members) -> None:
    status, body, _ = await api.call(
        "POST", "/v1/region/exit", json={"region": "dc2", "reason": "r", "dry_run": True}
    )
    assert status == 200 and body["accepted"] and body["dry_run"]
    assert body["dns"] and body["mesh"]
    assert nothing_changed(leader)


async def test_refused_answers_409_with_the_guardrail_and_changes_nothing(
    api: Api, leader: Members
) -> None:
    await api.call("POST", "/v1/region/exit", json={"region": "dc2", "reason": "first"})
    before = leader.intent()
    status, body, _ = await api.call(
        "POST", "/v1/region/exit", json={"region": "dc3", "reason": "second"}
    )
    assert status == 409
    assert "min_active_regions" in body["error"] and "--force" in body["error"]
    # both guardrails it breaks, each with its numbers at the tightest service (the first)
    refusals = body["details"]["refusals"]
    assert [r["rule"] for r in refusals] == ["min_active_regions", "max_concurrent_exits"]
    assert [(r["changed"], r["limit"], r["where"]) for r in refusals] == [
        (1, 2, "foo"),
        (2, 1, "foo"),
    ]
    assert leader.intent() == before
    # a refused dry run answers 409 too, with its plan
    status, body, _ = await api.call(
        "POST", "/v1/region/exit", json={"region": "dc3", "reason": "x", "dry_run": True}
    )
    assert status == 409 and body["details"]["plan"]["dry_run"] is True
    assert body["details"]["refusals"][0]["rule"] == "min_active_regions"
    assert leader.intent() == before
    assert [e.action.value for e in leader.history()] == ["refused", "accepted"]  # not the dry run


async def test_force_needs_a_reason_and_then_passes(api: Api, leader: Members) -> None:
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
    assert len(leader.intent().overrides) == 2


@pytest.mark.parametrize(
    "data",
    [b"{", b"", b"[1, 2]", b"\xff\xfe", b"null"],
    ids=["truncated", "empty", "array", "not-utf8", "null"],
)
async def test_bad_json_is_400(api: Api, leader: Members, data: bytes) -> None:
    status, body, _ = await api.call("POST", "/v1/region/exit", data=data)
    assert status == 400 and body["error"].startswith("bad JSON")
    assert nothing_changed(leader)


async def test_invalid_body_lists_every_field(api: Api, leader: Members) -> None:
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
    assert nothing_changed(leader)


async def test_unknown_region_is_422_from_the_member(api: Api, leader: Members) -> None:
    status, body, _ = await api.call(
        "POST", "/v1/region/exit", json={"region": "dc9", "reason": "r"}
    )
    assert (status, body) == (
        422,
        {"error": "no region named 'dc9'", "details": {"regions": ["dc1", "dc2", "dc3"]}},
    )
    assert nothing_changed(leader)


async def test_standby_answers_503_with_the_leader(pair: Members) -> None:
    async with aiohttp.ClientSession() as session:
        api = Api(session, pair.url("dc1-b"))
        status, body, _ = await api.call(
            "POST", "/v1/region/exit", json={"region": "dc2", "reason": "r"}
        )
    assert status == 503
    assert body["details"] == {"leader": "dc1-a", "address": pair.url("dc1-a")}
    assert nothing_changed(pair)


async def test_enter_drain_rollout_and_remove(api: Api, leader: Members) -> None:
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
    (enter,) = leader.intent().overrides.values()
    assert (enter.kind, enter.region, enter.why, enter.services, enter.ramp, enter.ticket) == (
        Kind.ENTER,
        "dc2",
        "back",
        frozenset({"foo"}),
        90.0,
        None,
    )

    status, body, _ = await api.call(
        "POST", "/v1/drain", json={"region": "dc3", "services": ["bar"], "reason": "deploy"}
    )
    assert status == 200
    (drain_id,) = body["override_ids"]
    drain = leader.intent().overrides[drain_id]
    assert (drain.kind, drain.region, drain.services, drain.why) == (
        Kind.DRAIN,
        "dc3",
        frozenset({"bar"}),
        "deploy",
    )

    status, body, _ = await api.call(
        "POST", "/v1/rollout", json={"region": "dc1", "window": 600, "reason": "canary"}
    )
    assert status == 200
    (rollout_id,) = body["override_ids"]
    rollout = leader.intent().overrides[rollout_id]
    assert (rollout.kind, rollout.region, rollout.why, rollout.services) == (
        Kind.ROLLOUT,
        "dc1",
        "canary",
        None,
    )
    assert rollout.expires is not None and rollout.expires - rollout.created == 600

    status, body, _ = await api.call(
        "DELETE", f"/v1/overrides/{drain_id}", json={"reason": "deploy done"}
    )
    assert status == 200 and body["override_ids"] == [drain_id]
    state = leader.intent()
    assert drain_id in state.tombstones and drain_id not in state.overrides


async def test_drain_needs_services_and_remove_unknown_is_404(api: Api) -> None:
    status, body, _ = await api.call("POST", "/v1/drain", json={"region": "dc3", "reason": "r"})
    assert status == 400 and body["details"]["fields"] == [
        {"field": "services", "error": "Field required"}
    ]
    status, body, _ = await api.call("DELETE", "/v1/overrides/nope", json={"reason": "r"})
    assert (status, body["error"]) == (404, "no override 'nope' in force")
    status, body, _ = await api.call("DELETE", "/v1/overrides/nope")
    assert status == 400


async def test_an_action_planned_while_the_config_reloads_is_still_answered(
    api: Api, leader: Members
) -> None:
    """A reload restarts the leader's term (new reconcilers): an action whose mesh plan is
    listing the WorkloadEntries right then finishes with the old ones (it answered 500)."""
    assert leader.sim is not None
    member = leader.members["dc1-a"]
    leader.sim.faults.set(Faults(latency=3.0, verbs=("list",)))  # listing the WLEs is slow
    assert await asyncio.to_thread(leader.call, member.reload())  # a new term: caches list
    await asyncio.sleep(0.1)
    body = {"region": "dc2", "reason": "r"}
    acting = asyncio.create_task(api.call("POST", "/v1/region/exit", json=body))
    await asyncio.sleep(0.2)  # its plan lists (the new caches are not synced yet) ...
    assert await asyncio.to_thread(leader.call, member.reload())  # ... as the term ends
    status, answer, _ = await acting
    leader.sim.faults.set(Faults())
    assert status == 200 and answer["accepted"], answer
    assert [o.kind for o in leader.intent().overrides.values()] == [Kind.EXIT]
