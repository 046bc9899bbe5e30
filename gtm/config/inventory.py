"""Load a config file into the inventory every part of gtm reads."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gtm.config.checks import Names, check, split_of
from gtm.config.errors import ConfigError, FieldPath, Problem, dotted
from gtm.config.model import BoundsConfig, Config, PolicyConfig, RegionConfig, ServiceConfig
from gtm.config.source import Source, parse, read
from policies import Bounds, Estate, Guardrails, Policy, Redistribute, Service, Vip


@dataclass(frozen=True)
class Inventory:
    """A validated config and the estate the policy engine sees."""

    file: str
    config: Config
    estate: Estate
    regions: Mapping[str, RegionConfig] = field(repr=False)
    services: Mapping[str, ServiceConfig] = field(repr=False)

    @property
    def region_names(self) -> tuple[str, ...]:
        return self.estate.regions

    def zones(self) -> list[str]:
        """The zones served: configured, else each service FQDN's parent domain."""
        if self.config.dns.zones:
            return list(self.config.dns.zones)
        return sorted({s.fqdn.split(".", 1)[1] for s in self.config.services})


# More rules to apply to a config, as `checks.check` does (`readiness.serving`).
Rules = Callable[[Config], Iterable[tuple[FieldPath, str]]]


def load(path: str | Path, *, rules: Rules | None = None) -> Inventory:
    return _build(read(path, lenient=True), rules)


def loads(text: str, name: str = "<config>", *, rules: Rules | None = None) -> Inventory:
    return _build(parse(text, name, lenient=True), rules)


def load_onboarded(
    path: str | Path,
    onboarded: Mapping[str, Mapping[str, Any]],
    *,
    rules: Rules | None = None,
) -> tuple[Inventory, dict[str, str]]:
    """The file's inventory with the services AccessPoints onboard, and those left out.

    `onboarded`: an AP (`namespace/name`) -> its service, as the file would list it.
    The file is checked alone first: its problems refuse the whole, as `load` does.
    An AP's service that does not fit (its name or FQDN already taken, VIPs in too few
    regions for its policy, a bad probe) is left out, with why; the others stay.
    """
    src = read(path, lenient=True)
    alone = _build(src, rules)
    if not onboarded:
        return alone, {}
    own = list(src.data.get("services") or [])
    keys = list(onboarded)
    refused: dict[str, str] = {}
    while keys:
        data = {**src.data, "services": [*own, *(dict(onboarded[k]) for k in keys)]}
        try:
            return _build(replace(src, data=data), rules), refused
        except ConfigError as e:
            bad: dict[int, list[str]] = {}
            for p in e.problems:
                at = p.path[1] if len(p.path) > 1 and p.path[0] == "services" else None
                if isinstance(at, int) and at >= len(own):
                    bad.setdefault(at - len(own), []).append(
                        f"{dotted(p.path[2:]) or 'service'}: {p.message}"
                    )
            if not bad:
                raise
            for i, why in bad.items():
                refused[keys[i]] = "; ".join(why)
            keys = [k for i, k in enumerate(keys) if i not in bad]
    return alone, refused


def _check(
    config: Config, rules: Rules | None, names: Names | None = None
) -> list[tuple[FieldPath, str]]:
    return [*check(config, names), *(rules(config) if rules is not None else ())]


def _build(src: Source, rules: Rules | None) -> Inventory:
    """The inventory, or every problem of the file: its YAML's, its shapes' and its rules'."""
    if not isinstance(src.data, dict):
        raise ConfigError(
            [
                *src.problems,
                src.problem((), "the file must hold a mapping (regions:, services:, …)"),
            ]
        )
    try:
        config = Config.model_validate(src.data)
    except ValidationError as e:
        found = {p.path for p in src.problems}  # the YAML's own problem says it first
        shapes = [p for p in map(partial(_problem, src), e.errors()) if p.path not in found]
        raise ConfigError([*src.problems, *shapes, *_rules_despite(src, shapes, rules)]) from None
    problems = [*src.problems, *(src.problem(path, msg) for path, msg in _check(config, rules))]
    if problems:
        raise ConfigError(problems)
    return Inventory(
        file=src.file,
        config=config,
        estate=to_estate(config),
        regions={r.name: r for r in config.regions},
        services={s.name: s for s in config.services},
    )


# The lists whose entries are dropped whole when one of their fields is bad.
_ENTRIES: tuple[FieldPath, ...] = (
    ("regions",),
    ("policies",),
    ("services",),
    ("kubernetes", "clusters"),
    ("api", "peers"),
)
_ROUNDS = 4  # re-validations after taking out what was bad


def _rules_despite(src: Source, shapes: list[Problem], rules: Rules | None) -> list[Problem]:
    """The cross-section rules' problems of a file that failed its shape checks.

    What was bad is taken out (a bad entry of a list whole, a bad setting of
    a section back to its default) and the rest checked as usual, with the
    names of the entries taken out still known. A rule's problem at a place
    next to a shape problem, or about a list that lost entries, is dropped:
    it is likely that one's echo.
    """
    data = src.data
    kept: dict[FieldPath, list[int]] = {}  # list -> original index of each entry kept
    bad = [p.path for p in shapes]
    config = None
    for _ in range(_ROUNDS):
        data = _without(data, bad, kept)
        try:
            config = Config.model_validate(data)
            break
        except ValidationError as e:
            bad = [_location(err) for err in e.errors()]
    if config is None:
        return []
    names = Names(
        tuple(dict.fromkeys(_names(src.data, ("regions",)) + [r.name for r in config.regions])),
        tuple(dict.fromkeys(_names(src.data, ("policies",)) + [p.name for p in config.policies])),
        tuple(
            dict.fromkeys(
                _names(src.data, ("kubernetes", "clusters"))
                + [c.name for c in config.kubernetes.clusters]
            )
        ),
    )
    near = {p.path[:2] for p in shapes}
    out = []
    for path, message in _check(config, rules, names):
        where = _original(path, kept)
        if where[:2] not in near and where not in kept:  # not "no region" when one was bad
            out.append(src.problem(where, message))
    return out


def _without(
    data: dict[str, Any], bad: list[FieldPath], kept: dict[FieldPath, list[int]]
) -> dict[str, Any]:
    """A copy of `data` without what `bad` points at; `kept` maps entries back to the file's."""
    drop: dict[FieldPath, set[int]] = {}
    unset: list[FieldPath] = []
    for path in bad:
        at = next((e for e in _ENTRIES if path[: len(e)] == e and len(path) > len(e)), None)
        if at is not None and isinstance(path[len(at)], int):
            drop.setdefault(at, set()).add(path[len(at)])
        else:
            unset.append(path)
    out = _copy_spine(data, [*drop, *unset])
    for at, indexes in drop.items():
        parent = _get(out, at[:-1])
        items = parent.get(at[-1]) if isinstance(parent, dict) else None
        if not isinstance(items, list):
            continue
        before = kept.get(at, list(range(len(items))))
        parent[at[-1]] = [x for n, x in enumerate(items) if n not in indexes]
        kept[at] = [orig for n, orig in enumerate(before) if n not in indexes]
    for path in unset:
        # the setting itself, or for a missing or misshapen field the section holding it
        keys = [k for k in path if isinstance(k, str)]
        target = tuple(keys[:1]) if len(keys) <= 1 else tuple(path[: path.index(keys[-1]) + 1])
        parent = _get(out, target[:-1])
        if isinstance(parent, dict) and target and target[-1] in parent:
            del parent[target[-1]]
        elif len(target) == 1 and target[0] in ("regions", "services"):
            out[target[0]] = []
        elif len(target) > 1:
            grand = _get(out, target[:-2])
            if isinstance(grand, dict):
                grand.pop(target[-2], None)
    return out


def _copy_spine(data: Any, paths: list[FieldPath]) -> Any:
    """`data` with every dict and list along `paths` copied, the rest shared."""
    out = dict(data)
    for path in paths:
        node = out
        for key in path[:-1]:
            child = node.get(key) if isinstance(node, dict) else None
            if isinstance(child, dict):
                child = dict(child)
            elif isinstance(child, list):
                child = list(child)
            else:
                break
            node[key] = child
            node = child
    return out


def _get(data: Any, path: FieldPath) -> Any:
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def _names(data: Any, at: FieldPath) -> list[str]:
    items = _get(data, at)
    if not isinstance(items, list):
        return []
    return [x["name"] for x in items if isinstance(x, dict) and isinstance(x.get("name"), str)]


def _original(path: FieldPath, kept: dict[FieldPath, list[int]]) -> FieldPath:
    """A path into the config checked -> the same place in the file."""
    for at, indexes in kept.items():
        n = len(at)
        if path[:n] == at and len(path) > n and isinstance(path[n], int) and path[n] < len(indexes):
            return (*at, indexes[path[n]], *path[n + 1 :])
    return path


def _location(err: Any) -> FieldPath:
    # Drop pydantic's union/type tags from the location: ('client_cidrs', 0, 'IPv4Network').
    return tuple(p for p in err["loc"] if isinstance(p, int) or not p[:1].isupper())


def _problem(src: Source, err: Any) -> Problem:
    path = _location(err)
    kind = err["type"]
    if kind == "missing":
        message = "required field is missing"
    elif kind == "extra_forbidden":
        message = "unknown field (misspelt?)"
    elif kind == "value_error":
        message = str(err["ctx"]["error"])
    else:
        value = err.get("input")
        shown = _shown(value) if not isinstance(value, dict | list) else type(value).__name__
        message = f"{shown}: {err['msg']}"
    return src.problem(path, message)


def to_estate(config: Config) -> Estate:
    regions = tuple(r.name for r in config.regions)
    policies = {p.name: _policy(p, regions) for p in config.policies}
    services = tuple(
        Service(
            name=s.name,
            fqdn=s.fqdn,
            policy=policies[s.policy],
            vips={
                region: tuple(
                    Vip(
                        Vip.make_id(s.name, region, v.address, v.port),
                        s.name,
                        region,
                        v.address,
                        v.port,
                        v.weight,
                    )
                    for v in vips
                )
                for region, vips in s.vips.items()
                if vips
            },
        )
        for s in config.services
    )
    return Estate(regions, services)


def _policy(p: PolicyConfig, regions: tuple[str, ...]) -> Policy:
    if p.matrix is not None:
        split = {s: {t: p.matrix[s][t] for t in regions} for s in regions}
    else:
        local, remote = split_of(p, len(regions))
        split = {s: {t: local if s == t else remote for t in regions} for s in regions}

    def bounds(b: BoundsConfig) -> Bounds:
        return Bounds(b.min, p.total if b.max is None else b.max)

    normal = {
        s: {t: bounds(p.bounds.local if s == t else p.bounds.remote) for t in regions}
        for s in regions
    }
    rollout = (
        normal
        if p.rollout is None
        else {
            s: {t: bounds(p.rollout.local if s == t else p.rollout.remote) for t in regions}
            for s in regions
        }
    )
    return Policy(
        name=p.name,
        total=p.total,
        split=split,
        bounds=normal,
        rollout=rollout,
        max_step=p.max_step,
        ramp=p.ramp,
        redistribute=Redistribute(p.redistribute),
        priority=tuple(p.priority) or regions,
        guardrails=Guardrails(p.guardrails.min_active_regions, p.guardrails.max_concurrent_exits),
    )


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
