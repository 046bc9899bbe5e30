"""kube.errors: answers classified as temporary or permanent, and Retry-After read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from kube import Conflict, Expired, Forbidden, NotFound, PermanentError, TemporaryError, error_of


def status(code: int, reason: str, **details: object) -> bytes:
    body = {"kind": "Status", "code": code, "reason": reason, "message": f"m{code}"}
    if details:
        body["details"] = details
    return json.dumps(body).encode()


def test_errors_are_temporary_or_permanent() -> None:
    assert isinstance(error_of(500, "x", status(500, "InternalError"), {}), TemporaryError)
    assert isinstance(error_of(503, "x", None, {}), TemporaryError)
    assert isinstance(error_of(429, "x", status(429, "TooManyRequests"), {}), TemporaryError)
    assert isinstance(error_of(409, "x", status(409, "Conflict"), {}), Conflict)
    assert isinstance(error_of(404, "x", None, {}), NotFound)
    assert isinstance(error_of(403, "x", None, {}), Forbidden)
    assert isinstance(error_of(410, "x", None, {}), Expired)
    bad = error_of(422, "x", status(422, "Invalid"), {})
    assert isinstance(bad, PermanentError) and bad.reason == "Invalid" and bad.message == "m422"


def test_retry_after_from_header_date_or_status_details() -> None:
    assert error_of(429, "", None, {"Retry-After": "7"}).retry_after == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    after = error_of(503, "", None, {"Retry-After": later}).retry_after
    assert after is not None and 28 <= after <= 30
    assert error_of(429, "", status(429, "x", retryAfterSeconds=4), {}).retry_after == 4.0
    assert error_of(500, "", None, {}).retry_after is None


def test_the_cause_names_the_code_or_what_broke() -> None:
    assert error_of(503, "", None, {}).cause == "503"
    assert TemporaryError(None, "TimeoutError").cause == "timeout"
    assert TemporaryError(None, "ClientConnectorError").cause == "connection"
