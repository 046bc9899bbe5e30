"""v1 Service (with its LoadBalancer status), Namespace, `kubernetes.io/tls` Secrets and
Istio's Gateway and VirtualService, as an apiserver keeps them: defaults, the status
subresource, immutable fields, the printers' columns; through `kube.Client` and kubectl."""

from __future__ import annotations

import base64
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubesim_testing import GROUP, NS, Kubectl, needs_kubectl, table_rows

from chaos.kubesim import KubeSim
from kube import MERGE_PATCH, Client, KubeError, NotFound


def service(name: str = "web", *, lb_class: str | None = "gtm.io/ipvs", **spec: Any) -> dict:
    body: dict[str, Any] = {
        "type": "LoadBalancer",
        "selector": {"app": name},
        "ports": [{"name": "https", "port": 443, "targetPort": 8443}],
        **spec,
    }
    if lb_class is not None:
        body["loadBalancerClass"] = lb_class
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}


async def _create_service(client: Client, body: dict[str, Any], ns: str = NS) -> dict:
    return await client.request("create", partial(client.core.create_namespaced_service, ns, body))


async def _patch(client: Client, name: str, body: Any, *, status: bool = False, **kw: Any) -> dict:
    core = client.core
    call = core.patch_namespaced_service_status if status else core.patch_namespaced_service
    return await client.request("patch", partial(call, name, NS, body, **kw))


async def test_a_service_is_defaulted_as_the_apiserver_does(kube_client: Client) -> None:
    created = await _create_service(kube_client, service())
    spec = created["spec"]
    (port,) = spec["ports"]
    assert (port["protocol"], port["targetPort"]) == ("TCP", 8443)
    assert 30000 <= port["nodePort"] <= 32767
    assert spec["clusterIP"].startswith("10.96.") and spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["sessionAffinity"] == "None" and spec["externalTrafficPolicy"] == "Cluster"
    assert created["status"] == {"loadBalancer": {}}
    assert "generation" not in created["metadata"]  # a built-in without one


async def test_load_balancer_status_goes_through_the_status_subresource(
    kube_client: Client,
) -> None:
    await _create_service(kube_client, service())
    ingress = {"status": {"loadBalancer": {"ingress": [{"ip": "127.1.1.1", "ipMode": "VIP"}]}}}
    # written to the main resource, status is ignored
    ignored = await _patch(kube_client, "web", ingress, _content_type=MERGE_PATCH)
    assert ignored["status"] == {"loadBalancer": {}}
    written = await _patch(kube_client, "web", ingress, status=True, _content_type=MERGE_PATCH)
    assert written["status"]["loadBalancer"]["ingress"] == [{"ip": "127.1.1.1", "ipMode": "VIP"}]
    # a status write does not touch the spec
    sneaky = {"spec": {"selector": {"app": "other"}}, **ingress}
    kept = await _patch(kube_client, "web", sneaky, status=True, _content_type=MERGE_PATCH)
    assert kept["spec"]["selector"] == {"app": "web"}


async def test_load_balancer_class_is_immutable(kube_client: Client) -> None:
    await _create_service(kube_client, service())
    with pytest.raises(KubeError) as caught:
        await _patch(
            kube_client,
            "web",
            {"spec": {"loadBalancerClass": "other.io/lb"}},
            _content_type=MERGE_PATCH,
        )
    assert caught.value.status == 422
    assert 'spec.loadBalancerClass: Invalid value: "other.io/lb": may not change once set' in str(
        caught.value
    )
    with pytest.raises(KubeError) as caught:  # nor may it be removed
        await _patch(
            kube_client, "web", {"spec": {"loadBalancerClass": None}}, _content_type=MERGE_PATCH
        )
    assert caught.value.status == 422
    # only a LoadBalancer may carry one
    with pytest.raises(KubeError) as caught:
        await _create_service(kube_client, service("plain", type="ClusterIP"))
    assert caught.value.status == 422 and "may only be used when `type` is" in str(caught.value)
    # a class may be set while the Service becomes a LoadBalancer
    await _create_service(kube_client, service("late", lb_class=None, type="ClusterIP"))
    late = await _patch(
        kube_client,
        "late",
        {"spec": {"type": "LoadBalancer", "loadBalancerClass": "gtm.io/ipvs"}},
        _content_type=MERGE_PATCH,
    )
    assert late["spec"]["loadBalancerClass"] == "gtm.io/ipvs"


async def test_service_ports_are_checked(kube_client: Client) -> None:
    two_unnamed = service(ports=[{"port": 80}, {"port": 443}])
    with pytest.raises(KubeError) as caught:
        await _create_service(kube_client, two_unnamed)
    assert caught.value.status == 422 and "spec.ports[0].name: Required value" in str(caught.value)
    duplicate = service(ports=[{"name": "a", "port": 80}, {"name": "b", "port": 80}])
    with pytest.raises(KubeError) as caught:
        await _create_service(kube_client, duplicate)
    assert caught.value.status == 422 and "Duplicate value" in str(caught.value)


def _tls_secret(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/tls",
        "data": {
            k.replace("_", "."): base64.b64encode(v.encode()).decode() for k, v in data.items()
        },
    }


async def test_tls_secrets_need_a_certificate_and_a_key(kube_client: Client) -> None:
    core = kube_client.core
    created = await kube_client.request(
        "create",
        partial(core.create_namespaced_secret, NS, _tls_secret("cert", tls_crt="C", tls_key="K")),
    )
    assert created["type"] == "kubernetes.io/tls"
    with pytest.raises(KubeError) as caught:
        await kube_client.request(
            "create", partial(core.create_namespaced_secret, NS, _tls_secret("half", tls_crt="C"))
        )
    assert caught.value.status == 422 and "data[tls.key]: Required value" in str(caught.value)
    with pytest.raises(KubeError) as caught:  # the type of a Secret is immutable
        await kube_client.request(
            "patch",
            partial(
                core.patch_namespaced_secret,
                "cert",
                NS,
                {"type": "Opaque"},
                _content_type=MERGE_PATCH,
            ),
        )
    assert caught.value.status == 422 and "field is immutable" in str(caught.value)


async def test_namespaces_are_cluster_scoped_and_take_their_objects_along(
    kube_client: Client, sim: KubeSim
) -> None:
    core = kube_client.core
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}
    created = await kube_client.request("create", partial(core.create_namespace, ns))
    assert created["status"] == {"phase": "Active"}
    assert created["spec"] == {"finalizers": ["kubernetes"]}
    assert "namespace" not in created["metadata"]
    read = await kube_client.request("get", partial(core.read_namespace, "apps"))
    assert read["metadata"]["uid"] == created["metadata"]["uid"]
    listed = await kube_client.request("list", core.list_namespace)
    assert [n["metadata"]["name"] for n in listed["items"]] == ["apps"]
    await _create_service(kube_client, service(), ns="apps")
    await kube_client.request("delete", partial(core.delete_namespace, "apps"))
    assert sim.objects("", "v1", "services", "apps") == []
    with pytest.raises(NotFound):
        await kube_client.request("get", partial(core.read_namespace, "apps"))


MESH = """
apiVersion: v1
kind: Namespace
metadata: {name: apps}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: foo-gw, namespace: apps}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [foo.example.com]
    tls: {mode: SIMPLE, credentialName: foo-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: foo, namespace: apps}
spec:
  hosts: [foo.example.com]
  gateways: [apps/foo-gw]
  http:
  - route:
    - destination: {host: bar.apps.svc.cluster.local, port: {number: 8080}}
---
apiVersion: v1
kind: Secret
metadata: {name: foo-cert, namespace: apps}
type: kubernetes.io/tls
stringData: {tls.crt: C, tls.key: K}
---
apiVersion: v1
kind: Service
metadata: {name: foo-gw, namespace: apps}
spec:
  type: LoadBalancer
  loadBalancerClass: gtm.io/ipvs
  selector: {istio: ingressgateway}
  ports:
  - {name: https, port: 443, targetPort: 8443}
"""


@needs_kubectl
async def test_kubectl_apply_and_get_the_mesh_objects(
    kubectl: Kubectl, sim: KubeSim, tmp_path: Path
) -> None:
    manifest = tmp_path / "mesh.yaml"
    manifest.write_text(MESH)
    out = await kubectl("apply", "-f", str(manifest))
    for made in ("namespace/apps", "gateway.networking.istio.io/foo-gw", "secret/foo-cert"):
        assert f"{made} created" in out
    again = await kubectl("apply", "-f", str(manifest))
    assert "gateway.networking.istio.io/foo-gw unchanged" in again
    assert "service/foo-gw unchanged" in again
    gw, vs = (await kubectl("get", "gw,vs", "-n", "apps")).strip().split("\n\n")
    assert table_rows(gw)[0] == ["NAME", "AGE"]
    assert table_rows(vs)[0] == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
    assert table_rows(vs)[1][1:3] == ['["apps/foo-gw"]', '["foo.example.com"]']
    svc = table_rows(await kubectl("get", "svc", "-n", "apps"))
    assert svc[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert svc[1][1] == "LoadBalancer" and svc[1][3] == "<pending>"
    assert svc[1][4].startswith("443:") and svc[1][4].endswith("/TCP")
    ns = table_rows(await kubectl("get", "ns"))
    assert ns[0] == ["NAME", "STATUS", "AGE"] and ns[1][:2] == ["apps", "Active"]
    secret = table_rows(await kubectl("get", "secret", "foo-cert", "-n", "apps"))
    assert secret[1][1:3] == ["kubernetes.io/tls", "2"]
    (stored,) = sim.objects(GROUP, "v1", "gateways", "apps")
    assert stored["spec"]["servers"][0]["tls"]["credentialName"] == "foo-cert"


@needs_kubectl
async def test_kubectl_shows_the_external_ip_once_written(
    kubectl: Kubectl, kube_client: Client
) -> None:
    await _create_service(kube_client, service())
    await kubectl(
        "patch",
        "svc",
        "web",
        "-n",
        NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"loadBalancer":{"ingress":[{"ip":"127.1.1.9"}]}}}',
    )
    rows = table_rows(await kubectl("get", "svc", "web", "-n", NS))
    assert rows[1][3] == "127.1.1.9"


@needs_kubectl
async def test_kubectl_patch_of_load_balancer_class_is_refused(
    kubectl: Kubectl, kube_client: Client
) -> None:
    await _create_service(kube_client, service())
    err = await kubectl.fails(
        "patch", "svc", "web", "-n", NS, "-p", '{"spec":{"loadBalancerClass":"other.io/lb"}}'
    )
    assert 'The Service "web" is invalid: spec.loadBalancerClass' in err
    assert "may not change once set" in err


def test_mesh_manifest_is_yaml() -> None:
    assert len(list(yaml.safe_load_all(MESH))) == 5
