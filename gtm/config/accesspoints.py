"""AccessPoint files: one `kind: AccessPoint` document, or a `kind: List` of them.

Read with the same hardened loader as the estate config (aliases bounded,
duplicate keys refused, …); every problem of every AccessPoint is reported at
once as `file:line field.path: message`. With an inventory, the clusters an
AccessPoint names must be the estate's (`kubernetes.clusters`, or a region's
name when the estate lists no clusters: the cluster of that region).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accesspoints import AccessPoint, AccessPointError, parse_accesspoint
from gtm.config.errors import ConfigError, FieldPath, Problem
from gtm.config.inventory import Inventory
from gtm.config.source import read

_KIND = re.compile(r"(?m)^kind:\s*[\"']?(AccessPoint|List)[\"']?\s*(#.*)?$")


def looks_like_accesspoints(path: str | Path) -> bool:
    """Whether a file holds AccessPoints (a top-level `kind: AccessPoint` or `kind: List`),
    from its first 64 KB: an estate config is not parsed twice to find out."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(65536)
    except OSError:
        return False
    return _KIND.search(head) is not None


def read_accesspoints(path: str | Path, inventory: Inventory | None = None) -> list[AccessPoint]:
    src = read(path)
    data: Any = src.data
    docs: list[tuple[FieldPath, Any]]
    if isinstance(data, Mapping) and data.get("kind") == "List":
        docs = [(("items", i), item) for i, item in enumerate(data.get("items") or [])]
    else:
        docs = [((), data)]
    problems: list[Problem] = []
    found: list[AccessPoint] = []
    for at, doc in docs:
        try:
            ap = parse_accesspoint(doc)
        except AccessPointError as e:
            problems += [src.problem((*at, *p), m) for p, m in e.problems]
            continue
        if inventory is not None:
            problems += [src.problem((*at, *p), m) for p, m in _clusters(ap, inventory)]
        found.append(ap)
    names = [(a.namespace, a.name) for a in found]
    for i, key in enumerate(names):
        if names.index(key) != i:
            problems.append(src.problem((), f"AccessPoint {key[0]}/{key[1]} given twice"))
    if problems:
        raise ConfigError(problems)
    return found


def cluster_regions(inventory: Inventory) -> dict[str, str]:
    """Cluster name -> its region: the estate's clusters, else one per region, named as it."""
    clusters = inventory.config.kubernetes.clusters
    if clusters:
        return {c.name: c.region for c in clusters}
    return {r: r for r in inventory.regions}


def _clusters(ap: AccessPoint, inventory: Inventory) -> list[tuple[FieldPath, str]]:
    known = cluster_regions(inventory)
    return [
        (
            ("spec", "scope", "clusters", i),
            f"{c!r} is not a cluster of the estate ({', '.join(known)})",
        )
        for i, c in enumerate(ap.spec.scope.clusters)
        if c not in known
    ]
