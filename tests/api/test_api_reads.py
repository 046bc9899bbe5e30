"""The API's reads over real HTTP on loopback, against a real member."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import aiohttp
import dns.message
import dns.query
from api_members import VIEWER, Api, Members, until

from gtm.api import TokenBook, make_app, serve_api
from gtm.member import MemberRuntime
from gtm.status import read_status
from intent import IntentState
from policies import WeightTable


@asynccontextmanager
async def not_started(tmp_path: Path, tokens: TokenBook) -> AsyncIterator[Api]:
    """The API of a real member that has not started yet: no table, no leader."""
    members = Members(tmp_path / "unstarted")
    runtime = MemberRuntime(str(members.write_config("dc1-a", "http://127.0.0.1:9")))
    async with serve_api(make_app(runtime, tokens), "127.0.0.1:0") as served:
        async with aiohttp.ClientSession() as session:
            yield Api(session, served.url)


async def test_healthz_and_metrics_need_no_token(api: Api) -> None:
    status, body, _ = await api.call("GET", "/healthz", token=None)
    assert (status, body) == (200, {"ok": True})
    status, text, headers = await api.call("GET", "/metrics", token=None)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert "gtm_leader_is_leader 1.0" in text  # the member's own registry
    # the API's own request metrics land in the member's registry
    assert 'gtm_api_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text


async def test_readyz_waits_for_a_table_not_for_leadership(
    tmp_path: Path, tokens: TokenBook, pair: Members
) -> None:
    async with not_started(tmp_path, tokens) as api:
        status, body, _ = await api.call("GET", "/readyz", token=None)
        assert status == 503 and body["error"].startswith("not ready")
    async with aiohttp.ClientSession() as session:
        status, body, _ = await Api(session, pair.url("dc1-b")).call("GET", "/readyz", token=None)
    assert (status, body) == (200, {"ready": True, "role": "standby"})


async def test_status_is_the_members(api: Api, leader: Members) -> None:
    status, body, _ = await api.call("GET", "/v1/status", token=VIEWER)
    assert status == 200
    assert set(body) == set(leader.status().to_json())
    s = read_status(body, "dc1-a")
    assert (s.identity, s.region, s.role) == ("dc1-a", "dc1", "leader")
    assert s.generation == leader.members["dc1-a"].table().generation  # type: ignore[union-attr]
    # what its answer processes serve, as they report it
    assert s.dns is not None and s.dns.workers == 1 and s.dns.restarts == 0
    host, port = leader.dns_listen("dc1-a").rsplit(":", 1)  # the SOA serial: the generation
    query = dns.message.make_query("example.com", "SOA")
    reply = dns.query.udp(query, host, port=int(port), timeout=2)
    assert s.dns.answering == reply.answer[0][0].serial
    assert s.dns.behind_seconds == 0.0 or s.dns.answering != s.generation


async def test_table_whole_and_filtered(api: Api, leader: Members) -> None:
    status, body, _ = await api.call("GET", "/v1/table", token=VIEWER)
    assert status == 200
    assert WeightTable.from_dict(body) == leader.members["dc1-a"].table()
    status, body, _ = await api.call("GET", "/v1/table?service=foo", token=VIEWER)
    assert status == 200 and set(body["rows"]) == {"foo"}
    status, body, _ = await api.call("GET", "/v1/table?service=foo&service=bar", token=VIEWER)
    assert set(body["rows"]) == {"foo", "bar"}
    status, body, _ = await api.call("GET", "/v1/table?service=foo,nope", token=VIEWER)
    assert status == 404 and body == {
        "error": "no service named nope",
        "details": {"services": ["nope"]},
    }
    status, body, _ = await api.call("GET", "/v1/table?sevrice=foo", token=VIEWER)
    assert status == 400 and body["details"]["fields"] == [
        {"field": "sevrice", "error": "unknown field"}
    ]


async def test_table_before_the_first_evaluation(tmp_path: Path, tokens: TokenBook) -> None:
    async with not_started(tmp_path, tokens) as api:
        status, body, _ = await api.call("GET", "/v1/table", token=VIEWER)
    assert status == 503 and body["error"] == "no table yet"


async def test_health_and_overrides(api: Api, leader: Members) -> None:
    status, body, _ = await api.call("GET", "/v1/health", token=VIEWER)
    assert status == 200 and "foo/dc1/127.0.1.1:443" in body["vips"]
    status, body, _ = await api.call(
        "POST", "/v1/region/exit", json={"region": "dc2", "reason": "maintenance"}
    )
    assert status == 200
    status, body, _ = await api.call("GET", "/v1/overrides", token=VIEWER)
    assert status == 200
    assert IntentState.from_dict(body) == leader.intent()  # a peer can merge what it reads


async def test_history_newest_first_with_limit_and_since(api: Api) -> None:
    for region in ("dc2", "dc3"):  # the second is refused: min_active_regions 2
        await api.call("POST", "/v1/region/exit", json={"region": region, "reason": "r"})
    status, body, _ = await api.call("GET", "/v1/history", token=VIEWER)
    assert status == 200
    assert [e["action"] for e in body["entries"]] == ["refused", "accepted"]
    assert body["entries"][0]["rule"] == "min_active_regions"
    status, body, _ = await api.call("GET", "/v1/history?limit=1", token=VIEWER)
    assert [e["action"] for e in body["entries"]] == ["refused"] and body["next"]
    cursor = quote(body["next"])
    status, older, _ = await api.call("GET", f"/v1/history?limit=1&before={cursor}", token=VIEWER)
    assert [e["action"] for e in older["entries"]] == ["accepted"]
    status, body, _ = await api.call("GET", "/v1/history?before=nonsense", token=VIEWER)
    assert status == 400 and "not a cursor" in body["error"]
    status, body, _ = await api.call("GET", "/v1/history?since=4e9", token=VIEWER)
    assert body["entries"] == []
    status, body, _ = await api.call("GET", "/v1/history?limit=0&since=x", token=VIEWER)
    assert status == 400
    assert [f["field"] for f in body["details"]["fields"]] == ["limit", "since"]


async def test_observations_by_cursor(tmp_path: Path) -> None:
    with Members(tmp_path / "probing", probe_interval=0.1) as probing:  # every probe fails
        member = probing.members["dc1-a"]
        until(lambda: member.observations(0, 10)[1] >= 5, what="five probe results")
        async with aiohttp.ClientSession() as session:
            api = Api(session, probing.url("dc1-a"))
            status, body, _ = await api.call(
                "GET", "/v1/observations?since=0&limit=2", token=VIEWER
            )
            assert status == 200
            assert body == {"observations": member.observations(0, 2)[0], "next": 2}
            status, body, _ = await api.call("GET", "/v1/observations?since=2", token=VIEWER)
            n = len(body["observations"])
            assert n >= 3 and body["next"] == 2 + n
            assert body["observations"] == member.observations(2, n)[0]
            row = body["observations"][0]  # [target_id, ok, latency, wall, reason]
            assert row[0].startswith(("foo/", "bar/")) and row[1] is False
            status, body, _ = await api.call(
                "GET", "/v1/observations?since=-1&limit=20000", token=VIEWER
            )
            rows, _ = member.observations(0, 20000)
            assert body["observations"][:5] == rows[:5]  # -1: from the oldest kept
            assert body["next"] >= 5
            status, body, _ = await api.call("GET", "/v1/observations?since=-2", token=VIEWER)
            assert status == 400 and body["details"]["fields"][0]["field"] == "since"


async def test_plan_is_a_what_if_that_changes_nothing(api: Api, leader: Members) -> None:
    before = leader.members["dc1-a"].table()
    status, body, _ = await api.call(
        "POST", "/v1/plan", token=VIEWER, json={"overrides": ["exit=dc2:foo"]}
    )
    assert status == 200, body
    assert body["base_generation"] == 1 and body["generation"] == 2 and body["changed"]
    assert {(r["service"], r["source"]) for r in body["rows"]} == {
        ("foo", "dc1"),
        ("foo", "dc2"),
        ("foo", "dc3"),
    }
    row = next(r for r in body["rows"] if r["source"] == "dc1")
    assert row["old"]["cells"]["dc2"]["weight"] == 1
    assert row["new"]["cells"]["dc2"] == {
        "weight": 0,
        "vips": {"foo/dc2/127.0.2.1:443": 0},
        "out": "Region Exit",
    }
    assert any(d["rule"] == "exit" and d["service"] == "foo" for d in body["decisions"])
    assert body["refusals"] == [] and body["admitted"] == ["what-if-0"]
    assert leader.members["dc1-a"].table() is before
    assert leader.intent() == IntentState() and leader.history() == []


async def test_plan_shows_refusals_and_force(api: Api) -> None:
    status, body, _ = await api.call(
        "POST", "/v1/plan", token=VIEWER, json={"overrides": ["exit=dc2", "exit=dc3"]}
    )
    assert status == 200
    assert [(r["override_id"], r["rule"]) for r in body["refusals"]] == [
        ("what-if-1", "min_active_regions")
    ]
    status, body, _ = await api.call(
        "POST",
        "/v1/plan",
        token=VIEWER,
        json={"overrides": ["exit=dc2", "exit=dc3"], "force": True},
    )
    assert body["refusals"] == [] and body["forced"] == ["what-if-1"]


async def test_plan_bad_specs_are_listed(api: Api) -> None:
    status, body, _ = await api.call(
        "POST", "/v1/plan", token=VIEWER, json={"overrides": ["exit=dc2", "boom=dc1", "drain=dc1"]}
    )
    assert status == 400
    fields = body["details"]["fields"]
    assert [f["field"] for f in fields] == ["overrides.1", "overrides.2"]
    assert "the kind must be one of" in fields[0]["error"]
    assert "a drain names its services" in fields[1]["error"]


async def test_unknown_route_and_method(api: Api) -> None:
    status, body, _ = await api.call("GET", "/v1/nope", token=VIEWER)
    assert (status, body) == (404, {"error": "no route GET /v1/nope", "details": None})
    status, body, headers = await api.call("PUT", "/v1/status", token=VIEWER)
    assert status == 405 and body["error"] == "PUT is not allowed on /v1/status"
    assert "GET" in headers["Allow"]
