"""What a Kubernetes API request can end in: temporary errors (worth another attempt) or
permanent ones, mapped from the HTTP status and the `Status` body the server sends.

A 409 is a `Conflict`: the write's resourceVersion precondition failed (or the
object already exists), so sending it again cannot succeed — the caller re-reads
and rebuilds it. Retry-After comes from the header (seconds or an HTTP date) or
the Status' `details.retryAfterSeconds`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

TEMPORARY_CODES = frozenset({429, 500, 502, 503, 504})


class KubeError(Exception):
    def __init__(
        self, status: int | None, reason: str, message: str = "", retry_after: float | None = None
    ) -> None:
        self.status, self.reason, self.message, self.retry_after = (
            status,
            reason,
            message,
            retry_after,
        )
        super().__init__(f"{status or 'no answer'} {reason}: {message}".rstrip(": "))

    @property
    def cause(self) -> str:
        """The metrics' label: the HTTP code, else `timeout` or `connection`."""
        if self.status:
            return str(self.status)
        return "timeout" if self.reason == "TimeoutError" else "connection"


class TemporaryError(KubeError):
    """429, 5xx, a timeout or a broken connection: worth another attempt."""


class PermanentError(KubeError):
    """Anything else: another attempt would get the same answer."""


class Conflict(PermanentError):
    """409: the resourceVersion precondition failed; re-read, rebuild, retry."""


class NotFound(PermanentError):
    """404: no such object, or (on a list) the resource is not served."""


class Forbidden(PermanentError):
    """403: RBAC does not grant the request."""


class Expired(PermanentError):
    """410: a watch or list continuation from a resourceVersion the server no longer has."""


def retry_after(headers: Mapping[str, str] | None, body: Mapping[str, Any]) -> float | None:
    """The seconds the server asks to wait, from the header or the Status' details."""
    raw = (headers or {}).get("Retry-After")
    if raw is not None:
        raw = raw.strip()
        if raw.isdigit():
            return float(raw)
        try:
            return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
        except (TypeError, ValueError):
            pass
    seconds = (body.get("details") or {}).get("retryAfterSeconds")
    return float(seconds) if isinstance(seconds, int | float) else None


def error_of(status: int, reason: str, raw: bytes | str | None, headers: Any) -> KubeError:
    """A `KubeError` from an HTTP error answer (its body a Kubernetes `Status`, if any)."""
    body: dict[str, Any] = {}
    if raw:
        try:
            parsed = json.loads(raw)
            body = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            pass
    reason = str(body.get("reason") or reason or "")
    message = str(body.get("message") or "")
    after = retry_after(headers, body)
    kind: type[KubeError]
    if status in TEMPORARY_CODES:
        kind = TemporaryError
    else:
        kind = {409: Conflict, 404: NotFound, 403: Forbidden, 410: Expired}.get(
            status, PermanentError
        )
    return kind(status, reason, message, after)
