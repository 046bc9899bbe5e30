"""A WorkloadEntry as gtm reads it: the few fields it decides on, parsed once.

`WorkloadEntry.parse` takes the object as the API returns it (a dict) and
keeps what the reconciler compares: address, locality, weight, labels,
annotations and the `status.conditions` list (whole, so conditions gtm does
not own are written back untouched).

The leader's fencing epoch travels with every write: the `gtm.io/epoch`
annotation on writes to the main resource, and a `gtm.io/Epoch` condition on
writes to the status subresource (the apiserver drops metadata changes sent
to `/status`, so an annotation could not go with a status write). A WLE's
epoch is the higher of the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

HEALTHY = "Healthy"  # the condition Istio reads
UNHEALTHY_REASON = "unhealthy"
HEALTH_CHECKS = "proxy.istio.io/health-checks-enabled"  # Istio reads the condition only with it
WORKLOAD_CONTROLLER = "istio.io/workloadController"  # set on WLEs istiod manages itself
EPOCH_ANNOTATION = "gtm.io/epoch"
# set by the AccessPoint controller when the WLE's VIP left discovery: out until deleted
WITHDRAWN_ANNOTATION = "gtm.io/withdrawn-at"
VIP_WITHDRAWN = "VIP Withdrawn"  # the Healthy condition's message meanwhile
EPOCH_CONDITION = "gtm.io/Epoch"
EPOCH_REASON = "LeaderEpoch"

Key = tuple[str, str]  # (namespace, name)


def timestamp(moment: datetime) -> str:
    """A condition time as Kubernetes writes it: RFC 3339, UTC, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


@dataclass(frozen=True, slots=True)
class WorkloadEntry:
    namespace: str
    name: str
    resource_version: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    address: str | None
    locality: str | None
    weight: int | None  # None: unset (Istio treats it as 1)
    ports: Mapping[str, int]
    conditions: tuple[Mapping[str, Any], ...]

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> WorkloadEntry:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        conditions = status.get("conditions") if isinstance(status, Mapping) else None
        ports = spec.get("ports") or {}
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            resource_version=str(meta.get("resourceVersion", "")),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            address=spec.get("address"),
            locality=spec.get("locality"),
            weight=_int(spec.get("weight")),
            ports={str(k): v for k, v in ports.items()} if isinstance(ports, Mapping) else {},
            conditions=tuple(c for c in conditions or () if isinstance(c, Mapping)),
        )

    def condition(self, type_: str) -> Mapping[str, Any] | None:
        for c in self.conditions:
            if c.get("type") == type_:
                return c
        return None

    @property
    def healthy(self) -> str | None:
        """The Healthy condition's status ("True", "False", …), None when it is missing."""
        c = self.condition(HEALTHY)
        return None if c is None else str(c.get("status"))

    @property
    def health_checks(self) -> bool:
        return self.annotations.get(HEALTH_CHECKS) == "true"

    @property
    def withdrawn(self) -> bool:
        """Its VIP left discovery: it waits out the DNS TTL, out of traffic, to be deleted."""
        return WITHDRAWN_ANNOTATION in self.annotations

    @property
    def istiod_managed(self) -> bool:
        return WORKLOAD_CONTROLLER in self.annotations

    @property
    def epoch(self) -> int:
        """The highest leader epoch that wrote this WLE (0: none)."""
        found = _int(self.annotations.get(EPOCH_ANNOTATION)) or 0
        c = self.condition(EPOCH_CONDITION)
        if c is not None:
            found = max(found, _int(c.get("message")) or 0)
        return found

    def newer_than(self, other: WorkloadEntry) -> bool:
        """Whether this copy is not an older write than `other`."""
        return not_older(self.resource_version, other.resource_version)


def not_older(version: str, than: str) -> bool:
    """Whether resourceVersion `version` is not older than `than`, when they compare.

    resourceVersions are opaque to clients, but every apiserver backed by etcd
    (and the simulated one) hands out increasing integers; when both look like
    integers a late watch event must not roll the cache back. Otherwise the
    later arrival wins.
    """
    mine, theirs = _int(version), _int(than)
    if mine is None or theirs is None:
        return True
    return mine >= theirs
