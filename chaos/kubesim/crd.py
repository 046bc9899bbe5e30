"""CustomResourceDefinitions read from their manifests: what a CRD makes the server serve.

The AccessPoint CRD lives in `deploy/kubernetes/accesspoint-crd.yaml`; the
simulated clusters load that very file, so what gtm deploys and what the
tests run against never disagree. From a CRD's storage version come its
names, scope and status subresource (`resources.from_crd` makes them a `Resource`), the `Schema` that validates,
prunes and defaults its objects (and tells server-side apply which lists are
maps), its printer columns, and the openAPIV3Schema served on `/openapi/v3`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from chaos.kubesim.schema import ANY, Schema, from_openapi

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
ACCESS_POINT_CRD = DEPLOY / "accesspoint-crd.yaml"


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class CustomResourceDefinition:
    group: str
    versions: tuple[str, ...]  # storage first
    plural: str
    singular: str
    kind: str
    namespaced: bool
    status_subresource: bool
    short_names: tuple[str, ...]
    categories: tuple[str, ...]
    schema: Schema  # the whole object, metadata as the apiserver keeps it
    columns: tuple[PrinterColumn, ...]
    openapi: Mapping[str, Any]  # the storage version's openAPIV3Schema, as written


def parse_crd(doc: Mapping[str, Any]) -> CustomResourceDefinition:
    if (
        doc.get("apiVersion") != "apiextensions.k8s.io/v1"
        or doc.get("kind") != "CustomResourceDefinition"
    ):
        raise ValueError("not an apiextensions.k8s.io/v1 CustomResourceDefinition")
    spec = doc["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served", True)]
    storage = next(v for v in served if v.get("storage"))
    versions = (storage["name"], *(v["name"] for v in served if v is not storage))
    openapi = storage["schema"]["openAPIV3Schema"]
    whole = from_openapi(openapi)
    schema = Schema(
        "object",
        properties={**whole.properties, "metadata": ANY},
        required=whole.required,
        description=whole.description,
    )
    columns = tuple(
        PrinterColumn(
            name=c["name"],
            type=c["type"],
            json_path=c["jsonPath"],
            description=c.get("description", ""),
            priority=int(c.get("priority", 0)),
        )
        for c in storage.get("additionalPrinterColumns") or ()
    )
    return CustomResourceDefinition(
        group=spec["group"],
        versions=versions,
        plural=names["plural"],
        singular=names.get("singular", names["kind"].lower()),
        kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        status_subresource="status" in (storage.get("subresources") or {}),
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        schema=schema,
        columns=columns,
        openapi=openapi,
    )


@cache
def load_crd(path: Path) -> CustomResourceDefinition:
    return parse_crd(yaml.safe_load(path.read_text()))


def access_point() -> CustomResourceDefinition:
    return load_crd(ACCESS_POINT_CRD)
