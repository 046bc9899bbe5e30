"""The AccessPoint resource (`gtm.io/v1alpha1`, kind `AccessPoint`) as a typed value.

    apiVersion: gtm.io/v1alpha1
    kind: AccessPoint
    metadata: {name: foo-gw, namespace: foo}
    spec:
      scope: {clusters: [dc1-k8s, dc2-k8s, dc3-k8s]}
      trafficTemplate: {service: {...}, gateway: {...}, virtualService: {...}, destinationRule: {...}}
      overrides: [{clusters: [dc2-k8s], jsonPatch: [...], mergePatch: {...}}]
      upstreams: [{accessPoint: foo-app, port: {number: 443, name: https, protocol: TLS}}]
      gtm: {fqdn: foo.example.com, policy: default}
      policy: {rollout: {order: [...], maxInFlight: 1, pauseAfter: [...], gate: {...}}}

`parse_accesspoint(doc)` checks a document and returns the value, or raises
`AccessPointError` with every problem at once, each with its field path (the
caller adds file and line). Template objects are kept as plain mappings: they
are Kubernetes objects whose schema belongs to their kinds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

API_VERSION = "gtm.io/v1alpha1"
KIND = "AccessPoint"
TEMPLATE_KINDS = ("service", "gateway", "virtualService", "destinationRule")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

Path = tuple[str | int, ...]


class AccessPointError(ValueError):
    """An AccessPoint that cannot be used; `problems` holds (field path, message) pairs."""

    def __init__(self, problems: Sequence[tuple[Path, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{_dotted(p)}: {m}" for p, m in self.problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _dns_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a DNS label (lowercase letters, digits and '-')")
    return value


class Metadata(_Model):
    model_config = ConfigDict(extra="allow", frozen=True)
    name: str
    namespace: str = "default"
    generation: int | None = None

    _check = field_validator("name", "namespace")(_dns_name)


class Scope(_Model):
    clusters: tuple[str, ...] = Field(min_length=1)


class Override(_Model):
    """Changes to the rendered template in some clusters: JSON patch first, then merge patch."""

    clusters: tuple[str, ...] = Field(min_length=1)
    json_patch: tuple[dict[str, Any], ...] = Field(default=(), alias="jsonPatch")
    merge_patch: dict[str, Any] | None = Field(default=None, alias="mergePatch")


class Port(_Model):
    number: int = Field(ge=1, le=65535)
    name: str
    protocol: Literal["HTTP", "HTTPS", "HTTP2", "GRPC", "TLS", "TCP", "MONGO", "UDP"] = "TLS"


class Weights(_Model):
    local: int = Field(ge=1)
    remote: int = Field(ge=1)


class Tls(_Model):
    mode: Literal["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"] = "SIMPLE"
    sni: str | None = None


class Upstream(_Model):
    """Another AP this one sends traffic to: one WLE per upstream VIP, one SE per upstream."""

    access_point: str = Field(alias="accessPoint")
    namespace: str | None = None  # default: this AP's namespace
    port: Port
    weights: Weights | None = None  # default: the gtm policy's split
    tls: Tls | None = None

    _check = field_validator("access_point")(_dns_name)


class GtmService(_Model):
    """This AP is a gtm service: its VIPs are probed, answered in DNS and failed over."""

    fqdn: str
    policy: str = "default"
    probe: dict[str, Any] | None = None


# the conditions a rollout's gate can wait for, each judged in one cluster
GATES = ("Applied", "L4Ready", "CertificateReady", "UpstreamsResolved")
_GO_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:h|m|s|ms))+$")
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _go_duration(value: Any) -> Any:
    """Seconds from a Go duration (`5m`, `1m30s`, `500ms`), as the CRD says; numbers pass."""
    if isinstance(value, str):
        if not _GO_DURATION.match(value) or len(value) > 32:
            raise ValueError(f"{value!r} is not a duration (like 5m, 1m30s, 90s)")
        return sum(float(n) * _GO_UNITS[u] for n, u in _GO_PART.findall(value))
    return value


class Gate(_Model):
    conditions: tuple[str, ...] = ("Applied",)
    timeout: Annotated[float, BeforeValidator(_go_duration)] = Field(
        default=300.0, gt=0, le=7 * 86400, allow_inf_nan=False
    )

    @field_validator("conditions")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for c in value:
            if c not in GATES:
                raise ValueError(f"{c!r} is not a gate condition (one of {', '.join(GATES)})")
        return value


class Rollout(_Model):
    order: tuple[str, ...] = ()
    max_in_flight: int = Field(default=1, ge=1, alias="maxInFlight")
    pause_after: tuple[str, ...] = Field(default=(), alias="pauseAfter")
    gate: Gate = Gate()


class Policy(_Model):
    rollout: Rollout | None = None


class TrafficTemplate(_Model):
    service: dict[str, Any] | None = None
    gateway: dict[str, Any] | None = None
    virtual_service: dict[str, Any] | None = Field(default=None, alias="virtualService")
    destination_rule: dict[str, Any] | None = Field(default=None, alias="destinationRule")

    def objects(self) -> dict[str, dict[str, Any]]:
        """The template's objects by their key (`service`, `gateway`, …), present ones only."""
        out = {
            "service": self.service,
            "gateway": self.gateway,
            "virtualService": self.virtual_service,
            "destinationRule": self.destination_rule,
        }
        return {k: v for k, v in out.items() if v is not None}


class Spec(_Model):
    scope: Scope
    traffic_template: TrafficTemplate = Field(default=TrafficTemplate(), alias="trafficTemplate")
    overrides: tuple[Override, ...] = ()
    upstreams: tuple[Upstream, ...] = ()
    gtm: GtmService | None = None
    policy: Policy = Policy()
    # Refuse: an existing object the AP did not make is reported, not taken (the CRD's default)
    conflict_resolution: Literal["Refuse", "Overwrite"] = Field(
        default="Refuse", alias="conflictResolution"
    )


class AccessPoint(_Model):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)
    api_version: Literal["gtm.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["AccessPoint"]
    metadata: Metadata
    spec: Spec

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    def upstream_namespace(self, upstream: Upstream) -> str:
        return upstream.namespace or self.namespace


def parse_accesspoint(doc: Any) -> AccessPoint:
    """A checked AccessPoint; `AccessPointError` names every problem with its field path."""
    if not isinstance(doc, Mapping):
        raise AccessPointError([((), "expected an AccessPoint (a mapping with apiVersion, kind)")])
    try:
        ap = AccessPoint.model_validate(doc)
    except ValidationError as e:
        raise AccessPointError(
            [(tuple(err["loc"]), _message(err)) for err in e.errors(include_url=False)]
        ) from None
    problems = _rules(ap)
    if problems:
        raise AccessPointError(problems)
    return ap


def _rules(ap: AccessPoint) -> list[tuple[Path, str]]:
    """What the schema cannot say: names that must agree with each other."""
    problems: list[tuple[Path, str]] = []
    scope = set(ap.spec.scope.clusters)
    for i, o in enumerate(ap.spec.overrides):
        for j, c in enumerate(o.clusters):
            if c not in scope:
                problems.append(
                    (("spec", "overrides", i, "clusters", j), f"{c!r} is not in spec.scope")
                )
        if not o.json_patch and o.merge_patch is None:
            problems.append((("spec", "overrides", i), "needs jsonPatch or mergePatch"))
        for k, op in enumerate(o.json_patch):
            if op.get("op") not in ("add", "remove", "replace", "move", "copy", "test"):
                where = ("spec", "overrides", i, "jsonPatch", k, "op")
                problems.append((where, f"{op.get('op')!r} is not an RFC 6902 op"))
            if not isinstance(op.get("path"), str):
                problems.append((("spec", "overrides", i, "jsonPatch", k, "path"), "missing"))
    names = [u.access_point for u in ap.spec.upstreams]
    for i, u in enumerate(ap.spec.upstreams):
        if u.access_point == ap.name and ap.upstream_namespace(u) == ap.namespace:
            problems.append((("spec", "upstreams", i), "an AccessPoint cannot be its own upstream"))
        if names.count(u.access_point) > 1 and names.index(u.access_point) != i:
            problems.append((("spec", "upstreams", i), f"{u.access_point!r} listed twice"))
    rollout = ap.spec.policy.rollout
    if rollout is not None:
        for key, names_ in (("order", rollout.order), ("pauseAfter", rollout.pause_after)):
            for j, c in enumerate(names_):
                if c not in scope:
                    where = ("spec", "policy", "rollout", key, j)
                    problems.append((where, f"{c!r} is not in spec.scope"))
    for key, obj in ap.spec.traffic_template.objects().items():
        if not isinstance(obj.get("spec", {}), Mapping):
            problems.append((("spec", "trafficTemplate", key, "spec"), "must be a mapping"))
    return problems


def _message(err: Mapping[str, Any]) -> str:
    value = err.get("input")
    shown = "" if isinstance(value, Mapping | list) else f" (got {value!r:.60})"
    return f"{err['msg']}{shown}"


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"
