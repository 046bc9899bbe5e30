"""Probe specs from their YAML form: `{kind: http, path: /healthz, interval: 5s, ...}`.

The config layer may validate with its own models; this keeps the YAML names and
the probe kinds in one place and reports every problem of a mapping at once.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

from probes.spec import (
    BaseProbe,
    DnsProbe,
    HttpProbe,
    ProbeConfigError,
    ProbeSpec,
    TcpProbe,
    TlsProbe,
)

_DURATION = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*|(?:\d+(?:\.\d+)?(?:ms|s|m|h|d)\s*)+)$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}
MAX_DURATION = 366 * 86400.0  # a year: no interval, timeout, ramp or expiry of gtm is longer
_KINDS: dict[str, type[BaseProbe]] = {
    "http": HttpProbe,
    "https": HttpProbe,
    "tcp": TcpProbe,
    "tls": TlsProbe,
    "dns": DnsProbe,
}
_DURATION_FIELDS = ("interval", "timeout")


def parse_duration(value: object) -> float:
    """Seconds from `5s`, `1m30s`, `250ms`, `2h`, `1d`, or a number of seconds; finite,
    not negative, up to a year. gtm's one duration grammar (config, API bodies, CLI)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    try:
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and len(value) <= 64 and _DURATION.match(value):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(value))
        else:
            raise ValueError(f"{_shown(value)} is not a duration (like 5s, 1m30s, 250ms)")
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise ValueError(f"{_shown(value)} is not a finite number of seconds")
    if seconds < 0:
        raise ValueError(f"{_shown(value)} is negative")
    if seconds > MAX_DURATION:
        raise ValueError(f"{_shown(value)} is longer than a year")
    return seconds


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_probe_spec(data: Mapping[str, object]) -> ProbeSpec:
    """Builds the spec for one `probe:` mapping; raises `ProbeConfigError` listing all problems."""
    if not isinstance(data, Mapping):
        raise ProbeConfigError("probe", [f"must be a mapping (got {data!r})"])
    kind = data.get("kind")
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join(sorted(_KINDS))
        raise ProbeConfigError("probe", [f"kind: must be one of {known} (got {kind!r})"])
    fields = {f.name for f in dataclasses.fields(cls)}
    problems: list[str] = []
    values: dict[str, object] = {}
    for key, value in data.items():
        if key == "kind":
            continue
        if key not in fields or (key == "tls" and cls is HttpProbe):
            allowed = ", ".join(sorted(fields - {"tls"}))
            problems.append(f"{key}: not a setting of a {kind} probe (known: {allowed})")
            continue
        if key in _DURATION_FIELDS:
            try:
                value = parse_duration(value)
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
                continue
        if key == "expect_status" and isinstance(value, list | tuple):
            value = tuple(value)
        values[key] = value
    if cls is HttpProbe:
        values["tls"] = kind == "https"
    if problems:
        raise ProbeConfigError(f"{kind} probe", problems)
    try:
        return cls(**values)  # type: ignore[return-value]
    except TypeError as exc:
        raise ProbeConfigError(f"{kind} probe", [str(exc)]) from None
