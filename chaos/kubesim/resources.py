"""The kinds of object the simulated API server serves, and how each behaves.

A `Resource` carries what the apiserver's per-type strategy decides: custom
resource or built-in, which versions share its storage, whether it has a
`status` subresource, whether a PUT may create it, whether a PUT needs a
resourceVersion.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from chaos.kubesim.crd import CustomResourceDefinition, access_point

CUSTOM_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)
BUILTIN_PATCH_TYPES = (*CUSTOM_PATCH_TYPES, "application/strategic-merge-patch+json")


@dataclass(frozen=True)
class Resource:
    """One served resource type (a CRD or a built-in)."""

    group: str
    versions: tuple[str, ...]  # the first is the storage and preferred version
    plural: str
    singular: str
    kind: str
    namespaced: bool = True
    custom: bool = False
    status_subresource: bool = False
    create_on_update: bool = False
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def storage_version(self) -> str:
        return self.versions[0]

    @property
    def group_resource(self) -> str:
        """`workloadentries.networking.istio.io`, or `configmaps` for core."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """`WorkloadEntry.networking.istio.io`, or `ConfigMap` for core."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def unconditional_update(self) -> bool:
        """May a PUT omit metadata.resourceVersion? Built-ins yes, CRDs no."""
        return not self.custom

    @property
    def tracks_generation(self) -> bool:
        return self.custom

    @property
    def patch_types(self) -> tuple[str, ...]:
        return CUSTOM_PATCH_TYPES if self.custom else BUILTIN_PATCH_TYPES

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def verbs(self) -> list[str]:
        return ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


WORKLOAD_ENTRY = Resource(
    group="networking.istio.io",
    versions=("v1", "v1beta1"),
    plural="workloadentries",
    singular="workloadentry",
    kind="WorkloadEntry",
    custom=True,
    status_subresource=True,
    short_names=("we",),
)
SERVICE_ENTRY = Resource(
    group="networking.istio.io",
    versions=("v1", "v1beta1"),
    plural="serviceentries",
    singular="serviceentry",
    kind="ServiceEntry",
    custom=True,
    status_subresource=True,
    short_names=("se",),
)
DESTINATION_RULE = Resource(
    group="networking.istio.io",
    versions=("v1", "v1beta1"),
    plural="destinationrules",
    singular="destinationrule",
    kind="DestinationRule",
    custom=True,
    status_subresource=True,  # as every Istio CRD
    short_names=("dr",),
)
LEASE = Resource(
    group="coordination.k8s.io",
    versions=("v1",),
    plural="leases",
    singular="lease",
    kind="Lease",
    create_on_update=True,
)
CONFIG_MAP = Resource(
    group="",
    versions=("v1",),
    plural="configmaps",
    singular="configmap",
    kind="ConfigMap",
    short_names=("cm",),
)
SECRET = Resource(group="", versions=("v1",), plural="secrets", singular="secret", kind="Secret")
SERVICE = Resource(
    group="",
    versions=("v1",),
    plural="services",
    singular="service",
    kind="Service",
    status_subresource=True,
    short_names=("svc",),
    categories=("all",),
)
NAMESPACE = Resource(
    group="",
    versions=("v1",),
    plural="namespaces",
    singular="namespace",
    kind="Namespace",
    namespaced=False,
    status_subresource=True,
    short_names=("ns",),
)
GATEWAY = Resource(
    group="networking.istio.io",
    versions=("v1", "v1beta1"),
    plural="gateways",
    singular="gateway",
    kind="Gateway",
    custom=True,
    status_subresource=True,
    short_names=("gw",),
    categories=("istio-io", "networking-istio-io"),
)
VIRTUAL_SERVICE = Resource(
    group="networking.istio.io",
    versions=("v1", "v1beta1"),
    plural="virtualservices",
    singular="virtualservice",
    kind="VirtualService",
    custom=True,
    status_subresource=True,
    short_names=("vs",),
    categories=("istio-io", "networking-istio-io"),
)


def from_crd(crd: CustomResourceDefinition) -> Resource:
    return Resource(
        group=crd.group,
        versions=crd.versions,
        plural=crd.plural,
        singular=crd.singular,
        kind=crd.kind,
        namespaced=crd.namespaced,
        custom=True,
        status_subresource=crd.status_subresource,
        short_names=crd.short_names,
        categories=crd.categories,
    )


ACCESS_POINT = from_crd(access_point())

DEFAULT_RESOURCES = (
    WORKLOAD_ENTRY,
    SERVICE_ENTRY,
    DESTINATION_RULE,
    GATEWAY,
    VIRTUAL_SERVICE,
    ACCESS_POINT,
    LEASE,
    CONFIG_MAP,
    SECRET,
    SERVICE,
    NAMESPACE,
)


class ResourceTable:
    """Look resources up the ways requests and fixtures name them."""

    def __init__(self, resources: Iterable[Resource] = DEFAULT_RESOURCES) -> None:
        self._all = tuple(resources)

    def __iter__(self) -> Iterator[Resource]:
        return iter(self._all)

    def find(self, group: str, version: str, plural: str) -> Resource | None:
        for resource in self._all:
            if resource.group == group and resource.plural == plural:
                return resource if version in resource.versions else None
        return None

    def by_kind(self, api_version: str, kind: str) -> tuple[Resource, str] | None:
        """The resource and version an object's apiVersion/kind names."""
        group, _, version = api_version.rpartition("/")
        for resource in self._all:
            if resource.group == group and resource.kind == kind and version in resource.versions:
                return resource, version
        return None

    def by_group_resource(self, group_resource: str) -> Resource | None:
        for resource in self._all:
            if resource.group_resource == group_resource:
                return resource
        return None

    def groups(self) -> dict[str, list[str]]:
        """Group name → versions (preferred first), core group excluded."""
        out: dict[str, list[str]] = {}
        for resource in self._all:
            if resource.group:
                versions = out.setdefault(resource.group, [])
                versions.extend(v for v in resource.versions if v not in versions)
        return out

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self._all if r.group == group and version in r.versions]
