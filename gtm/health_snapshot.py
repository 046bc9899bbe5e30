"""Read a health snapshot file (JSON or YAML) into the engine's health value.

The file says what is down (or up) for `gtm plan` and `gtm dns serve`:

    regions:                      # per service/region
      foo/dc2: down               # a state ...
      bar/dc1: {state: down, reason: "http 503", since: 1764000000}
    vips:                         # per VIP id (service/region/address:port)
      foo/dc1/127.0.1.1:18080: down

Unknown services, regions or VIPs are errors, not silently ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from gtm.config import ConfigError, Inventory, Problem
from policies import Health, State, TargetHealth


def load_health(path: str | Path, inventory: Inventory) -> Health:
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ConfigError([Problem(name, None, (), f"cannot read health snapshot: {e}")]) from e
    return parse_health(data or {}, inventory, name)


def parse_health(data: Any, inventory: Inventory, name: str = "<health>") -> Health:
    problems: list[Problem] = []

    def bad(path: tuple[str | int, ...], msg: str) -> None:
        problems.append(Problem(name, None, path, msg))

    if not isinstance(data, dict):
        raise ConfigError([Problem(name, None, (), "must be a mapping with regions: and/or vips:")])
    for key in data:
        if key not in ("regions", "vips"):
            bad((key,), "unknown section (regions, vips)")
    vip_ids = {v.id for s in inventory.estate.services for vs in s.vips.values() for v in vs}
    regions: dict[tuple[str, str], TargetHealth] = {}
    for key, value in (data.get("regions") or {}).items():
        service, _, region = str(key).partition("/")
        if service not in inventory.services:
            bad(("regions", key), f"unknown service {service!r}")
            continue
        if region not in inventory.regions:
            bad(("regions", key), f"unknown region {region!r}")
            continue
        th = _target_health(value, ("regions", key), bad)
        if th is not None:
            regions[(service, region)] = th
    vips: dict[str, TargetHealth] = {}
    for key, value in (data.get("vips") or {}).items():
        if key not in vip_ids:
            bad(("vips", key), "unknown VIP id (service/region/address:port)")
            continue
        th = _target_health(value, ("vips", key), bad)
        if th is not None:
            vips[str(key)] = th
    if problems:
        raise ConfigError(problems)
    return Health(regions=regions, vips=vips)


def _target_health(value: Any, path: tuple[str | int, ...], bad: Any) -> TargetHealth | None:
    if isinstance(value, str):
        value = {"state": value}
    if not isinstance(value, dict):
        bad(path, f"{value!r} is not a state (up, down, unknown) or a mapping")
        return None
    try:
        state = State(str(value.get("state", "")).lower())
    except ValueError:
        bad((*path, "state"), f"{value.get('state')!r} is not up, down or unknown")
        return None
    since = value.get("since")
    if since is not None and not isinstance(since, int | float):
        bad((*path, "since"), f"{since!r} is not a Unix time")
        return None
    return TargetHealth(state, since, str(value.get("reason", "from snapshot")))
