"""DestinationRules whose locality `distribute` overrides the WLE weights gtm writes. Pure.

For a client whose locality matches a `from`, Istio gives each `to`
locality its percentage of the traffic and removes every endpoint of a
locality no `to` names: gtm's per-locality WLE weights stop counting, and a
region left out gets nothing whatever the table says (KUBERNETES.md). gtm
does not fight such a rule; `distribute_conflicts` finds it so it can be
reported.

Which rules count for a managed service (its FQDN), the way istiod picks them:

- host: a short name (no dot) stands for `<name>.<the rule's namespace>.svc.<domain>`,
  so it never matches a ServiceEntry host such as `foo.example.com`; a name
  with a dot is taken as it is; `*.example.com` matches every name ending in
  `.example.com` (any number of labels), `*` matches every name. Names
  compare case-insensitively, without a trailing dot.
- precedence, within one namespace: an exact host beats a wildcard and a
  longer wildcard a shorter one, so a rule is reported only when its host is
  the most specific match there. Rules with a `workloadSelector` apply to the
  workloads they select only: each one that matches is reported, marked with
  its selector. Several rules with the same host are merged by istiod (the
  oldest's traffic policy wins): each that sets `distribute` is reported.
- where: `trafficPolicy.loadBalancer`, each `trafficPolicy.portLevelSettings[]`
  (named by its port) and each subset's traffic policy (named by the subset).
- `localityLbSetting.enabled: false` switches the setting off: no conflict.

Not seen from here: rules in namespaces that were not read (the root
namespace `istio-system`, the clients' namespaces), `exportTo`, and the
mesh-wide `meshConfig.localityLbSetting`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

DOMAIN = "cluster.local"


@dataclass(frozen=True, slots=True)
class Distribute:
    """One `distribute` entry: clients in `source` send `to` (locality, percent)."""

    source: str
    to: tuple[tuple[str, int], ...]

    def describe(self, localities: Mapping[str, str]) -> str:
        """`from region01/* sends 100% to region02/*, dc1 and dc3 get nothing`."""
        shares = ", ".join(f"{percent}% to {locality}" for locality, percent in self.to)
        text = f"from {self.source} sends {shares or 'nothing anywhere'}"
        left_out = [
            region
            for region, locality in localities.items()
            if not any(locality_matches(locality, to) for to, _ in self.to)
        ]
        if left_out:
            text += f", {_and(left_out)} {'gets' if len(left_out) == 1 else 'get'} nothing"
        return text


@dataclass(frozen=True, slots=True)
class Placement:
    """A `distribute` at one place in a rule: top level, a port, a subset (and its port)."""

    where: str  # "" (top level) | "port 443" | "subset v1" | "subset v1 port 443"
    distribute: tuple[Distribute, ...]


@dataclass(frozen=True, slots=True)
class DestinationRule:
    """What gtm reads of a DestinationRule: where it applies and its `distribute` settings."""

    namespace: str
    name: str
    host: str  # as written
    selector: tuple[tuple[str, str], ...]  # workloadSelector.matchLabels (empty: every client)
    placements: tuple[Placement, ...]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def resolved_host(self, domain: str = DOMAIN) -> str:
        return resolve_host(self.host, self.namespace, domain)

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> DestinationRule:
        meta = _mapping(obj.get("metadata"))
        spec = _mapping(obj.get("spec"))
        selector = _mapping(_mapping(spec.get("workloadSelector")).get("matchLabels"))
        placements = list(_placements(spec.get("trafficPolicy"), ""))
        for subset in _list(spec.get("subsets")):
            subset = _mapping(subset)
            where = f"subset {subset.get('name', '?')}"
            placements += _placements(subset.get("trafficPolicy"), where)
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            host=str(spec.get("host", "")),
            selector=tuple(sorted((str(k), str(v)) for k, v in selector.items())),
            placements=tuple(placements),
        )


@dataclass(frozen=True, slots=True)
class DistributeConflict:
    """A rule's `distribute` that overrides the WLE weights gtm writes for one managed service."""

    rule: str  # namespace/name
    host: str  # the rule's host, as written
    service: str
    fqdn: str
    where: str  # "" (top level) | "port 443" | "subset v1" | "subset v1 port 443"
    selector: str  # "app=x,tier=y" for a rule with a workloadSelector, else ""
    what: str  # the distribute entries, described

    def __str__(self) -> str:
        place = "".join(
            f", {part}"
            for part in (self.where, self.selector and f"workloads {self.selector}")
            if part
        )
        return (
            f"{self.rule} (host {self.host}{place}): distribute {self.what}:"
            f" gtm's weights for {self.service} ({self.fqdn}) are ignored"
        )


def distribute_conflicts(
    rules: Iterable[Mapping[str, Any]],
    services: Mapping[str, str],
    localities: Mapping[str, str] | None = None,
    *,
    domain: str = DOMAIN,
) -> tuple[DistributeConflict, ...]:
    """The rules (API objects) whose `distribute` applies to a managed service, sorted.

    `services` maps each managed service's name to its FQDN; `localities`
    (region -> locality) names the regions a `distribute` leaves out.
    """
    parsed = [DestinationRule.parse(obj) for obj in rules]
    by_namespace: dict[str, list[DestinationRule]] = {}
    for rule in parsed:
        by_namespace.setdefault(rule.namespace, []).append(rule)
    out: set[DistributeConflict] = set()
    for service, fqdn in services.items():
        name = _normal(fqdn)
        for namespace_rules in by_namespace.values():
            for rule in _applying(namespace_rules, name, domain):
                out.update(_conflicts(rule, service, name, localities or {}))
    return tuple(sorted(out, key=lambda c: (c.rule, c.service, c.where, c.what)))


def resolve_host(host: str, namespace: str, domain: str = DOMAIN) -> str:
    """A rule's host as istiod reads it: a short name is a Kubernetes service of the rule's namespace."""
    name = _normal(host)
    if name == "*" or "." in name or _is_ip(name) or not name:
        return name
    return f"{name}.{namespace}.svc.{domain}"


def host_matches(rule_host: str, name: str) -> bool:
    """Does a resolved rule host (exact or `*.suffix`, or `*`) cover the service name?"""
    if rule_host == "*":
        return True
    if rule_host.startswith("*."):
        return name.endswith(rule_host[1:])
    return rule_host == name


def locality_matches(locality: str, rule: str) -> bool:
    """Istio's LocalityMatch: `region/zone/subzone` against a rule where `*` or nothing is any."""
    have = _split_locality(locality)
    want = _split_locality(rule)
    if want[0] != "*" and want[0] != have[0]:
        return False
    return all(w in ("*", "") or w == h for w, h in zip(want[1:], have[1:], strict=True))


# -- the rules that apply ------------------------------------------------------------


def _applying(rules: list[DestinationRule], name: str, domain: str) -> Iterator[DestinationRule]:
    """The rules of one namespace that istiod applies to `name`."""
    general = [r for r in rules if not r.selector and host_matches(r.resolved_host(domain), name)]
    if general:
        best = max((r.resolved_host(domain) for r in general), key=_specificity)
        yield from (r for r in general if r.resolved_host(domain) == best)
    yield from (r for r in rules if r.selector and host_matches(r.resolved_host(domain), name))


def _specificity(host: str) -> tuple[bool, int]:
    """Exact before wildcard; then the longer (more specific) wildcard."""
    return (not host.startswith("*"), len(host))


def _conflicts(
    rule: DestinationRule, service: str, fqdn: str, localities: Mapping[str, str]
) -> Iterator[DistributeConflict]:
    selector = ",".join(f"{k}={v}" for k, v in rule.selector)
    for placement in rule.placements:
        yield DistributeConflict(
            rule=rule.ref,
            host=rule.host,
            service=service,
            fqdn=fqdn,
            where=placement.where,
            selector=selector,
            what="; ".join(d.describe(localities) for d in placement.distribute),
        )


# -- parsing, defensively (the API server checks little of a rule) --------------------


def _placements(policy: Any, where: str) -> Iterator[Placement]:
    policy = _mapping(policy)
    if entries := _distribute(policy.get("loadBalancer")):
        yield Placement(where, entries)
    for port_level in _list(policy.get("portLevelSettings")):
        port_level = _mapping(port_level)
        if entries := _distribute(port_level.get("loadBalancer")):
            port = _mapping(port_level.get("port")).get("number", "?")
            yield Placement(f"{where} port {port}".strip(), entries)


def _distribute(load_balancer: Any) -> tuple[Distribute, ...]:
    setting = _mapping(_mapping(load_balancer).get("localityLbSetting"))
    if setting.get("enabled") is False:
        return ()
    out = []
    for entry in _list(setting.get("distribute")):
        entry = _mapping(entry)
        to = _mapping(entry.get("to"))
        shares = tuple(
            sorted(
                (str(loc), pct)
                for loc, pct in to.items()
                if isinstance(pct, int) and not isinstance(pct, bool)
            )
        )
        out.append(Distribute(str(entry.get("from", "")), shares))
    return tuple(out)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _normal(name: str) -> str:
    return name.strip().lower().rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _split_locality(locality: str) -> tuple[str, str, str]:
    parts = [*locality.split("/", 2), "", ""]
    return parts[0], parts[1], parts[2]


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
