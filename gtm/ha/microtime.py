"""Kubernetes MicroTime: `2026-11-24T10:00:00.000000Z`, exactly six fractional digits and Z.

kubernetes-asyncio serialises a datetime with `isoformat()`, which drops the
fraction when microseconds are zero and writes `+00:00` for UTC; an API
server rejects both for a MicroTime field (KUBERNETES.md). gtm formats these
strings itself and sends them as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_micro_time(moment: datetime) -> str:
    """`moment` (aware) in UTC with six fractional digits and Z."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a MicroTime needs an aware datetime, got naive {moment.isoformat()}")
    # isoformat, not strftime: %Y is not zero-padded below year 1000 on glibc
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_micro_time(text: str) -> datetime:
    """An aware UTC datetime from a MicroTime (or any RFC 3339 time with a zone)."""
    try:
        moment = datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)
    except ValueError:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError(f"time without a zone: {text!r}") from None
    return moment.astimezone(UTC)


def optional_micro_time(value: object) -> datetime | None:
    """`parse_micro_time` for a JSON field that may be missing or null."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"a MicroTime must be a string, got {value!r}")
    return parse_micro_time(value)
