"""`GET /v1/openapi.json`: built from the routes, valid OpenAPI 3.1, served without a token,
and what a real member answers matches it (here for chosen requests; schemathesis fuzzes
in test_api_openapi_conformance.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import schemathesis
from api_members import OPERATOR, PEER, VIEWER, Api, Members, until
from pydantic import ValidationError

from gtm.api import ROUTES, TokenBook, make_app, serve_api
from gtm.api.bodies import Body
from gtm.api.openapi import OPERATIONS, Operation, UndocumentedRoute, document
from gtm.api.schemas import Alive
from gtm.member import MemberRuntime

DOC = document(ROUTES)


def answer_schema(method: str, path: str, status: int) -> dict[str, Any]:
    responses = DOC["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}: not in the document"
    content = responses[str(status)]["content"]
    assert list(content) == ["application/json"], content
    return content["application/json"]["schema"]


def assert_matches(method: str, path: str, status: int, body: object) -> None:
    """`body`, answered with `status`, is what the document says `method path` answers."""
    schema = {**answer_schema(method, path, status), "components": DOC["components"]}
    try:
        jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)
    except jsonschema.ValidationError as e:
        at = "/".join(str(p) for p in e.absolute_path)
        pytest.fail(f"{method} {path} {status} at /{at}: {e.message}")


def strict_json(text: str) -> object:
    """JSON as RFC 8259 has it: `NaN`, `Infinity` and `-Infinity` are not JSON."""

    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


async def call(
    api: Api,
    method: str,
    path: str,
    *,
    route: str | None = None,
    token: str | None = OPERATOR,
    json: object = None,
    data: bytes | None = None,
) -> tuple[int, Any]:
    """Ask, check the answer against the document (`route`: the path as documented)."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with api.session.request(
        method, api.url + path, json=json, data=data, headers=headers
    ) as r:
        assert r.content_type == "application/json", r.content_type
        status, body = r.status, strict_json(await r.text())
    assert_matches(method, route or path.partition("?")[0], status, body)
    return status, body


# -- the document ---------------------------------------------------------------------


def test_every_route_is_in_the_document_and_nothing_else() -> None:
    documented = {(m.upper(), p) for p, item in DOC["paths"].items() for m in item}
    assert documented == {(m, p) for m, p, _, _ in ROUTES}
    assert set(OPERATIONS) == {handler for _, _, handler, _ in ROUTES}


def test_a_route_without_an_operation_fails_and_names_it() -> None:
    async def undocumented(request: aiohttp.web.Request) -> aiohttp.web.Response:
        raise NotImplementedError

    with pytest.raises(UndocumentedRoute, match=r"GET /v1/new \(.*undocumented\) has no Operation"):
        document((*ROUTES, ("GET", "/v1/new", undocumented, "viewer")))
    # a path parameter its Operation does not describe
    remove = next(h for m, p, h, _ in ROUTES if m == "DELETE")
    with pytest.raises(UndocumentedRoute, match=r"path parameters \['name'\].*\['id'\]"):
        document((("DELETE", "/v1/overrides/{name}", remove, "operator"),))


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"] == "3.1.0"
    loaded = schemathesis.openapi.from_dict(DOC)
    loaded.validate()  # against the OpenAPI 3.1 meta-schema
    assert len(list(loaded.get_all_operations())) == len(ROUTES)
    # which checks a Schema Object only loosely: each is a JSON Schema 2020-12
    schemas = [*DOC["components"]["schemas"].values(), *_inline_schemas(DOC["paths"])]
    assert len(schemas) > len(ROUTES)
    for schema in schemas:
        jsonschema.Draft202012Validator.check_schema(schema)
    # every reference points at a component
    refs = _refs(DOC)
    assert refs and all(r.startswith("#/components/schemas/") for r in refs)
    assert {r.rpartition("/")[2] for r in refs} <= set(DOC["components"]["schemas"])
    json.dumps(DOC, allow_nan=False)  # plain JSON


def _inline_schemas(node: object) -> list[object]:
    if isinstance(node, dict):
        own = [node["schema"]] if "schema" in node else []
        return own + [s for v in node.values() for s in _inline_schemas(v)]
    if isinstance(node, list):
        return [s for v in node for s in _inline_schemas(v)]
    return []


def _refs(node: object) -> set[str]:
    if isinstance(node, dict):
        own = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return own.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_security_follows_each_routes_role() -> None:
    assert DOC["components"]["securitySchemes"] == {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": DOC["components"]["securitySchemes"]["bearer"]["description"],
        }
    }
    for method, path, _, role in ROUTES:
        op = DOC["paths"][path][method.lower()]
        if role is None:
            assert op["security"] == [] and "x-gtm-role" not in op, path
            assert "401" not in op["responses"], path
        else:
            assert op["security"] == [{"bearer": []}] and op["x-gtm-role"] == role, path
            assert "401" in op["responses"], path
            assert ("403" in op["responses"]) == (role != "peer"), path


def test_bodies_queries_and_the_path_parameter() -> None:
    exit_ = DOC["paths"]["/v1/region/exit"]["post"]
    assert exit_["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ExitBody"
    }
    assert {"409", "413", "422", "503"} <= set(exit_["responses"])
    remove = DOC["paths"]["/v1/overrides/{id}"]["delete"]
    assert [(p["name"], p["in"], p["required"]) for p in remove["parameters"]] == [
        ("id", "path", True)
    ]
    table = DOC["paths"]["/v1/table"]["get"]["parameters"]
    assert [(p["name"], p["in"], p.get("explode")) for p in table] == [("service", "query", True)]
    explain = {p["name"]: p for p in DOC["paths"]["/v1/explain"]["get"]["parameters"]}
    assert explain["service"]["required"] and not explain["region"]["required"]
    assert explain["region"]["schema"]["type"] == "string"  # absent rather than null
    metrics = DOC["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert metrics == {"text/plain": {"schema": {"type": "string"}}}


@pytest.mark.parametrize("op", [o for o in OPERATIONS.values() if o.body is not None])
def test_every_body_example_is_a_body_the_api_takes(op: Operation) -> None:
    assert op.body is not None and issubclass(op.body, Body)
    examples = op.body.model_json_schema()["examples"]
    assert examples
    for example in examples:
        try:
            op.body.model_validate(example)
        except ValidationError as e:  # pragma: no cover - the message is the point
            pytest.fail(f"{op.body.__name__} example {example}: {e}")


# -- served ---------------------------------------------------------------------------


async def test_served_without_a_token_built_once(api: Api) -> None:
    async with api.session.get(api.url + "/v1/openapi.json") as r:
        assert r.status == 200 and r.content_type == "application/json"
        first = await r.read()
    assert json.loads(first) == json.loads(json.dumps(DOC))
    status, body, _ = await api.call("GET", "/v1/openapi.json", token="not-a-token-of-anybody")
    assert status == 200 and body == json.loads(first)
    async with api.session.get(api.url + "/v1/openapi.json") as r:
        assert await r.read() == first
    assert_matches("GET", "/v1/openapi.json", 200, json.loads(first))
    assert Alive.__name__ in json.loads(first)["components"]["schemas"]


# -- what a real member answers matches it --------------------------------------------


async def test_a_leaders_answers_match_the_document(api: Api, leader: Members) -> None:
    for path in ("/healthz", "/readyz"):
        await call(api, "GET", path, token=None)
    reads = [
        "/v1/status",
        "/v1/table",
        "/v1/table?service=foo",
        "/v1/health",
        "/v1/overrides",
        "/v1/history",
        "/v1/observations",
        "/v1/explain?service=foo",
        "/v1/explain?service=foo&region=dc2",
        "/v1/answer?name=foo.example.com&subnet=127.0.2.0/24",
    ]
    for path in reads:
        assert (await call(api, "GET", path, token=VIEWER))[0] == 200, path

    # errors: no token, a peer's token, a viewer's on a write, bad queries and bodies
    assert (await call(api, "GET", "/v1/table", token=None))[0] == 401
    assert (await call(api, "GET", "/v1/table", token=PEER))[0] == 403
    assert (await call(api, "POST", "/v1/drain", token=VIEWER, json={}))[0] == 403
    assert (await call(api, "GET", "/v1/table?service=nope", token=VIEWER))[0] == 404
    assert (await call(api, "GET", "/v1/history?limit=0", token=VIEWER))[0] == 400
    assert (await call(api, "GET", "/v1/explain?service=nope", token=VIEWER))[0] == 404
    answer = "/v1/answer?name=foo.example.com&subnet=nope"
    assert (await call(api, "GET", answer, token=VIEWER))[0] == 400
    assert (await call(api, "POST", "/v1/region/exit", data=b"[]"))[0] == 400
    assert (await call(api, "POST", "/v1/region/exit", data=b" " * (1024 * 1024 + 1)))[0] == 413
    exit_nowhere = {"region": "dc9", "reason": "r"}
    assert (await call(api, "POST", "/v1/region/exit", json=exit_nowhere))[0] == 422

    # a plan, an exit (its table has cells out), one refused, an enter that ramps back
    plan = {"overrides": ["exit=dc2", "drain=dc3:foo"]}
    assert (await call(api, "POST", "/v1/plan", token=VIEWER, json=plan))[0] == 200
    status, exited = await call(
        api, "POST", "/v1/region/exit", json={"region": "dc2", "reason": "r"}
    )
    assert status == 200 and exited["accepted"]
    await _until_table(api, lambda t: "out" in t["rows"]["foo"]["dc1"]["cells"]["dc2"])
    status, refused = await call(
        api, "POST", "/v1/region/exit", json={"region": "dc3", "reason": "r"}
    )
    assert status == 409 and refused["details"]["refusals"]
    enter = {"region": "dc2", "reason": "back", "ramp": "10m"}
    status, entered = await call(api, "POST", "/v1/region/enter", json=enter)
    assert status == 200 and entered["ramp"] is not None
    await _until_table(api, lambda t: "ramp_start" in t["rows"]["foo"]["dc1"]["cells"]["dc2"])
    drained = {"region": "dc3", "services": ["foo"], "reason": "r", "expires_in": "1h"}
    status, drain = await call(api, "POST", "/v1/drain", json=drained)
    assert status == 200
    window = {"region": "dc3", "window": 600, "reason": "r", "dry_run": True}
    assert (await call(api, "POST", "/v1/rollout", json=window))[0] == 200
    route = "/v1/overrides/{id}"
    removed = f"/v1/overrides/{drain['override_ids'][0]}"
    assert (await call(api, "DELETE", removed, route=route, json={"reason": "r"}))[0] == 200
    gone = "/v1/overrides/nope"
    assert (await call(api, "DELETE", gone, route=route, json={"reason": "r"}))[0] == 404
    for path in reads:  # now with overrides, tombstones, history and decisions
        assert (await call(api, "GET", path, token=VIEWER))[0] == 200, path
    _, history = await call(api, "GET", "/v1/history", token=VIEWER)
    assert {e["action"] for e in history["entries"]} >= {"accepted", "removed", "refused"}


async def _until_table(api: Api, done: Any, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        _, table = await call(api, "GET", "/v1/table", token=VIEWER)
        if done(table):
            return
        assert loop.time() < deadline, "the table did not change"
        await asyncio.sleep(0.1)


async def test_a_standbys_answers_match_the_document(pair: Members) -> None:
    async with aiohttp.ClientSession() as session:
        api = Api(session, pair.url("dc1-b"))
        until(lambda: pair.status("dc1-b").generation is not None, what="the standby's table")
        for path in ("/v1/status", "/v1/table", "/v1/explain?service=foo", "/v1/history"):
            assert (await call(api, "GET", path, token=VIEWER))[0] == 200, path
        status, body = await call(
            api, "POST", "/v1/region/exit", json={"region": "dc2", "reason": "r"}
        )
        assert status == 503 and body["details"]["leader"] == "dc1-a"
        _, explained = await call(api, "GET", "/v1/explain?service=foo", token=VIEWER)
        assert explained["decisions_known"] is False


async def test_a_starting_members_answers_match_the_document(
    tmp_path: Path, tokens: TokenBook
) -> None:
    """Before its first probe result, table and lease: 503s, and health `at` null (the
    tracker's -inf once answered `"at": -Infinity`, which is not JSON)."""
    members = Members(tmp_path / "unstarted")
    runtime = MemberRuntime(str(members.write_config("dc1-a", "http://127.0.0.1:9")))
    async with serve_api(make_app(runtime, tokens), "127.0.0.1:0") as served:
        async with aiohttp.ClientSession() as session:
            api = Api(session, served.url)
            assert (await call(api, "GET", "/readyz", token=None))[0] == 503
            status, health = await call(api, "GET", "/v1/health", token=VIEWER)
            assert status == 200 and health["at"] is None
            for path in ("/v1/table", "/v1/answer?name=foo.example.com&subnet=10.0.0.0/8"):
                assert (await call(api, "GET", path, token=VIEWER))[0] == 503, path
            for path in ("/v1/status", "/v1/history", "/v1/overrides", "/v1/observations"):
                assert (await call(api, "GET", path, token=VIEWER))[0] == 200, path
            # no targets yet: it knows no service
            assert (await call(api, "GET", "/v1/explain?service=foo", token=VIEWER))[0] == 404
            exit_ = {"region": "dc2", "reason": "r"}
            assert (await call(api, "POST", "/v1/region/exit", json=exit_))[0] == 503
