"""Hostile input at the API's edge, against a real member: nothing an input holds takes it
down, changes anything, or carries a secret into a log or an answer.

- JSON bodies: a key given twice (at any depth), nesting past the bound, integers past
  Python's digit limit, tiny, huge and non-finite durations: 400 naming the key or field.
- Text fields: valid UTF-8 only, no lone surrogate, no C0/C1 control character: 400
  naming the field.
- HTTP the parser refuses (a header or request line over 8 KB, a control character in a
  header, too many headers, not HTTP at all): a plain, generic 400/431, and one log event
  that holds none of the request's bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import urlsplit

import pytest
import structlog
from aiohttp import web
from api_members import OPERATOR, Api, Members

from gtm.api.serve import ServerLog, serve_api
from intent import IntentState


def nothing_changed(members: Members) -> bool:
    return members.intent() == IntentState() and members.history() == []


def fields_of(body: Any) -> dict[str, str]:
    return {f["field"]: f["error"] for f in (body.get("details") or {}).get("fields", [])}


# -- 1. a key given twice ---------------------------------------------------------------

DUPLICATES = {
    "top level, dry_run true then false": (
        "/v1/region/exit",
        b'{"region":"dc2","reason":"t","dry_run":true,"dry_run":false}',
        "dry_run",
    ),
    "top level, dry_run false then true": (
        "/v1/region/exit",
        b'{"region":"dc2","reason":"t","dry_run":false,"dry_run":true}',
        "dry_run",
    ),
    "the same value twice": (
        "/v1/region/exit",
        b'{"region":"dc2","region":"dc2","reason":"t","dry_run":true}',
        "region",
    ),
    "nested in an object of a list": (
        "/v1/drain",
        b'{"region":"dc2","reason":"t","services":["foo"],"x":[{"a":1,"b":{"c":1,"c":2}}]}',
        "c",
    ),
    "in the what-if plan": (
        "/v1/plan",
        b'{"overrides":["exit=dc2"],"force":true,"force":false}',
        "force",
    ),
    "in an override's removal": (
        "/v1/overrides/exit-dc2-1",
        b'{"reason":"a","reason":"b"}',
        "reason",
    ),
}


async def test_a_key_given_twice_at_any_depth_is_400_naming_the_key(
    api: Api, leader: Members
) -> None:
    for what, (path, raw, key) in DUPLICATES.items():
        method = "DELETE" if path.startswith("/v1/overrides/") else "POST"
        status, body, _ = await api.call(method, path, data=raw)
        assert status == 400, (what, body)
        assert "given twice" in body["error"] and repr(key) in body["error"], (what, body)
    # the reproduction performed a real exit: nothing may have reached the store
    assert nothing_changed(leader)


# -- 2. nesting and numbers -------------------------------------------------------------

DIGITS_5000 = b"1" + b"0" * 4999


def deep(levels: int, bracket: bytes = b"[") -> bytes:
    close = b"]" if bracket == b"[" else b"}"
    inner = b'{"a":' if bracket == b"{" else bracket
    return inner * levels + b"1" + close * levels


# path, raw body, the field the 400 names
NUMBERS: dict[str, tuple[str, bytes, str]] = {
    "deep array in services (5,000 levels)": (
        "/v1/region/exit",
        b'{"region":"dc2","reason":"t","services":' + deep(5000) + b"}",
        "services",
    ),
    "deep objects in an unknown field (100,000 levels)": (
        "/v1/region/exit",
        b'{"region":"dc2","reason":"t","x":' + deep(100_000, b"{") + b"}",
        "x",
    ),
    "deep array as the whole body": ("/v1/plan", deep(3000), "(body)"),
    "5,000-digit window": (
        "/v1/rollout",
        b'{"region":"dc1","reason":"t","window":' + DIGITS_5000 + b"}",
        "window",
    ),
    "5,000-digit expires_in": (
        "/v1/region/exit",
        b'{"region":"dc2","reason":"t","dry_run":true,"expires_in":-' + DIGITS_5000 + b"}",
        "expires_in",
    ),
    "5,000-digit integer in a list of names": (
        "/v1/drain",
        b'{"region":"dc2","reason":"t","services":[' + DIGITS_5000 + b"]}",
        "services.0",
    ),
    "5,000-digit integer as a boolean": (
        "/v1/plan",
        b'{"overrides":[],"force":' + DIGITS_5000 + b"}",
        "force",
    ),
    "window 1e-300": ("/v1/rollout", b'{"region":"dc1","reason":"t","window":1e-300}', "window"),
    "window 5e-324 (the smallest float)": (
        "/v1/rollout",
        b'{"region":"dc1","reason":"t","window":5e-324}',
        "window",
    ),
    "window 1e999 (infinite)": (
        "/v1/rollout",
        b'{"region":"dc1","reason":"t","window":1e999}',
        "window",
    ),
    "window NaN": ("/v1/rollout", b'{"region":"dc1","reason":"t","window":NaN}', "window"),
    "window -Infinity": (
        "/v1/rollout",
        b'{"region":"dc1","reason":"t","window":-Infinity}',
        "window",
    ),
    "window 0.001 (a millisecond)": (
        "/v1/rollout",
        b'{"region":"dc1","reason":"t","window":0.001}',
        "window",
    ),
    "window a decade": (
        "/v1/rollout",
        b'{"region":"dc1","reason":"t","window":315360000}',
        "window",
    ),
    "window 1e308 seconds": (
        "/v1/rollout",
        b'{"region":"dc1","reason":"t","window":1e308}',
        "window",
    ),
    "expires_in 1e-300": (
        "/v1/region/exit",
        b'{"region":"dc2","reason":"t","expires_in":1e-300}',
        "expires_in",
    ),
    "expires_in 0": (
        "/v1/region/exit",
        b'{"region":"dc2","reason":"t","expires_in":0}',
        "expires_in",
    ),
    "expires_in Infinity": (
        "/v1/drain",
        b'{"region":"dc2","reason":"t","services":["foo"],"expires_in":Infinity}',
        "expires_in",
    ),
    "ramp 1e-300": ("/v1/region/enter", b'{"region":"dc2","reason":"t","ramp":1e-300}', "ramp"),
    "ramp 0.5ms as text": (
        "/v1/region/enter",
        b'{"region":"dc2","reason":"t","ramp":"0.5ms"}',
        "ramp",
    ),
    "ramp NaN": ("/v1/region/enter", b'{"region":"dc2","reason":"t","ramp":NaN}', "ramp"),
    "ramp -1": ("/v1/region/enter", b'{"region":"dc2","reason":"t","ramp":-1}', "ramp"),
}


async def test_deep_nesting_and_hostile_numbers_are_400_naming_the_field(
    api: Api, leader: Members
) -> None:
    for what, (path, raw, field) in NUMBERS.items():
        status, body, _ = await api.call("POST", path, data=raw)
        assert status == 400, (what, status, str(body)[:300])
        named = fields_of(body)
        assert field in named or f"{field}:" in body["error"], (what, body)
    assert nothing_changed(leader)


async def test_sane_durations_still_pass(api: Api, leader: Members) -> None:
    """The bounds refuse nonsense only: a second, a year, a ramp of 0, durations as text."""
    for path, doc in [
        ("/v1/rollout", {"region": "dc1", "reason": "t", "window": 1, "dry_run": True}),
        ("/v1/rollout", {"region": "dc1", "reason": "t", "window": "366d", "dry_run": True}),
        ("/v1/region/exit", {"region": "dc2", "reason": "t", "expires_in": 1.5, "dry_run": True}),
        ("/v1/region/exit", {"region": "dc2", "reason": "t", "expires_in": "1s", "dry_run": True}),
    ]:
        status, body, _ = await api.call("POST", path, json=doc)
        assert status == 200, (doc, body)
    status, body, _ = await api.call(
        "POST", "/v1/region/exit", json={"region": "dc2", "reason": "t", "services": ["foo"]}
    )
    assert status == 200, body
    status, body, _ = await api.call(
        "POST", "/v1/region/enter", json={"region": "dc2", "reason": "t", "ramp": 0}
    )
    assert status == 200, body


async def test_query_numbers_are_finite(api: Api) -> None:
    for query, field in [
        ("since=nan", "since"),
        ("since=inf", "since"),
        ("since=-1e999", "since"),
        ("limit=" + "9" * 5000, "limit"),
    ]:
        status, body, _ = await api.call("GET", f"/v1/history?{query}")
        assert status == 400 and field in fields_of(body), (query, body)


# -- 4. text ----------------------------------------------------------------------------

# body (a JSON text, so lone surrogates can be written), the field the 400 names
TEXTS: dict[str, tuple[str, str, str]] = {
    "lone high surrogate in reason": (
        "/v1/region/exit",
        r'{"region":"dc2","reason":"ok \ud800","dry_run":true}',
        "reason",
    ),
    "lone low surrogate in ticket": (
        "/v1/region/exit",
        r'{"region":"dc2","reason":"r","ticket":"\udc00"}',
        "ticket",
    ),
    "ESC (a terminal colour) in reason": (
        "/v1/region/exit",
        r'{"region":"dc2","reason":"\u001b[31mred"}',
        "reason",
    ),
    "OSC (a terminal title) in ticket": (
        "/v1/drain",
        r'{"region":"dc2","services":["foo"],"reason":"r","ticket":"\u001b]0;owned\u0007"}',
        "ticket",
    ),
    "C1 CSI in reason": ("/v1/region/enter", r'{"region":"dc2","reason":"a\u009bb"}', "reason"),
    "NUL in region": ("/v1/region/exit", r'{"region":"dc2\u0000","reason":"r"}', "region"),
    "newline in reason (a forged log line)": (
        "/v1/rollout",
        r'{"region":"dc1","window":60,"reason":"r\n{\"event\":\"api.action\"}"}',
        "reason",
    ),
    "DEL in a service name": (
        "/v1/drain",
        r'{"region":"dc2","services":["foo","b\u007far"],"reason":"r"}',
        "services.1",
    ),
    "ESC in a what-if spec": ("/v1/plan", r'{"overrides":["exit=dc2\u001b[2J"]}', "overrides.0"),
    "BEL in the reason of a removal": (
        "/v1/overrides/exit-dc2-1",
        r'{"reason":"gone\u0007"}',
        "reason",
    ),
}


async def test_text_with_control_characters_or_lone_surrogates_is_400_naming_the_field(
    api: Api, leader: Members
) -> None:
    for what, (path, text, field) in TEXTS.items():
        method = "DELETE" if path.startswith("/v1/overrides/") else "POST"
        status, body, _ = await api.call(method, path, data=text.encode())
        assert status == 400, (what, body)
        assert field in fields_of(body), (what, body)
        error = fields_of(body)[field]
        assert "control character" in error or "surrogate" in error, (what, error)
    assert nothing_changed(leader)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"region":"dc2","reason":"\xed\xa0\x80"}',  # a surrogate encoded as UTF-8
        b'{"region":"dc2","reason":"\xc0\xaf"}',  # an overlong encoding of '/'
        '{"region":"dc2","reason":"r"}'.encode("utf-16"),
        '{"region":"dc2","reason":"r"}'.encode("utf-32-le"),
        b'\xef\xbb\xbf{"region":"dc2","reason":"r"}',  # a UTF-8 byte order mark
    ],
    ids=["utf8-surrogate", "overlong", "utf-16", "utf-32", "bom"],
)
async def test_a_body_that_is_not_utf8_json_is_400(api: Api, leader: Members, raw: bytes) -> None:
    status, body, _ = await api.call("POST", "/v1/region/exit", data=raw)
    assert status == 400 and body["error"].startswith("bad JSON"), body
    assert nothing_changed(leader)


async def test_text_that_is_fine_still_passes(api: Api, leader: Members) -> None:
    # brackets in text are text: they do not count as nesting
    brackets = "[{" * 40 + "}]" * 40
    status, body, _ = await api.call(
        "POST", "/v1/region/exit", json={"region": "dc2", "reason": brackets, "dry_run": True}
    )
    assert status == 200, body
    status, body, _ = await api.call(
        "POST",
        "/v1/region/exit",
        json={"region": "dc2", "reason": "Wartung — 机房 🚧", "ticket": "CHG-1"},
    )
    assert status == 200, body
    (o,) = leader.intent().overrides.values()
    assert o.why == "Wartung — 机房 🚧"


# -- 3. HTTP the parser refuses ---------------------------------------------------------

SECRET = OPERATOR  # a real operator token: it must not reach a log or an answer


async def raw_exchange(url: str, request: bytes) -> bytes:
    """Send `request` as is on a fresh connection; everything the member answers."""
    where = urlsplit(url)
    assert where.hostname is not None and where.port is not None
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


def request_with(*headers: bytes, target: bytes = b"/v1/status") -> bytes:
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: gtm", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


PADDING = b"Q" * 9000
MALFORMED: dict[str, tuple[bytes, int]] = {
    "Authorization over 8 KB": (
        request_with(b"Authorization: Bearer " + SECRET.encode() + PADDING),
        431,
    ),
    "Authorization over 8 KB, token at the end": (
        request_with(b"Authorization: Bearer " + PADDING + SECRET.encode()),
        431,
    ),
    "a request line over 8 KB": (
        request_with(
            b"Authorization: Bearer " + SECRET.encode(),
            target=b"/v1/status?token=" + SECRET.encode() + PADDING,
        ),
        431,
    ),
    "a control character in the Authorization header": (
        request_with(b"Authorization: Bearer " + SECRET.encode() + b"\x01"),
        400,
    ),
    "a header name with a space, then the token": (
        request_with(b"X Bad: 1", b"Authorization: Bearer " + SECRET.encode()),
        400,
    ),
    "too many headers after the token": (
        request_with(
            b"Authorization: Bearer " + SECRET.encode(),
            *(b"X-H%d: v" % i for i in range(300)),
        ),
        431,
    ),
    "not HTTP (a TLS hello on the plain port)": (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + SECRET.encode() + b"\r\n\r\n",
        400,
    ),
}


def secret_fragments() -> list[bytes]:
    """The token and every 8-byte slice of it: a truncated echo counts too."""
    token = SECRET.encode()
    return [token] + [token[i : i + 8] for i in range(len(token) - 7)]


async def test_a_request_the_http_parser_refuses_answers_generically_and_logs_no_bytes(
    leader: Members,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = leader.url("dc1-a")
    answers: dict[str, bytes] = {}
    with structlog.testing.capture_logs() as events:
        for what, (request, status) in MALFORMED.items():
            answer = await raw_exchange(url, request)
            answers[what] = answer
            head, _, text = answer.partition(b"\r\n\r\n")
            assert head.split(b" ", 2)[1] == str(status).encode(), (what, answer[:300])
            # (and the member closed the connection: `raw_exchange` read to its end)
            doc = json.loads(text)
            assert set(doc) == {"error", "details"} and doc["error"], (what, doc)
    logged = [e for e in events if e["event"] == "api.bad_http"]
    assert [e["status"] for e in logged] == [s for _, s in MALFORMED.values()], events
    for e in logged:
        assert set(e) <= {"event", "log_level", "status", "error", "remote"}, e
    # once more with the default (printing) structlog configuration
    for request, _ in MALFORMED.values():
        await raw_exchange(url, request)
    out, err = capsys.readouterr()
    assert "api.bad_http" in out + err
    # the member still serves
    assert (await raw_exchange(url, request_with(b"Connection: close"))).startswith(b"HTTP/1.1 401")
    texts = {
        "answers": b"".join(answers.values()),
        "events": repr(events).encode(),
        "printed": (out + err).encode(),
        "stdlib logs": caplog.text.encode(),
    }
    for where, text in texts.items():
        for fragment in secret_fragments():
            assert fragment not in text, f"{fragment!r} in the {where}"
        assert b"QQQQQQQQ" not in text, where
        assert b"Traceback" not in text, where
    assert not [r for r in caplog.records if r.name.startswith("aiohttp")], caplog.text


async def test_an_exception_past_the_middleware_answers_500_and_logs_only_its_type(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The last resort of a served app (the member's has `problems`, which catches first)."""
    caplog.set_level(logging.DEBUG)

    async def crash(request: web.Request) -> web.Response:
        raise ValueError(f"cannot use {request.headers['Authorization']}")

    app = web.Application()
    app.router.add_get("/crash", crash)
    with structlog.testing.capture_logs() as events:
        async with serve_api(app, "127.0.0.1:0") as served:
            answer = await raw_exchange(
                served.url,
                request_with(b"Authorization: Bearer " + SECRET.encode(), target=b"/crash"),
            )
    assert answer.startswith(b"HTTP/1.1 500")
    assert (
        json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
        == "internal error (see the member's log)"
    )
    (event,) = [e for e in events if e["event"] == "api.unhandled"]
    assert event["error"] == "ValueError" and "test_api_hostile.py" in event["where"]
    out, err = capsys.readouterr()
    for text in (answer, repr(events).encode(), (out + err + caplog.text).encode()):
        assert SECRET.encode()[:8] not in text


def test_aiohttps_server_log_keeps_no_argument_text_or_traceback() -> None:
    try:
        raise RuntimeError(f"bad header {SECRET}")
    except RuntimeError as e:
        with structlog.testing.capture_logs() as events:
            ServerLog().exception(
                "Error handling request from %s: %s", "10.0.0.1", SECRET, exc_info=e
            )
            ServerLog().warning(
                "Failed to create request handler with custom kwargs %r", {"t": SECRET}
            )
            ServerLog().debug("Ignored premature client disconnection")  # below INFO: dropped
    assert events == [
        {
            "event": "api.server_log",
            "log_level": "error",
            "message": "Error handling request from %s: %s",
            "error": "RuntimeError",
        },
        {
            "event": "api.server_log",
            "log_level": "warning",
            "message": "Failed to create request handler with custom kwargs %r",
            "error": None,
        },
    ]
