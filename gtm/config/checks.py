"""Rules that span sections of the config, each returning (path, message) pairs.

They run on a config that passed pydantic's shape checks; every rule runs,
so a file's problems are all reported together.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from gtm.config.errors import FieldPath
from gtm.config.model import BoundsConfig, Config, PolicyConfig, RetryConfig
from probes import HealthSettings, ProbeConfigError, parse_probe_spec

Found = Iterator[tuple[FieldPath, str]]


@dataclass(frozen=True)
class Names:
    """The regions, policies and clusters a file defines, as references resolve them.

    Usually those of the config; for a file with shape errors, also those of
    the entries that failed them, so a reference to a misspelt region's name
    is not reported a second time as unknown.
    """

    regions: tuple[str, ...]
    policies: tuple[str, ...]
    clusters: tuple[str, ...]

    @classmethod
    def of(cls, config: Config) -> Names:
        return cls(
            tuple(dict.fromkeys(r.name for r in config.regions)),
            tuple(dict.fromkeys(p.name for p in config.policies)),
            tuple(dict.fromkeys(c.name for c in config.kubernetes.clusters)),
        )


def check(config: Config, names: Names | None = None) -> list[tuple[FieldPath, str]]:
    known = Names.of(config) if names is None else names
    return [
        *_regions(config),
        *_policies(config, known),
        *_services(config, known),
        *_dns(config, known),
        *_kubernetes(config, known),
        *_ha(config, known),
        *_accesspoints(config, known),
        *_probes(config),
    ]


def _probes(config: Config) -> Found:
    """The probes package has the last word on probe specs and health settings."""
    for i, s in enumerate(config.services):
        fields = s.probe.spec_fields()
        try:
            parse_probe_spec(fields)
        except ProbeConfigError as e:
            for problem in e.problems:
                yield _at(("services", i, "probe"), problem, fields)
    health = config.health.model_dump(exclude={"concurrency", "lag_tolerance"})
    try:
        HealthSettings(**health)
    except ProbeConfigError as e:
        for problem in e.problems:
            yield _at(("health",), problem, health)


def _at(path: FieldPath, problem: str, fields: dict[str, object]) -> tuple[FieldPath, str]:
    """`timeout: must not …` about a field of `fields` -> that field's path and the rest."""
    name, sep, rest = problem.partition(": ")
    return ((*path, name), rest) if sep and name in fields else (path, problem)


def _dupes(values: list[str]) -> set[str]:
    return {v for v, n in Counter(values).items() if n > 1}


def _first(values: list[str]) -> dict[str, int]:
    """Each value -> the index of its first occurrence."""
    first: dict[str, int] = {}
    for i, v in enumerate(values):
        first.setdefault(v, i)
    return first


def _regions(config: Config) -> Found:
    if not config.regions:
        yield ("regions",), "at least one region is needed"
    names = [r.name for r in config.regions]
    dup, seen = _dupes(names), set()
    for i, r in enumerate(config.regions):
        if r.name in dup and r.name in seen:
            yield ("regions", i, "name"), f"{r.name!r} is defined twice"
        seen.add(r.name)
    localities = [r.locality for r in config.regions]
    for i, r in enumerate(config.regions):
        if localities.count(r.locality) > 1 and localities.index(r.locality) != i:
            yield ("regions", i, "locality"), f"{r.locality!r} is used by another region"
    owner: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, str] = {}
    for i, r in enumerate(config.regions):
        for j, cidr in enumerate(r.client_cidrs):
            if cidr in owner and owner[cidr] != r.name:
                yield ("regions", i, "client_cidrs", j), f"{cidr} already belongs to {owner[cidr]}"
            owner.setdefault(cidr, r.name)


def _policies(config: Config, known: Names) -> Found:
    regions = list(known.regions)
    names = [p.name for p in config.policies]
    for i, p in enumerate(config.policies):
        at: FieldPath = ("policies", i)
        if names.index(p.name) != i:
            yield (*at, "name"), f"{p.name!r} is defined twice"
        yield from _split(p, regions, at)
        for where, b in _all_bounds(p):
            if b.max is not None and b.min > b.max:
                yield (*at, *where), f"min {b.min} > max {b.max}"
            if b.max is not None and b.max > p.total:
                yield (*at, *where, "max"), f"{b.max} is above the policy total {p.total}"
        for j, r in enumerate(p.priority):
            if r not in regions:
                yield (*at, "priority", j), f"unknown region {r!r} (regions: {', '.join(regions)})"
        if p.guardrails.min_active_regions > len(regions):
            yield (
                (*at, "guardrails", "min_active_regions"),
                f"{p.guardrails.min_active_regions} is more than the {len(regions)} regions defined",
            )


def _all_bounds(p: PolicyConfig) -> Iterator[tuple[FieldPath, BoundsConfig]]:
    for section, cb in (("bounds", p.bounds), ("rollout", p.rollout)):
        if cb is not None:
            yield (section, "local"), cb.local
            yield (section, "remote"), cb.remote


def split_of(p: PolicyConfig, regions: int) -> tuple[int, int]:
    """(local, remote): as configured, else 1 to each remote region and the rest local."""
    if p.split is not None:
        return p.split.local, p.split.remote
    return p.total - (regions - 1), 1


def _split(p: PolicyConfig, regions: list[str], at: FieldPath) -> Found:
    if p.split is not None and p.matrix is not None:
        yield (*at, "matrix"), "give either split (local/remote) or matrix, not both"
        return
    if p.matrix is None:
        local, remote = split_of(p, len(regions))
        got = local + remote * (len(regions) - 1)
        if got != p.total:
            yield (
                (*at, "split"),
                f"local {local} + remote {remote} x {len(regions) - 1} = {got}, not the total {p.total}",
            )
        cells = [("local", local, p.bounds.local), ("remote", remote, p.bounds.remote)]
        for kind, w, b in cells:
            if w < b.min or (b.max is not None and w > b.max):
                yield (
                    (*at, "split", kind),
                    f"{w} is outside its bounds {b.min}..{b.max if b.max is not None else p.total}",
                )
        return
    for src, row in p.matrix.items():
        if src not in regions:
            yield (*at, "matrix", src), f"unknown region {src!r}"
            continue
        for tgt in row:
            if tgt not in regions:
                yield (*at, "matrix", src, tgt), f"unknown region {tgt!r}"
        missing = [r for r in regions if r not in row]
        if missing:
            yield (*at, "matrix", src), f"no weight for {', '.join(missing)}"
        if sum(row.values()) != p.total:
            yield (*at, "matrix", src), f"row sums to {sum(row.values())}, not the total {p.total}"
        for tgt, w in row.items():
            b = p.bounds.local if tgt == src else p.bounds.remote
            if w < 0 or w < b.min or (b.max is not None and w > b.max):
                yield (*at, "matrix", src, tgt), f"{w} is outside its bounds {b.min}..{b.max}"
    for r in regions:
        if r not in p.matrix:
            yield (*at, "matrix"), f"no row for region {r!r}"


def _services(config: Config, known: Names) -> Found:
    regions = set(known.regions)
    listed = ", ".join(known.regions)
    policies = {p.name: p for p in config.policies}
    names = [s.name for s in config.services]
    first_name = _first(names)
    first_fqdn = _first([s.fqdn for s in config.services])
    if not config.services:
        yield ("services",), "at least one service is needed"
    for i, s in enumerate(config.services):
        at: FieldPath = ("services", i)
        if first_name[s.name] != i:
            yield (*at, "name"), f"{s.name!r} is defined twice"
        if first_fqdn[s.fqdn] != i:
            yield (*at, "fqdn"), f"{s.fqdn!r} is already the FQDN of {names[first_fqdn[s.fqdn]]!r}"
        policy = policies.get(s.policy)
        if s.policy not in known.policies:
            yield (
                (*at, "policy"),
                f"unknown policy {s.policy!r} (policies: {', '.join(known.policies)})",
            )
        for region, vips in s.vips.items():
            if region not in regions:
                yield (
                    (*at, "vips", region),
                    f"unknown region {region!r} (regions: {listed})",
                )
            if not vips:
                yield (*at, "vips", region), "no VIPs listed"
            seen: set[tuple[str, int]] = set()
            for j, v in enumerate(vips):
                if (v.address, v.port) in seen:
                    yield (*at, "vips", region, j), f"{v.address}:{v.port} is listed twice"
                seen.add((v.address, v.port))
                if v.ips and _is_ip(v.address):
                    yield (*at, "vips", region, j, "ips"), "only a host-name VIP takes ips"
        present = [r for r, v in s.vips.items() if v and r in regions]
        if policy is not None and len(present) < policy.guardrails.min_active_regions:
            yield (
                (*at, "vips"),
                f"VIPs in {len(present)} region(s) ({', '.join(present) or 'none'}) but policy "
                f"{policy.name!r} needs min_active_regions {policy.guardrails.min_active_regions}",
            )


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _dns(config: Config, known: Names) -> Found:
    regions = known.regions
    d = config.dns
    if d.default_region is not None and d.default_region not in regions:
        yield ("dns", "default_region"), f"unknown region {d.default_region!r}"
    if d.zones:
        for i, s in enumerate(config.services):
            if not any(s.fqdn == z or s.fqdn.endswith("." + z) for z in d.zones):
                yield ("services", i, "fqdn"), f"{s.fqdn} is in none of the zones {d.zones}"
    if d.powerdns is not None and d.powerdns.api_key and d.powerdns.api_key_file:
        yield ("dns", "powerdns"), "give api_key or api_key_file, not both"
    for i, p in enumerate(config.api.peers):
        if p.region not in regions:
            yield ("api", "peers", i, "region"), f"unknown region {p.region!r}"


def _ha(config: Config, known: Names) -> Found:
    regions = known.regions
    clusters = known.clusters
    lease = config.ha.lease
    if lease.renew_deadline >= lease.duration:
        yield (
            ("ha", "lease", "renew_deadline"),
            f"{lease.renew_deadline:g}s must be shorter than the lease duration {lease.duration:g}s "
            "(a leader stops acting before its lease can be taken over)",
        )
    if lease.retry_period >= lease.renew_deadline:
        yield (
            ("ha", "lease", "retry_period"),
            f"{lease.retry_period:g}s must be shorter than renew_deadline {lease.renew_deadline:g}s",
        )
    for section, ref in (("lease", lease.cluster), ("store", config.ha.store.cluster)):
        if ref is not None and ref not in clusters:
            yield ("ha", section, "cluster"), f"unknown cluster {ref!r}"
    needs_cluster = lease.backend == "kubernetes" or config.ha.store.backend == "kubernetes"
    if needs_cluster and not clusters:
        yield ("ha",), "the kubernetes backend needs a cluster under kubernetes.clusters"
    if config.instance.region is not None and config.instance.region not in regions:
        yield ("instance", "region"), f"unknown region {config.instance.region!r}"
    yield from _retry(("ha", "store", "retry"), config.ha.store.retry)


def _kubernetes(config: Config, known: Names) -> Found:
    regions = known.regions
    names = [c.name for c in config.kubernetes.clusters]
    for i, c in enumerate(config.kubernetes.clusters):
        at: FieldPath = ("kubernetes", "clusters", i)
        if names.index(c.name) != i:
            yield (*at, "name"), f"{c.name!r} is defined twice"
        if c.region not in regions:
            yield (*at, "region"), f"unknown region {c.region!r} (regions: {', '.join(regions)})"
        if c.in_cluster and c.kubeconfig:
            yield (*at, "in_cluster"), "give in_cluster or kubeconfig, not both"
        yield from _retry((*at, "retry"), c.retry)


def _accesspoints(config: Config, known: Names) -> Found:
    home = config.accesspoints.cluster
    if home is not None and home not in known.clusters:
        yield (
            ("accesspoints", "cluster"),
            f"unknown cluster {home!r} (kubernetes.clusters: {', '.join(known.clusters) or 'none'})",
        )
    for i, ns in enumerate(config.accesspoints.namespaces):
        if config.accesspoints.namespaces.index(ns) != i:
            yield ("accesspoints", "namespaces", i), f"{ns!r} is given twice"


def _retry(at: FieldPath, retry: RetryConfig) -> Found:
    if retry.backoff > retry.backoff_max:
        yield (
            (*at, "backoff"),
            f"{retry.backoff:g}s must not exceed backoff_max {retry.backoff_max:g}s",
        )
