"""Create, read, update, delete through the real client, with the apiserver's write rules."""

from __future__ import annotations

import io
import json

import aiohttp
import pytest
from kubernetes_asyncio.client import (
    CoordinationV1Api,
    CoreV1Api,
    CustomObjectsApi,
    V1ConfigMap,
    V1DeleteOptions,
    V1Lease,
    V1LeaseSpec,
    V1ObjectMeta,
    V1Preconditions,
)
from kubernetes_asyncio.client.exceptions import ApiException
from kubesim_testing import GROUP, NS, WLE, WatchRecorder, wle

from chaos.kubesim import KubeSim

MERGE = "application/merge-patch+json"


def status_of(error: ApiException) -> dict:
    body = json.loads(error.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == error.status
    return body


async def test_create_drops_status_and_sets_system_fields(custom: CustomObjectsApi) -> None:
    body = wle("a")
    body["status"] = {"conditions": [{"type": "Healthy", "status": "True"}]}
    created = await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, body)
    meta = created["metadata"]
    assert "status" not in created
    assert meta["generation"] == 1
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0
    got = await custom.get_namespaced_custom_object(GROUP, "v1", NS, WLE, "a")
    assert got == created


async def test_create_twice_is_already_exists(custom: CustomObjectsApi) -> None:
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    with pytest.raises(ApiException) as caught:
        await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "AlreadyExists"


async def test_get_missing_is_not_found(custom: CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as caught:
        await custom.get_namespaced_custom_object(GROUP, "v1", NS, WLE, "nope")
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (404, "NotFound")
    assert body["message"] == 'workloadentries.networking.istio.io "nope" not found'


async def test_create_with_resource_version_is_refused(custom: CustomObjectsApi) -> None:
    body = wle("a")
    body["metadata"]["resourceVersion"] = "5"
    with pytest.raises(ApiException) as caught:
        await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, body)
    assert caught.value.status == 500
    assert "resourceVersion should not be set" in status_of(caught.value)["message"]


async def test_body_must_match_url(custom: CustomObjectsApi) -> None:
    other_ns = wle("a")
    other_ns["metadata"]["namespace"] = "elsewhere"
    wrong_version = {**wle("a"), "apiVersion": f"{GROUP}/v1beta1"}
    no_kind = {k: v for k, v in wle("a").items() if k != "kind"}
    for body in (other_ns, wrong_version, no_kind):
        with pytest.raises(ApiException) as caught:
            await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, body)
        assert caught.value.status == 400, body
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    current = await custom.get_namespaced_custom_object(GROUP, "v1", NS, WLE, "a")
    current["metadata"]["name"] = "b"
    with pytest.raises(ApiException) as caught:
        await custom.replace_namespaced_custom_object(GROUP, "v1", NS, WLE, "a", current)
    assert caught.value.status == 400
    assert "does not match the name on the URL" in status_of(caught.value)["message"]


async def test_unknown_resource_and_version_are_not_found(custom: CustomObjectsApi) -> None:
    for version, plural in (("v1", "sidecars"), ("v1alpha9", WLE)):
        with pytest.raises(ApiException) as caught:
            await custom.list_namespaced_custom_object(GROUP, version, NS, plural)
        assert caught.value.status == 404


async def test_status_subresource_writes_only_status(custom: CustomObjectsApi) -> None:
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    current = await custom.get_namespaced_custom_object(GROUP, "v1", NS, WLE, "a")
    current["spec"]["weight"] = 1  # ignored by a status write
    current["metadata"]["labels"] = {"sneaky": "yes"}  # ignored too
    current["status"] = {
        "conditions": [{"type": "Healthy", "status": "False", "reason": "unhealthy"}]
    }
    written = await custom.replace_namespaced_custom_object_status(
        GROUP, "v1", NS, WLE, "a", current
    )
    assert written["spec"]["weight"] == 98
    assert "labels" not in written["metadata"]
    assert written["status"]["conditions"][0]["status"] == "False"
    assert written["metadata"]["generation"] == 1  # status is not spec
    assert int(written["metadata"]["resourceVersion"]) > int(current["metadata"]["resourceVersion"])


async def test_main_write_keeps_old_status_and_bumps_generation(custom: CustomObjectsApi) -> None:
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    await custom.patch_namespaced_custom_object_status(
        GROUP,
        "v1",
        NS,
        WLE,
        "a",
        {"status": {"conditions": [{"type": "Healthy", "status": "True"}]}},
        _content_type=MERGE,
    )
    current = await custom.get_namespaced_custom_object(GROUP, "v1", NS, WLE, "a")
    current["status"] = {"conditions": []}  # a main write cannot change status
    current["spec"]["weight"] = 1
    written = await custom.replace_namespaced_custom_object(GROUP, "v1", NS, WLE, "a", current)
    assert written["status"]["conditions"] == [{"type": "Healthy", "status": "True"}]
    assert written["metadata"]["generation"] == 2
    # A metadata-only change does not move generation.
    written["metadata"]["labels"] = {"team": "gtm"}
    relabeled = await custom.replace_namespaced_custom_object(GROUP, "v1", NS, WLE, "a", written)
    assert relabeled["metadata"]["generation"] == 2
    assert relabeled["metadata"]["labels"] == {"team": "gtm"}


async def test_stale_resource_version_on_put_is_conflict(custom: CustomObjectsApi) -> None:
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    first = await custom.get_namespaced_custom_object(GROUP, "v1", NS, WLE, "a")
    second = await custom.get_namespaced_custom_object(GROUP, "v1", NS, WLE, "a")
    first["spec"]["weight"] = 1
    await custom.replace_namespaced_custom_object(GROUP, "v1", NS, WLE, "a", first)
    second["spec"]["weight"] = 2
    with pytest.raises(ApiException) as caught:
        await custom.replace_namespaced_custom_object(GROUP, "v1", NS, WLE, "a", second)
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]
    second["status"] = {"conditions": []}
    with pytest.raises(ApiException) as caught:
        await custom.replace_namespaced_custom_object_status(GROUP, "v1", NS, WLE, "a", second)
    assert caught.value.status == 409


async def test_stale_resource_version_in_patch_body_is_conflict(custom: CustomObjectsApi) -> None:
    created = await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    old_rv = created["metadata"]["resourceVersion"]
    await custom.patch_namespaced_custom_object(
        GROUP, "v1", NS, WLE, "a", {"spec": {"weight": 5}}, _content_type=MERGE
    )
    stale = {"metadata": {"resourceVersion": old_rv}, "status": {"conditions": []}}
    with pytest.raises(ApiException) as caught:
        await custom.patch_namespaced_custom_object_status(
            GROUP, "v1", NS, WLE, "a", stale, _content_type=MERGE
        )
    assert caught.value.status == 409


async def test_put_without_resource_version_on_custom_resource_is_invalid(
    custom: CustomObjectsApi,
) -> None:
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    with pytest.raises(ApiException) as caught:
        await custom.replace_namespaced_custom_object(GROUP, "v1", NS, WLE, "a", wle("a", weight=3))
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.resourceVersion"


async def test_put_without_resource_version_on_configmap_is_unconditional(core: CoreV1Api) -> None:
    await core.create_namespaced_config_map(
        NS, V1ConfigMap(metadata=V1ObjectMeta(name="c"), data={"a": "1"})
    )
    replaced = await core.replace_namespaced_config_map(
        "c", NS, V1ConfigMap(metadata=V1ObjectMeta(name="c"), data={"a": "2"})
    )
    assert replaced.data == {"a": "2"}
    with pytest.raises(ApiException) as caught:  # no create on update for ConfigMaps
        await core.replace_namespaced_config_map(
            "d", NS, V1ConfigMap(metadata=V1ObjectMeta(name="d"), data={})
        )
    assert caught.value.status == 404


async def test_put_of_a_missing_lease_creates_it(coordination: CoordinationV1Api) -> None:
    lease = V1Lease(
        metadata=V1ObjectMeta(name="gtm-leader"),
        spec=V1LeaseSpec(holder_identity="dc1-a", lease_duration_seconds=6, lease_transitions=0),
    )
    created = await coordination.replace_namespaced_lease("gtm-leader", NS, lease)
    assert created.spec.holder_identity == "dc1-a"
    assert created.metadata.resource_version
    got = await coordination.read_namespaced_lease("gtm-leader", NS)
    assert got.metadata.uid == created.metadata.uid


async def test_put_of_a_missing_custom_resource_is_not_found(custom: CustomObjectsApi) -> None:
    body = wle("a")
    body["metadata"]["resourceVersion"] = "1"
    with pytest.raises(ApiException) as caught:
        await custom.replace_namespaced_custom_object(GROUP, "v1", NS, WLE, "a", body)
    assert caught.value.status == 404


async def test_noop_writes_keep_resource_version_and_emit_no_event(
    sim: KubeSim, custom: CustomObjectsApi
) -> None:
    created = await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    rv = created["metadata"]["resourceVersion"]
    async with WatchRecorder(
        custom.list_namespaced_custom_object, GROUP, "v1", NS, WLE, resource_version=rv
    ) as recorder:
        same = await custom.replace_namespaced_custom_object(GROUP, "v1", NS, WLE, "a", created)
        patched = await custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, WLE, "a", {"spec": {"weight": 98}}, _content_type=MERGE
        )
        status = await custom.patch_namespaced_custom_object_status(
            GROUP, "v1", NS, WLE, "a", {"status": None}, _content_type=MERGE
        )
        assert {same["metadata"]["resourceVersion"], patched["metadata"]["resourceVersion"]} == {rv}
        assert status["metadata"]["resourceVersion"] == rv
        assert await recorder.quiet(0.3)
        await custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, WLE, "a", {"spec": {"weight": 1}}, _content_type=MERGE
        )
        assert await recorder.take(1) == [("MODIFIED", "a")]
    assert sim.store.resource_version == int(rv) + 1


async def test_versions_share_storage(sim: KubeSim, custom: CustomObjectsApi) -> None:
    body = {**wle("a"), "apiVersion": f"{GROUP}/v1beta1"}
    await custom.create_namespaced_custom_object(GROUP, "v1beta1", NS, WLE, body)
    as_v1 = await custom.get_namespaced_custom_object(GROUP, "v1", NS, WLE, "a")
    assert as_v1["apiVersion"] == f"{GROUP}/v1"
    assert as_v1["spec"] == body["spec"]
    assert [o["apiVersion"] for o in sim.objects(GROUP, "v1beta1", WLE)] == [f"{GROUP}/v1beta1"]


async def test_delete_returns_object_and_honours_preconditions(
    custom: CustomObjectsApi, core: CoreV1Api
) -> None:
    created = await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    with pytest.raises(ApiException) as caught:
        await custom.delete_namespaced_custom_object(
            GROUP,
            "v1",
            NS,
            WLE,
            "a",
            body=V1DeleteOptions(preconditions=V1Preconditions(resource_version="999")),
        )
    assert caught.value.status == 409
    gone = await custom.delete_namespaced_custom_object(
        GROUP,
        "v1",
        NS,
        WLE,
        "a",
        body=V1DeleteOptions(preconditions=V1Preconditions(uid=created["metadata"]["uid"])),
    )
    assert gone["metadata"]["name"] == "a"
    with pytest.raises(ApiException) as caught:
        await custom.delete_namespaced_custom_object(GROUP, "v1", NS, WLE, "a")
    assert caught.value.status == 404
    await core.create_namespaced_config_map(NS, V1ConfigMap(metadata=V1ObjectMeta(name="c")))
    result = await core.delete_namespaced_config_map("c", NS)
    assert result.status == "Success"


async def test_dry_run_changes_nothing(sim: KubeSim, custom: CustomObjectsApi) -> None:
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"), dry_run="All")
    assert sim.objects(GROUP, "v1", WLE) == []
    with pytest.raises(ApiException) as caught:
        await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"), dry_run="Some")
    assert caught.value.status == 400


async def test_seed_puts_objects_with_status(sim: KubeSim, custom: CustomObjectsApi) -> None:
    body = wle("a")
    body["metadata"]["namespace"] = "mesh"
    body["status"] = {"conditions": [{"type": "Healthy", "status": "True"}]}
    stored = sim.seed(body)
    assert stored["status"] == body["status"]
    got = await custom.get_namespaced_custom_object(GROUP, "v1", "mesh", WLE, "a")
    assert got["status"] == body["status"]
    again = sim.seed({**body, "spec": {"address": "10.0.0.2"}})
    assert again["metadata"]["generation"] == 2
    assert again["metadata"]["uid"] == stored["metadata"]["uid"]
    assert sim.objects(GROUP, "v1", WLE, namespace="other") == []
    with pytest.raises(Exception, match="no served resource"):
        sim.seed({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})


async def test_delete_collection_by_label(sim: KubeSim, custom: CustomObjectsApi) -> None:
    for name, region in (("a", "dc1"), ("b", "dc2"), ("c", "dc2")):
        await custom.create_namespaced_custom_object(
            GROUP, "v1", NS, WLE, wle(name, labels={"region": region})
        )
    await custom.delete_collection_namespaced_custom_object(
        GROUP, "v1", NS, WLE, label_selector="region=dc2"
    )
    assert [o["metadata"]["name"] for o in sim.objects(GROUP, "v1", WLE)] == ["a"]


async def test_oversized_and_undecodable_bodies(sim: KubeSim) -> None:
    url = f"{sim.url}/apis/{GROUP}/v1/namespaces/{NS}/{WLE}"
    async with aiohttp.ClientSession() as session:
        huge = io.BytesIO(json.dumps({**wle("a"), "pad": "x" * (3 * 1024 * 1024 + 1)}).encode())
        headers = {"Content-Type": "application/json"}
        async with session.post(url, data=huge, headers=headers) as response:
            assert (response.status, (await response.json())["kind"]) == (413, "Status")
        for body, content_type, code in (
            ("{broken", "application/json", 400),
            ("", "application/json", 400),
            ("[1, 2]", "application/json", 400),
            (json.dumps(wle("a")), "text/plain", 415),
        ):
            async with session.post(
                url, data=body, headers={"Content-Type": content_type}
            ) as response:
                assert response.status == code, (body, content_type)
