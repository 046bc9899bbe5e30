"""Load a config file into the inventory every part of gtm reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from gtm.config.checks import check, split_of
from gtm.config.errors import ConfigError, Problem
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


def load(path: str | FsPath) -> Inventory:
    return _build(read(path))


def loads(text: str, name: str = "<config>") -> Inventory:
    return _build(parse(text, name))


def _build(src: Source) -> Inventory:
    if not isinstance(src.data, dict):
        raise ConfigError(
            [src.problem((), "the file must hold a mapping (regions:, services:, …)")]
        )
    try:
        config = Config.model_validate(src.data)
    except ValidationError as e:
        raise ConfigError([_problem(src, err) for err in e.errors()]) from None
    problems = [src.problem(path, msg) for path, msg in check(config)]
    if problems:
        raise ConfigError(problems)
    return Inventory(
        file=src.file,
        config=config,
        estate=to_estate(config),
        regions={r.name: r for r in config.regions},
        services={s.name: s for s in config.services},
    )


def _problem(src: Source, err: Any) -> Problem:
    # Drop pydantic's union/type tags from the location: ('client_cidrs', 0, 'IPv4Network').
    path = tuple(p for p in err["loc"] if isinstance(p, int) or not p[:1].isupper())
    kind = err["type"]
    if kind == "missing":
        message = "required field is missing"
    elif kind == "extra_forbidden":
        message = "unknown field (misspelt?)"
    elif kind == "value_error":
        message = str(err["ctx"]["error"])
    else:
        value = err.get("input")
        shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
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
