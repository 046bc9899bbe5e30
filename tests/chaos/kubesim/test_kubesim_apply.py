"""Server-side apply with field ownership, and strategic merge patch by merge keys:
`managedFields` hold each manager's `fieldsV1`, an apply that changes another manager's
field is a 409 naming both unless forced, fields a manager stops applying go when nobody
else owns them; a Service's ports merge by `port`. Through `kube.Client` and kubectl
(`apply`, `apply --server-side`, `diff`)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubesim_testing import GROUP, NS, WLE, Kubectl, needs_kubectl, wle

from chaos.kubesim import KubeSim
from chaos.kubesim.managed import from_fields_v1, show_path, to_fields_v1
from kube import Client, Conflict, KubeError

APPLY = "application/apply-patch+yaml"
STRATEGIC = "application/strategic-merge-patch+json"


def service(ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "ClusterIP", "selector": {"app": "web"}, "ports": ports, **spec},
    }


async def _apply_service(
    client: Client, body: dict[str, Any], manager: str, *, force: bool = False
) -> dict[str, Any]:
    call = partial(
        client.core.patch_namespaced_service,
        "web",
        NS,
        body,
        field_manager=manager,
        force=force,
        _content_type=APPLY,
    )
    return await client.request("patch", call)


async def _apply_wle(
    client: Client, body: dict[str, Any], manager: str, *, force: bool = False
) -> dict[str, Any]:
    api = client.custom_objects
    call = partial(
        api.patch_namespaced_custom_object,
        GROUP,
        "v1",
        NS,
        WLE,
        body["metadata"]["name"],
        body,
        field_manager=manager,
        force=force,
        _content_type=APPLY,
    )
    return await client.request("patch", call)


def _fields(obj: dict[str, Any], manager: str, operation: str = "Apply") -> dict[str, Any]:
    for entry in obj["metadata"]["managedFields"]:
        if (entry["manager"], entry["operation"]) == (manager, operation):
            return entry["fieldsV1"]
    raise AssertionError(f"no {manager}/{operation} in {obj['metadata']['managedFields']}")


def test_fields_v1_round_trips_and_marks_owned_parents() -> None:
    paths = {
        ("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}'),
        ("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}', "f:name"),
        ("f:spec", "f:type"),
    }
    encoded = to_fields_v1(paths)
    assert encoded == {
        "f:spec": {
            "f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:name": {}}},
            "f:type": {},
        }
    }
    assert from_fields_v1(encoded) == paths
    assert show_path(sorted(paths)[1]) == '.spec.ports[port=80,protocol="TCP"].name'


async def test_apply_records_the_field_set_of_each_manager(kube_client: Client) -> None:
    applied = await _apply_service(
        kube_client, service([{"name": "http", "port": 80}], type="LoadBalancer"), "alice"
    )
    fields = _fields(applied, "alice")
    assert fields["f:spec"]["f:ports"] == {
        'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:name": {}, "f:port": {}}
    }  # keyed by port and the defaulted protocol, as the apiserver keys them
    assert set(fields["f:spec"]) == {"f:ports", "f:selector", "f:type"}
    assert "f:clusterIP" not in fields["f:spec"]  # defaulted, nobody's


async def test_a_second_manager_conflicts_then_forces(kube_client: Client) -> None:
    await _apply_service(kube_client, service([{"name": "http", "port": 80}]), "alice")
    changed = service([{"name": "web", "port": 80}], selector={"app": "other"})
    with pytest.raises(Conflict) as caught:
        await _apply_service(kube_client, changed, "bob")
    message = caught.value.message
    assert message.startswith('Apply failed with 2 conflicts: conflicts with "alice":')
    assert '- .spec.ports[port=80,protocol="TCP"].name' in message
    assert "- .spec.selector.app" in message
    # the same values are shared, not a conflict
    shared = await _apply_service(kube_client, service([{"name": "http", "port": 80}]), "bob")
    assert _fields(shared, "bob") == _fields(shared, "alice")
    forced = await _apply_service(kube_client, changed, "bob", force=True)
    assert forced["spec"]["selector"] == {"app": "other"}
    assert forced["spec"]["ports"][0]["name"] == "web"
    alice = _fields(forced, "alice")["f:spec"]
    assert "f:selector" not in alice  # taken away by the force
    assert alice["f:ports"]['k:{"port":80,"protocol":"TCP"}'] == {".": {}, "f:port": {}}
    with pytest.raises(Conflict) as caught:  # and now alice conflicts with bob
        await _apply_service(kube_client, service([{"name": "http", "port": 80}]), "alice")
    assert 'conflicts with "bob"' in caught.value.message


async def test_an_update_takes_fields_without_conflict(kube_client: Client, sim: KubeSim) -> None:
    await _apply_service(kube_client, service([{"name": "http", "port": 80}]), "alice")
    call = partial(
        kube_client.core.patch_namespaced_service,
        "web",
        NS,
        {"spec": {"selector": {"app": "edited"}}},
        field_manager="kubectl-edit",
        _content_type=STRATEGIC,
    )
    edited = await kube_client.request("patch", call)
    assert _fields(edited, "kubectl-edit", "Update") == {"f:spec": {"f:selector": {"f:app": {}}}}
    assert "f:selector" not in _fields(edited, "alice")["f:spec"]
    with pytest.raises(Conflict) as caught:  # alice's next apply meets the editor
        await _apply_service(kube_client, service([{"name": "http", "port": 80}]), "alice")
    assert 'conflict with "kubectl-edit" using v1: .spec.selector.app' in caught.value.message


async def test_fields_a_manager_stops_applying_are_removed_unless_owned(
    kube_client: Client,
) -> None:
    ports = [{"name": "http", "port": 80}, {"name": "https", "port": 443}]
    await _apply_service(kube_client, service(ports, sessionAffinity="ClientIP"), "alice")
    await _apply_service(kube_client, service([{"name": "https", "port": 443}]), "bob")
    after = await _apply_service(kube_client, service([{"name": "http", "port": 80}]), "alice")
    # 443 stays (bob applies it); sessionAffinity goes back to nobody's... and is defaulted
    assert [p["port"] for p in after["spec"]["ports"]] == [80, 443]
    assert after["spec"]["sessionAffinity"] == "None"
    after = await _apply_service(kube_client, service([{"name": "https", "port": 443}]), "alice")
    assert [p["port"] for p in after["spec"]["ports"]] == [443]  # 80 was alice's alone


async def test_custom_resources_lists_are_atomic_and_apply_removes(kube_client: Client) -> None:
    created = await _apply_wle(kube_client, wle("a", labels={"app": "foo"}, weight=7), "gtm")
    assert _fields(created, "gtm") == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {"f:address": {}, "f:weight": {}},
    }
    other = {"apiVersion": f"{GROUP}/v1", "kind": "WorkloadEntry", "metadata": {"name": "a"}}
    placed = await _apply_wle(
        kube_client, {**other, "spec": {"locality": "region01/az01"}}, "placement"
    )
    assert placed["spec"] == {"address": "10.0.0.1", "weight": 7, "locality": "region01/az01"}
    # gtm stops applying the weight: it goes (nobody else owns it); the label too
    dropped = await _apply_wle(kube_client, {**other, "spec": {"address": "10.0.0.1"}}, "gtm")
    assert dropped["spec"] == {"address": "10.0.0.1", "locality": "region01/az01"}
    assert "labels" not in dropped["metadata"]


async def test_conflict_status_carries_the_causes(sim: KubeSim, kube_client: Client) -> None:
    import aiohttp

    await _apply_wle(kube_client, wle("a", weight=7), "gtm")
    url = f"{sim.url}/apis/{GROUP}/v1/namespaces/{NS}/{WLE}/a?fieldManager=other"
    body = json.dumps(wle("a", weight=9))
    async with aiohttp.ClientSession() as s:
        async with s.patch(url, data=body, headers={"Content-Type": APPLY}) as r:
            status = r.status, await r.json()
    assert status[0] == 409
    assert status[1]["reason"] == "Conflict"
    assert status[1]["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "gtm"',
            "field": ".spec.weight",
        }
    ]


async def test_strategic_merge_patch_merges_ports_by_port(kube_client: Client) -> None:
    await _apply_service(
        kube_client,
        service([{"name": "http", "port": 80}, {"name": "https", "port": 443}]),
        "alice",
    )
    patch = {
        "spec": {
            "$setElementOrder/ports": [{"port": 8080}, {"port": 80}],
            "ports": [
                {"name": "alt", "port": 8080},
                {"port": 80, "targetPort": 8081},
                {"$patch": "delete", "port": 443},
            ],
        }
    }
    call = partial(
        kube_client.core.patch_namespaced_service, "web", NS, patch, _content_type=STRATEGIC
    )
    patched = await kube_client.request("patch", call)
    assert [(p["port"], p["targetPort"]) for p in patched["spec"]["ports"]] == [
        (8080, 8080),
        (80, 8081),
    ]
    assert patched["spec"]["ports"][1]["name"] == "http"  # merged into, not replaced


async def test_strategic_merge_patch_on_a_custom_resource_is_415(kube_client: Client) -> None:
    await _apply_wle(kube_client, wle("a"), "gtm")
    api = kube_client.custom_objects
    with pytest.raises(KubeError) as caught:
        await kube_client.request(
            "patch",
            partial(
                api.patch_namespaced_custom_object,
                GROUP,
                "v1",
                NS,
                WLE,
                "a",
                {"spec": {"weight": 1}},
                _content_type=STRATEGIC,
            ),
        )
    assert caught.value.status == 415


SERVICE_YAML = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  loadBalancerClass: gtm.io/ipvs
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
"""


@needs_kubectl
async def test_kubectl_apply_twice_merges_ports_and_keeps_the_others(
    kubectl: Kubectl, sim: KubeSim, tmp_path: Path
) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SERVICE_YAML)
    assert "service/web created" in await kubectl("apply", "-f", str(manifest), "-n", NS)
    # someone else adds a port the manifest does not know
    await kubectl(
        "patch", "svc", "web", "-n", NS, "-p", '{"spec":{"ports":[{"name":"metrics","port":9090}]}}'
    )
    changed = yaml.safe_load(SERVICE_YAML)
    changed["spec"]["ports"][1] = {"name": "alt", "port": 8080}
    manifest.write_text(yaml.safe_dump(changed))
    code, out, err = await kubectl.run("apply", "-f", str(manifest), "-n", NS, "-v=8")
    assert code == 0, err
    assert "service/web configured" in out
    assert "Content-Type: application/strategic-merge-patch+json" in err
    assert '"$setElementOrder/ports"' in err and '"$patch":"delete"' in err
    (stored,) = sim.objects("", "v1", "services", NS)
    ports = {p["port"]: p for p in stored["spec"]["ports"]}
    assert sorted(ports) == [80, 8080, 9090]  # 443 dropped, 9090 (not ours) kept
    assert ports[80]["targetPort"] == 8080 and ports[80]["nodePort"]  # merged, not replaced


@needs_kubectl
async def test_kubectl_diff_shows_what_apply_would_change(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SERVICE_YAML)
    await kubectl("apply", "-f", str(manifest), "-n", NS)
    code, out, err = await kubectl.run("diff", "-f", str(manifest), "-n", NS)
    assert (code, out) == (0, ""), err
    manifest.write_text(SERVICE_YAML.replace("targetPort: 8443", "targetPort: 9443"))
    code, out, err = await kubectl.run("diff", "-f", str(manifest), "-n", NS)
    assert code == 1, err  # differences found
    assert "-    targetPort: 8443" in out and "+    targetPort: 9443" in out
    # server-side: the field is the client-side apply's, so the dry run must force
    code, out, err = await kubectl.run(
        "diff", "--server-side", "--force-conflicts", "-f", str(manifest), "-n", NS
    )
    assert code == 1, err
    assert "+    targetPort: 9443" in out


@needs_kubectl
async def test_kubectl_server_side_apply_conflicts_and_force_takes_over(
    kubectl: Kubectl, sim: KubeSim, tmp_path: Path
) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SERVICE_YAML)
    out = await kubectl(
        "apply", "--server-side", "--field-manager=alice", "-f", str(manifest), "-n", NS
    )
    assert "service/web serverside-applied" in out
    manifest.write_text(SERVICE_YAML.replace("targetPort: 8443", "targetPort: 9443"))
    err = await kubectl.fails(
        "apply", "--server-side", "--field-manager=bob", "-f", str(manifest), "-n", NS
    )
    assert (
        'Apply failed with 1 conflict: conflict with "alice":'
        ' .spec.ports[port=443,protocol="TCP"].targetPort' in err
    )
    assert "--force-conflicts" in err  # kubectl's advice: it recognised the conflict
    out = await kubectl(
        "apply",
        "--server-side",
        "--field-manager=bob",
        "--force-conflicts",
        "-f",
        str(manifest),
        "-n",
        NS,
    )
    assert "service/web serverside-applied" in out
    (stored,) = sim.objects("", "v1", "services", NS)
    assert stored["spec"]["ports"][1]["targetPort"] == 9443
    owners = {e["manager"]: e["fieldsV1"] for e in stored["metadata"]["managedFields"]}
    https = 'k:{"port":443,"protocol":"TCP"}'
    assert "f:targetPort" in owners["bob"]["f:spec"]["f:ports"][https]
    assert "f:targetPort" not in owners["alice"]["f:spec"]["f:ports"][https]
    shown = await kubectl("get", "svc", "web", "-n", NS, "-o", "yaml", "--show-managed-fields")
    assert "manager: alice" in shown and "manager: bob" in shown and "operation: Apply" in shown


@needs_kubectl
async def test_kubectl_server_side_apply_after_client_side_apply(
    kubectl: Kubectl, sim: KubeSim, tmp_path: Path
) -> None:
    """The first server-side apply of an unchanged manifest shares the client-side apply's
    fields; kubectl then moves them to its own manager (a JSON patch of managedFields
    guarded by a `test` of the resourceVersion), so the next change applies without a
    conflict — as with a real apiserver."""
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SERVICE_YAML)
    await kubectl("apply", "-f", str(manifest), "-n", NS)
    assert "serverside-applied" in await kubectl(
        "apply", "--server-side", "-f", str(manifest), "-n", NS
    )
    (stored,) = sim.objects("", "v1", "services", NS)
    managers = {(e["manager"], e["operation"]) for e in stored["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers
    assert ("kubectl-client-side-apply", "Update") not in managers  # migrated
    manifest.write_text(SERVICE_YAML.replace("targetPort: 8443", "targetPort: 9443"))
    assert "serverside-applied" in await kubectl(
        "apply", "--server-side", "-f", str(manifest), "-n", NS
    )
    (stored,) = sim.objects("", "v1", "services", NS)
    assert stored["spec"]["ports"][1]["targetPort"] == 9443


def _accesspoint_status(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gtm.io/v1alpha1",
        "kind": "AccessPoint",
        "metadata": {"name": "foo"},
        "status": status,
    }


async def _apply_status(client: Client, body: dict[str, Any], manager: str) -> dict[str, Any]:
    api = client.custom_objects
    call = partial(
        api.patch_namespaced_custom_object_status,
        "gtm.io",
        "v1alpha1",
        NS,
        "accesspoints",
        "foo",
        body,
        field_manager=manager,
        force=True,
        _content_type=APPLY,
    )
    return await client.request("patch", call)


async def test_status_apply_merges_map_lists_by_their_keys(
    kube_client: Client, sim: KubeSim
) -> None:
    """Two controllers each own their conditions of an AccessPoint's status
    (`x-kubernetes-list-type: map` keyed by `type`), written by apply through `/status`."""
    sim.seed(
        {
            "apiVersion": "gtm.io/v1alpha1",
            "kind": "AccessPoint",
            "metadata": {"name": "foo", "namespace": NS},
            "spec": {"scope": {"clusters": ["dc1"]}},
        }
    )
    ready = {"type": "Ready", "status": "True", "reason": "Rendered"}
    l4 = {"type": "L4Ready", "status": "False", "reason": "Pending"}
    await _apply_status(kube_client, _accesspoint_status(conditions=[ready]), "gtm-render")
    both = await _apply_status(kube_client, _accesspoint_status(conditions=[l4]), "gtm-l4")
    assert [c["type"] for c in both["status"]["conditions"]] == ["Ready", "L4Ready"]
    entry = next(e for e in both["metadata"]["managedFields"] if e["manager"] == "gtm-l4")
    assert entry["subresource"] == "status"
    assert list(entry["fieldsV1"]["f:status"]["f:conditions"]) == ['k:{"type":"L4Ready"}']
    assert both["spec"] == {"scope": {"clusters": ["dc1"]}, "conflictResolution": "Refuse"}
    # the L4 controller stops reporting: only its condition goes
    gone = await _apply_status(kube_client, _accesspoint_status(clusters=[]), "gtm-l4")
    assert [c["type"] for c in gone["status"]["conditions"]] == ["Ready"]


async def test_managed_fields_sent_by_a_client_are_kept(kube_client: Client) -> None:
    """A JSON patch of managedFields (what kubectl does when it moves client-side apply
    fields to server-side apply) is honoured; `[{}]` clears them."""
    await _apply_service(kube_client, service([{"name": "http", "port": 80}]), "alice")
    current = await kube_client.request(
        "get", partial(kube_client.core.read_namespaced_service, "web", NS)
    )
    entries = current["metadata"]["managedFields"]
    renamed = [{**e, "manager": "carol"} for e in entries]
    ops = [
        {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": current["metadata"]["resourceVersion"],
        },
        {"op": "replace", "path": "/metadata/managedFields", "value": renamed},
    ]
    call = partial(
        kube_client.core.patch_namespaced_service,
        "web",
        NS,
        ops,
        _content_type="application/json-patch+json",
    )
    moved = await kube_client.request("patch", call)
    assert {e["manager"] for e in moved["metadata"]["managedFields"]} == {"carol"}
    ops = [{"op": "replace", "path": "/metadata/managedFields", "value": [{}]}]
    call = partial(
        kube_client.core.patch_namespaced_service,
        "web",
        NS,
        ops,
        _content_type="application/json-patch+json",
    )
    cleared = await kube_client.request("patch", call)
    assert "managedFields" not in cleared["metadata"]
