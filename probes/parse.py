"""Probe specs from their YAML form: `{kind: http, path: /healthz, interval: 5s, ...}`.

The config layer may validate with its own models; this keeps the YAML names and
the probe kinds in one place and reports every problem of a mapping at once.
"""

from __future__ import annotations

import dataclasses
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

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_KINDS: dict[str, type[BaseProbe]] = {
    "http": HttpProbe,
    "https": HttpProbe,
    "tcp": TcpProbe,
    "tls": TlsProbe,
    "dns": DnsProbe,
}
_DURATION_FIELDS = ("interval", "timeout")


def parse_duration(value: object) -> float:
    """Seconds from `5s`, `500ms`, `1m`, `1h`, or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT[match.group(2)]
    raise ValueError(f"not a duration (use e.g. 5s, 500ms, 1m): {value!r}")


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
