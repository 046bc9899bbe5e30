"""`/openapi/v3` and `/openapi/v2`: what kubectl reads to validate, patch and explain."""

from __future__ import annotations

from typing import Any

import aiohttp
from kubesim_testing import Kubectl, needs_kubectl

from chaos.kubesim import KubeSim


async def _get(sim: KubeSim, path: str, accept: str = "application/json") -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{sim.url}{path}", headers={"Accept": accept}) as r:
            return r.status, await r.json(content_type=None)


async def test_v3_root_lists_every_group_version_with_a_hash(sim: KubeSim) -> None:
    status, root = await _get(sim, "/openapi/v3")
    assert status == 200
    for key in ("api/v1", "apis/gtm.io/v1alpha1", "apis/networking.istio.io/v1"):
        assert root["paths"][key]["serverRelativeURL"].startswith(f"/openapi/v3/{key}?hash=")


async def test_v3_document_has_what_kubectl_looks_for(sim: KubeSim) -> None:
    _, root = await _get(sim, "/openapi/v3")
    status, doc = await _get(sim, root["paths"]["api/v1"]["serverRelativeURL"])
    assert status == 200 and doc["openapi"].startswith("3.")
    item = doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]
    gvk = {"group": "", "version": "v1", "kind": "Service"}
    assert item["patch"]["x-kubernetes-group-version-kind"] == gvk
    assert "fieldValidation" in [p["name"] for p in item["patch"]["parameters"]]
    assert "application/strategic-merge-patch+json" in item["patch"]["requestBody"]["content"]
    service = doc["components"]["schemas"]["io.k8s.api.core.v1.Service"]
    assert service["x-kubernetes-group-version-kind"] == [gvk]
    ports = service["properties"]["spec"]["properties"]["ports"]
    assert ports["x-kubernetes-patch-merge-key"] == "port"
    assert ports["x-kubernetes-patch-strategy"] == "merge"
    assert ports["x-kubernetes-list-map-keys"] == ["port", "protocol"]
    target = ports["items"]["properties"]["targetPort"]
    assert target["x-kubernetes-int-or-string"] is True
    assert "/api/v1/namespaces/{name}/status" in doc["paths"]  # cluster-scoped


async def test_v3_accesspoint_schema_is_the_crds(sim: KubeSim) -> None:
    _, doc = await _get(sim, "/openapi/v3/apis/gtm.io/v1alpha1")
    schema = doc["components"]["schemas"]["io.gtm.v1alpha1.AccessPoint"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "gtm.io", "version": "v1alpha1", "kind": "AccessPoint"}
    ]
    status = schema["properties"]["status"]["properties"]
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    assert schema["properties"]["metadata"]["allOf"][0]["$ref"].endswith(".ObjectMeta")
    patch = doc["paths"]["/apis/gtm.io/v1alpha1/namespaces/{namespace}/accesspoints/{name}"]
    assert "application/strategic-merge-patch+json" not in patch["patch"]["requestBody"]["content"]
    assert (await _get(sim, "/openapi/v3/apis/nope/v1"))[0] == 404


async def test_v2_in_json_holds_every_kind(sim: KubeSim) -> None:
    # (in protobuf: swagger and info only; test_kubesim_accesspoint reads it, and applies a
    # `kind: List` with kubectl, the one case kubectl 1.32 reads v2 for)
    status, doc = await _get(sim, "/openapi/v2")
    assert status == 200 and doc["swagger"] == "2.0"
    service = doc["definitions"]["io.k8s.api.core.v1.Service"]
    ports = service["properties"]["spec"]["properties"]["ports"]
    assert ports["x-kubernetes-patch-merge-key"] == "port"
    assert ports["items"]["properties"]["targetPort"]["format"] == "int-or-string"
    assert "io.istio.networking.v1.VirtualService" in doc["definitions"]


@needs_kubectl
async def test_kubectl_explain_a_built_in_and_an_istio_kind(kubectl: Kubectl) -> None:
    out = await kubectl("explain", "service.spec.loadBalancerClass")
    assert "FIELD: loadBalancerClass <string>" in out
    ports = await kubectl("explain", "svc.spec.ports")
    assert "port\t<integer> -required-" in ports
    gateway = await kubectl("explain", "gateways.networking.istio.io.spec.servers")
    assert "hosts\t<[]string> -required-" in gateway
