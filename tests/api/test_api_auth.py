"""Who may do what: the token matrix over every route, and tokens kept out of logs."""

from __future__ import annotations

import logging

import pytest
import structlog
from api_members import OPERATOR, PEER, VIEWER, Api, Members

from gtm.api import ROUTES
from intent import IntentState

QUERIES = {"/v1/explain": "?service=foo", "/v1/answer": "?name=foo.example.com&subnet=127.0.2.0/24"}
OPEN = [(m, p) for m, p, _, role in ROUTES if role is None]
PEER_READS = [(m, p) for m, p, _, role in ROUTES if role == "peer"]
READS = [(m, p + QUERIES.get(p, "")) for m, p, _, role in ROUTES if role == "viewer"]
WRITES = [(m, p.replace("{id}", "exit-dc2-1")) for m, p, _, role in ROUTES if role == "operator"]
BODIES = {
    "/v1/plan": {"overrides": ["exit=dc2"]},
    "/v1/region/exit": {"region": "dc2", "reason": "r"},
    "/v1/region/enter": {"region": "dc2", "reason": "r"},
    "/v1/drain": {"region": "dc2", "services": ["foo"], "reason": "r"},
    "/v1/rollout": {"region": "dc2", "window": 60, "reason": "r"},
    "/v1/overrides/exit-dc2-1": {"reason": "r"},
}
UNKNOWN = "unknown-token-0123456789abcdef"


def test_every_route_is_in_the_matrix() -> None:
    assert len(OPEN) == 4 and len(PEER_READS) == 3 and len(READS) == 6 and len(WRITES) == 5
    assert {p for _, p in OPEN} == {"/healthz", "/readyz", "/metrics", "/v1/openapi.json"}
    assert {p for _, p in PEER_READS} == {"/v1/status", "/v1/overrides", "/v1/observations"}


@pytest.mark.parametrize(("method", "path"), PEER_READS + READS + WRITES + [("GET", "/v1/nope")])
@pytest.mark.parametrize("token", [None, UNKNOWN, "Basic abc"], ids=["none", "unknown", "basic"])
async def test_no_or_unknown_token_is_401(
    api: Api, leader: Members, method: str, path: str, token: str | None
) -> None:
    headers = {}
    if token == "Basic abc":
        headers["Authorization"] = token
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with api.session.request(
        method, api.url + path, json=BODIES.get(path), headers=headers
    ) as r:
        body = await r.json()
        assert r.status == 401, body
        assert r.headers["WWW-Authenticate"].startswith('Bearer realm="gtm"')
        assert body["error"] in (
            "no token: send 'Authorization: Bearer <token>'",
            "unknown token",
            "malformed Authorization header: expected 'Bearer <token>'",
        )
    assert leader.intent() == IntentState() and leader.history() == []


@pytest.mark.parametrize(("method", "path"), WRITES)
async def test_viewer_token_on_a_write_is_403_and_changes_nothing(
    api: Api, leader: Members, method: str, path: str
) -> None:
    status, body, _ = await api.call(method, path, token=VIEWER, json=BODIES[path])
    assert status == 403
    assert body == {
        "error": "token 'grafana' has role viewer; this needs operator",
        "details": {"who": "grafana", "role": "viewer", "needs": "operator"},
    }
    assert leader.intent() == IntentState() and leader.history() == []


@pytest.mark.parametrize(("method", "path"), PEER_READS + READS)
@pytest.mark.parametrize("token", [VIEWER, OPERATOR], ids=["viewer", "operator"])
async def test_viewer_and_operator_read(api: Api, method: str, path: str, token: str) -> None:
    status, body, _ = await api.call(method, path, token=token, json=BODIES.get(path))
    assert status == 200, body


@pytest.mark.parametrize(("method", "path"), PEER_READS)
async def test_a_peer_reads_what_members_pull(api: Api, method: str, path: str) -> None:
    status, body, _ = await api.call(method, path, token=PEER)
    assert status == 200, body


@pytest.mark.parametrize(("method", "path"), READS + WRITES)
async def test_a_peer_token_reads_and_writes_nothing_else(
    api: Api, leader: Members, method: str, path: str
) -> None:
    if path.startswith("/v1/overrides/"):
        _, exited, _ = await api.call("POST", "/v1/region/exit", json=BODIES["/v1/region/exit"])
        path = f"/v1/overrides/{exited['override_ids'][0]}"
    before = leader.intent()
    status, body, _ = await api.call(method, path, token=PEER, json=BODIES.get(path))
    assert status == 403, body
    needs = (
        "operator" if (method, path) in WRITES or path.startswith("/v1/overrides/") else "viewer"
    )
    assert body["error"] == f"token 'peer-dc2' has role peer; this needs {needs}"
    assert leader.intent() == before


@pytest.mark.parametrize(("method", "path"), WRITES)
async def test_operator_writes(api: Api, leader: Members, method: str, path: str) -> None:
    body = BODIES[path]
    if path.startswith("/v1/overrides/") or path == "/v1/region/enter":
        # something to remove or enter: an enter with nothing to end is refused (422)
        _, exited, _ = await api.call("POST", "/v1/region/exit", json=BODIES["/v1/region/exit"])
        if path != "/v1/region/enter":
            path = f"/v1/overrides/{exited['override_ids'][0]}"
    status, answer, _ = await api.call(method, path, token=OPERATOR, json=body)
    assert status == 200, answer
    assert leader.history()[0].who == "alice"


@pytest.mark.parametrize(("method", "path"), OPEN)
async def test_open_routes_ignore_a_bad_token(api: Api, method: str, path: str) -> None:
    status, _, _ = await api.call(method, path, token=UNKNOWN)
    assert status == 200


async def test_tokens_never_reach_the_logs(
    api: Api, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        await api.call("GET", "/v1/status", token=VIEWER)
        await api.call("POST", "/v1/region/exit", json={"region": "dc2", "reason": "r"})
        await api.call("POST", "/v1/region/exit", token=VIEWER, json={"region": "dc3"})
        await api.call("GET", "/v1/status", token=UNKNOWN)
        await api.call("POST", "/v1/region/exit", data=b"{" + OPERATOR.encode())
    assert [e["status"] for e in events if e["event"] == "api.request"] == [
        200,
        200,
        403,
        401,
        400,
    ]
    assert {e.get("who") for e in events if e["event"] == "api.request"} == {
        "grafana",
        "alice",
        None,
    }
    # and the plain output of the default structlog configuration
    await api.call("GET", "/v1/status", token=VIEWER)
    await api.call("POST", "/v1/region/exit", json={"region": "dc3", "reason": "r"})
    out, err = capsys.readouterr()
    assert "api.request" in out
    logged = repr(events) + out + err + caplog.text
    for token in (OPERATOR, VIEWER, UNKNOWN):
        assert token not in logged
    assert "Authorization" not in logged and "Bearer" not in logged
