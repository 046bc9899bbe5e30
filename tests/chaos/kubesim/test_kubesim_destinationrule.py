"""DestinationRule (networking.istio.io v1, v1beta1): create, list, watch, validation, RBAC denial."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, ApisApi, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException
from kubesim_testing import GROUP, NS, WLE, WatchRecorder, wle

from chaos.kubesim import DEFAULT_RESOURCES, Faults, KubeSim

DR = "destinationrules"
MERGE = "application/merge-patch+json"

DISTRIBUTE = {
    "loadBalancer": {
        "simple": "ROUND_ROBIN",
        "localityLbSetting": {
            "enabled": True,
            "distribute": [{"from": "region01/*", "to": {"region02/*": 100}}],
        },
    },
    "someFutureField": {"kept": ["as", "is"]},
}


def dr(name: str, host: str | None = "foo.example.com", **spec: Any) -> dict[str, Any]:
    body_spec: dict[str, Any] = dict(spec)
    if host is not None:
        body_spec["host"] = host
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "DestinationRule",
        "metadata": {"name": name},
        "spec": body_spec,
    }


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body)
    assert body["kind"] == "Status" and body["code"] == error.status
    return body


async def test_discovery_names_destinationrules_in_both_versions(api_client: ApiClient) -> None:
    groups = await ApisApi(api_client).get_api_versions()
    istio = next(g for g in groups.groups if g.name == GROUP)
    assert [v.version for v in istio.versions] == ["v1", "v1beta1"]
    for version in ("v1", "v1beta1"):
        listing = await CustomObjectsApi(api_client).get_api_resources(GROUP, version)
        found = {r.name: r for r in listing.resources}
        rule = found[DR]
        assert (rule.kind, rule.namespaced, rule.short_names) == ("DestinationRule", True, ["dr"])
        assert {"get", "list", "watch", "create", "patch", "delete"} <= set(rule.verbs)


async def test_create_keeps_the_traffic_policy_as_is(custom: CustomObjectsApi) -> None:
    body = dr("pin", trafficPolicy=DISTRIBUTE, subsets=[{"name": "v1", "labels": {"v": "1"}}])
    body["spec"]["notInTheSchema"] = True
    body["status"] = {"validationMessages": []}
    created = await custom.create_namespaced_custom_object(GROUP, "v1", NS, DR, body)
    assert created["spec"] == {
        "host": "foo.example.com",
        "trafficPolicy": DISTRIBUTE,
        "subsets": [{"name": "v1", "labels": {"v": "1"}}],
    }
    assert "status" not in created and created["metadata"]["generation"] == 1
    got = await custom.get_namespaced_custom_object(GROUP, "v1beta1", NS, DR, "pin")
    assert got["apiVersion"] == f"{GROUP}/v1beta1" and got["spec"] == created["spec"]


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"host": None}, "spec.host", "FieldValueRequired"),
        ({"host": 7}, "spec.host", "FieldValueTypeInvalid"),
        ({"trafficPolicy": "ROUND_ROBIN"}, "spec.trafficPolicy", "FieldValueTypeInvalid"),
        ({"exportTo": "."}, "spec.exportTo", "FieldValueTypeInvalid"),
        ({"subsets": [1]}, "spec.subsets[0]", "FieldValueTypeInvalid"),
    ],
)
async def test_invalid_rules_are_refused(
    custom: CustomObjectsApi, spec: dict[str, Any], field: str, reason: str
) -> None:
    host = spec.pop("host", "foo.example.com")
    with pytest.raises(ApiException) as caught:
        await custom.create_namespaced_custom_object(GROUP, "v1", NS, DR, dr("bad", host, **spec))
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (422, "Invalid")
    assert [(c["field"], c["reason"]) for c in body["details"]["causes"]] == [(field, reason)]
    assert body["details"]["kind"] == "DestinationRule"


async def test_list_in_a_namespace_and_across_namespaces(custom: CustomObjectsApi) -> None:
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, DR, dr("a"))
    await custom.create_namespaced_custom_object(GROUP, "v1", "istio-system", DR, dr("b", "*"))
    mine = await custom.list_namespaced_custom_object(GROUP, "v1", NS, DR)
    assert mine["kind"] == "DestinationRuleList"
    assert [o["metadata"]["name"] for o in mine["items"]] == ["a"]
    everywhere = await custom.list_cluster_custom_object(GROUP, "v1beta1", DR)
    assert sorted(o["spec"]["host"] for o in everywhere["items"]) == ["*", "foo.example.com"]
    assert {o["apiVersion"] for o in everywhere["items"]} == {f"{GROUP}/v1beta1"}


async def test_watch_sees_create_change_delete(custom: CustomObjectsApi) -> None:
    listed = await custom.list_namespaced_custom_object(GROUP, "v1", NS, DR)
    rv = listed["metadata"]["resourceVersion"]
    async with WatchRecorder(
        custom.list_namespaced_custom_object, GROUP, "v1", NS, DR, resource_version=rv
    ) as recorder:
        await custom.create_namespaced_custom_object(GROUP, "v1", NS, DR, dr("pin"))
        await custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, DR, "pin", {"spec": {"trafficPolicy": DISTRIBUTE}}, _content_type=MERGE
        )
        await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("not-a-rule"))
        await custom.delete_namespaced_custom_object(GROUP, "v1", NS, DR, "pin")
        events = [await recorder.next() for _ in range(3)]
        assert await recorder.quiet(0.2)  # the WorkloadEntry is not on this watch
    assert [(e["type"], e["raw_object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "pin"),
        ("MODIFIED", "pin"),
        ("DELETED", "pin"),
    ]
    assert events[1]["raw_object"]["spec"]["trafficPolicy"] == DISTRIBUTE
    assert events[1]["raw_object"]["metadata"]["generation"] == 2


async def test_a_cluster_without_the_crd_answers_404() -> None:
    served = tuple(r for r in DEFAULT_RESOURCES if r.plural != DR)
    async with (
        KubeSim(host="127.0.0.1", port=0, resources=served) as sim,
        ApiClient(sim.configuration()) as client,
    ):
        custom = CustomObjectsApi(client)
        with pytest.raises(ApiException) as caught:
            await custom.list_namespaced_custom_object(GROUP, "v1", NS, DR)
        assert caught.value.status == 404
        assert status_of(caught.value)["reason"] == "NotFound"
        assert (await custom.list_namespaced_custom_object(GROUP, "v1", NS, WLE))["items"] == []


async def test_forbidden_resource_answers_403_for_every_verb(
    sim: KubeSim, custom: CustomObjectsApi
) -> None:
    sim.faults.set(Faults(forbidden=(DR,), verbs=("patch",), resources=(WLE,)))
    for call in (
        lambda: custom.list_namespaced_custom_object(GROUP, "v1", NS, DR),
        lambda: custom.list_cluster_custom_object(GROUP, "v1", DR),
        lambda: custom.get_namespaced_custom_object(GROUP, "v1", NS, DR, "pin"),
        lambda: custom.create_namespaced_custom_object(GROUP, "v1", NS, DR, dr("pin")),
    ):
        with pytest.raises(ApiException) as caught:
            await call()
        body = status_of(caught.value)
        assert (caught.value.status, body["reason"]) == (403, "Forbidden")
        assert body["message"].startswith('destinationrules is forbidden: User "system:anonymous"')
    # other resources are untouched (`verbs`/`resources` scope only the other faults)
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    assert sim.faults.injected == {"forbidden": 4}
    assert sim.stats()["by_resource"][DR] == 4
    assert Faults.from_dict(sim.faults.current.to_dict()) == sim.faults.current
    sim.faults.clear()
    assert (await custom.list_namespaced_custom_object(GROUP, "v1", NS, DR))["items"] == []
