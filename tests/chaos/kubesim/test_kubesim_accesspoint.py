"""The AccessPoint CRD as the simulated cluster serves it: loaded from the deployed
manifest, validated, defaulted, with its status subresource and printer columns, through
gtm's client room (`kube.Client`) and the real `kubectl` (get, apply, explain, patch)."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from kubesim_testing import NS, Kubectl, needs_kubectl, table_rows

from chaos.kubesim import KubeSim
from chaos.kubesim.crd import ACCESS_POINT_CRD, access_point
from chaos.kubesim.resources import ACCESS_POINT
from kube import MERGE_PATCH, Client, KubeError

GROUP, VERSION, PLURAL = "gtm.io", "v1alpha1", "accesspoints"


def accesspoint(name: str = "foo", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "scope": {"clusters": ["dc1", "dc2"]},
        "trafficTemplate": {
            "service": {
                "metadata": {"name": f"{name}-gw"},
                "spec": {"type": "LoadBalancer", "loadBalancerClass": "gtm.io/ipvs"},
            }
        },
        "upstreams": [
            {"accessPoint": "bar", "port": {"number": 443, "name": "https", "protocol": "HTTPS"}}
        ],
        "gtm": {"fqdn": f"{name}.example.com"},
        **spec,
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AccessPoint",
        "metadata": {"name": name},
        "spec": body,
    }


async def _create(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    api = client.custom_objects
    return await client.request(
        "create",
        partial(api.create_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, body),
    )


def test_the_served_crd_is_the_deployed_manifest() -> None:
    doc = yaml.safe_load(ACCESS_POINT_CRD.read_text())
    assert doc["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    assert (ACCESS_POINT.group, ACCESS_POINT.plural, ACCESS_POINT.kind) == (
        GROUP,
        PLURAL,
        "AccessPoint",
    )
    assert ACCESS_POINT.short_names == ("ap",) and ACCESS_POINT.status_subresource
    assert ACCESS_POINT.versions == (VERSION,) and ACCESS_POINT.namespaced
    crd = access_point()
    assert crd.openapi == doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert [c.name for c in crd.columns] == ["Phase", "Revision", "FQDN", "Age"]
    spec = crd.schema.properties["spec"]
    assert set(spec.properties) >= {
        "scope",
        "trafficTemplate",
        "overrides",
        "upstreams",
        "gtm",
        "policy",
        "conflictResolution",
    }


async def test_create_defaults_and_keeps_status_apart(kube_client: Client) -> None:
    created = await _create(kube_client, {**accesspoint(), "status": {"vips": [{"ip": "1.2.3.4"}]}})
    assert "status" not in created  # create drops status
    assert created["spec"]["conflictResolution"] == "Refuse"  # the schema's default
    assert created["metadata"]["generation"] == 1
    api = kube_client.custom_objects
    status = {"status": {"observedGeneration": 1, "rollout": {"phase": "Progressing"}}}
    patched = await kube_client.request(
        "patch",
        partial(
            api.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            NS,
            PLURAL,
            "foo",
            status,
            _content_type=MERGE_PATCH,
        ),
    )
    assert patched["status"]["rollout"]["phase"] == "Progressing"
    assert patched["metadata"]["generation"] == 1  # status is not spec
    spec = {"spec": {"gtm": {"fqdn": "foo2.example.com"}}, "status": {"vips": []}}
    updated = await kube_client.request(
        "patch",
        partial(
            api.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            NS,
            PLURAL,
            "foo",
            spec,
            _content_type=MERGE_PATCH,
        ),
    )
    assert updated["metadata"]["generation"] == 2
    assert updated["status"] == patched["status"]  # the main resource keeps status


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"upstreams": [{"accessPoint": "bar", "port": {"number": 70000}}]}, "number"),
        ({"scope": {"clusters": []}}, "spec.scope.clusters"),
        ({"conflictResolution": "Whatever"}, "spec.conflictResolution"),
        ({"upstreams": [{"namespace": "x"}]}, "accessPoint"),
    ],
)
async def test_the_schema_refuses_what_the_crd_refuses(
    kube_client: Client, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(KubeError) as caught:
        await _create(kube_client, accesspoint(**change))
    assert caught.value.status == 422
    assert field in str(caught.value)


async def test_unknown_fields_are_pruned_warned_of_or_refused(sim: KubeSim) -> None:
    body = accesspoint()
    body["spec"]["bogus"] = 1
    url = f"{sim.url}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}"
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "?fieldValidation=Strict", json=body) as r:
            strict = r.status, await r.json()
        async with s.post(url, json=body) as r:
            warned = r.status, r.headers.getall("Warning", []), await r.json()
    assert strict[0] == 400
    assert 'strict decoding error: unknown field "spec.bogus"' in strict[1]["message"]
    assert warned[0] == 201
    assert warned[1] == ['299 - "unknown field \\"spec.bogus\\""']
    assert "bogus" not in warned[2]["spec"]  # pruned as the apiserver prunes


@needs_kubectl
async def test_kubectl_get_ap_prints_the_crd_columns(kubectl: Kubectl, sim: KubeSim) -> None:
    sim.seed({**accesspoint(), "status": {"rollout": {"phase": "Complete", "revision": "r7"}}})
    rows = table_rows(await kubectl("get", "ap", "-n", NS))
    assert rows[0] == ["NAME", "PHASE", "REVISION", "AGE"]
    assert rows[1][:3] == ["foo", "Complete", "r7"]
    wide = table_rows(await kubectl("get", "accesspoints.gtm.io", "-n", NS, "-o", "wide"))
    assert wide[0] == ["NAME", "PHASE", "REVISION", "FQDN", "AGE"]
    assert wide[1][3] == "foo.example.com"


@needs_kubectl
async def test_kubectl_explain_reads_the_schema(kubectl: Kubectl) -> None:
    out = await kubectl("explain", "accesspoint.spec.upstreams")
    assert "KIND:       AccessPoint" in out and "VERSION:    v1alpha1" in out
    assert "FIELD: upstreams <[]Object>" in out
    assert "accessPoint\t<string> -required-" in out
    for field in ("namespace", "port", "weights", "tls"):
        assert f"  {field}\t<" in out
    spec = await kubectl("explain", "ap.spec")
    for field in ("scope", "trafficTemplate", "overrides", "upstreams", "gtm", "policy"):
        assert f"  {field}\t<" in spec, spec
    deep = await kubectl("explain", "accesspoint.spec.policy.rollout.gate")
    assert "conditions\t<[]string>" in deep and "timeout\t<string>" in deep


@needs_kubectl
async def test_kubectl_apply_sends_a_merge_patch_with_last_applied(
    kubectl: Kubectl, sim: KubeSim, tmp_path: Path
) -> None:
    manifest = tmp_path / "ap.yaml"
    manifest.write_text(yaml.safe_dump(accesspoint()))
    assert "accesspoint.gtm.io/foo created" in await kubectl("apply", "-f", str(manifest))
    changed = accesspoint(scope={"clusters": ["dc1", "dc3"]})
    manifest.write_text(yaml.safe_dump(changed))
    code, _out, err = await kubectl.run("apply", "-f", str(manifest), "-v=8")
    assert code == 0, err
    assert "Content-Type: application/merge-patch+json" in err  # a CR: never strategic
    (stored,) = sim.objects(GROUP, VERSION, PLURAL, NS)
    assert stored["spec"]["scope"]["clusters"] == ["dc1", "dc3"]
    last = json.loads(
        stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert last["spec"]["scope"]["clusters"] == ["dc1", "dc3"]
    assert stored["metadata"]["generation"] == 2


@needs_kubectl
async def test_kubectl_refuses_an_unknown_field_by_default(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    body = accesspoint()
    body["spec"]["upstream"] = []  # a typo
    manifest = tmp_path / "ap.yaml"
    manifest.write_text(yaml.safe_dump(body))
    err = await kubectl.fails("apply", "-f", str(manifest))
    assert 'unknown field "spec.upstream"' in err


@needs_kubectl
async def test_kubectl_applies_a_list_each_item_checked_by_the_server(
    kubectl: Kubectl, sim: KubeSim, tmp_path: Path
) -> None:
    # a `v1 List` is named by no v3 document: kubectl reads /openapi/v2 (protobuf) for it,
    # then leaves each item's validation to the server
    items = [accesspoint("foo"), accesspoint("bar")]
    manifest = tmp_path / "aps.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    out = await kubectl("apply", "-f", str(manifest))
    assert "accesspoint.gtm.io/foo created" in out and "accesspoint.gtm.io/bar created" in out
    assert sorted(o["metadata"]["name"] for o in sim.objects(GROUP, VERSION, PLURAL, NS)) == [
        "bar", "foo",
    ]  # fmt: skip
    out = await kubectl("apply", "--server-side", "-f", str(manifest))
    assert "accesspoint.gtm.io/foo serverside-applied" in out
    items.append(accesspoint("baz"))
    items[-1]["spec"]["upstream"] = []  # a typo in one item
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    err = await kubectl.fails("apply", "-f", str(manifest))
    assert 'unknown field "spec.upstream"' in err
    assert "baz" not in [o["metadata"]["name"] for o in sim.objects(GROUP, VERSION, PLURAL, NS)]


async def test_openapi_v2_in_protobuf_is_a_gnostic_document(sim: KubeSim) -> None:
    async with aiohttp.ClientSession() as http:
        accept = {"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}
        async with http.get(f"{sim.url}/openapi/v2", headers=accept) as r:
            assert r.status == 200
            assert r.content_type == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
            body = await r.read()
    assert body.startswith(b"\x0a\x032.0\x12")  # field 1 "2.0", then field 2 (info)
    assert b"Kubernetes" in body


@needs_kubectl
async def test_kubectl_patch_status_subresource(kubectl: Kubectl, sim: KubeSim) -> None:
    sim.seed(accesspoint())
    patch = json.dumps({"status": {"rollout": {"phase": "Paused", "revision": "r2"}}})
    await kubectl(
        "patch", "ap", "foo", "-n", NS, "--subresource=status", "--type=merge", "-p", patch
    )
    rows = table_rows(await kubectl("get", "ap", "foo", "-n", NS))
    assert rows[1][:3] == ["foo", "Paused", "r2"]
    (stored,) = sim.objects(GROUP, VERSION, PLURAL, NS)
    assert stored["metadata"]["generation"] == 1
    # a spec change through /status is ignored, as the apiserver ignores it
    other = json.dumps({"spec": {"gtm": {"fqdn": "x.example.com"}}})
    await kubectl(
        "patch", "ap", "foo", "-n", NS, "--subresource=status", "--type=merge", "-p", other
    )
    (stored,) = sim.objects(GROUP, VERSION, PLURAL, NS)
    assert stored["spec"]["gtm"]["fqdn"] == "foo.example.com"


@needs_kubectl
async def test_kubectl_get_watch_an_accesspoint(kubectl: Kubectl, sim: KubeSim) -> None:
    sim.seed(accesspoint())
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        *("--kubeconfig", str(kubectl.kubeconfig), "--cache-dir", str(kubectl.cache)),
        *("get", "ap", "-n", NS, "-w"),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        lines = [await asyncio.wait_for(proc.stdout.readline(), 10) for _ in range(2)]
        sim.seed({**accesspoint(), "status": {"rollout": {"phase": "Complete", "revision": "r1"}}})
        lines.append(await asyncio.wait_for(proc.stdout.readline(), 10))
    finally:
        proc.kill()
        await proc.wait()
    rows = [line.decode().split() for line in lines]
    assert rows[0] == ["NAME", "PHASE", "REVISION", "AGE"]
    assert rows[1][0] == "foo" and rows[2][:3] == ["foo", "Complete", "r1"]
