"""PATCH content types over HTTP, and the patch functions' laws."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes_asyncio.client import CoreV1Api, CustomObjectsApi, V1ConfigMap, V1ObjectMeta
from kubernetes_asyncio.client.exceptions import ApiException
from kubesim_testing import GROUP, NS, WLE, wle

from chaos.kubesim import ApiError, KubeSim
from chaos.kubesim.patch import apply_json_patch, json_equal, merge_patch, parse_json_patch

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
STRATEGIC = "application/strategic-merge-patch+json"


async def _created(custom: CustomObjectsApi) -> dict[str, Any]:
    body = wle("a", labels={"region": "dc1"}, ports={"http": 80, "https": 443})
    return await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, body)


async def _raw_patch(
    sim: KubeSim, body: bytes, content_type: str, path: str = ""
) -> tuple[int, dict]:
    url = f"{sim.url}/apis/{GROUP}/v1/namespaces/{NS}/{WLE}/a{path}"
    async with (
        aiohttp.ClientSession() as session,
        session.patch(url, data=body, headers={"Content-Type": content_type}) as response,
    ):
        return response.status, await response.json()


async def test_merge_patch_null_deletes_and_lists_replace(custom: CustomObjectsApi) -> None:
    await _created(custom)
    patched = await custom.patch_namespaced_custom_object(
        GROUP,
        "v1",
        NS,
        WLE,
        "a",
        {
            "metadata": {"labels": {"region": None, "tier": "vip"}},
            "spec": {"ports": {"http": None}},
        },
        _content_type=MERGE,
    )
    assert patched["metadata"]["labels"] == {"tier": "vip"}
    assert patched["spec"]["ports"] == {"https": 443}
    conditions = [{"type": "Healthy", "status": "True"}, {"type": "Other", "status": "True"}]
    await custom.patch_namespaced_custom_object_status(
        GROUP, "v1", NS, WLE, "a", {"status": {"conditions": conditions}}, _content_type=MERGE
    )
    replaced = await custom.patch_namespaced_custom_object_status(
        GROUP,
        "v1",
        NS,
        WLE,
        "a",
        {"status": {"conditions": [{"type": "Healthy", "status": "False"}]}},
        _content_type=MERGE,
    )
    assert replaced["status"]["conditions"] == [{"type": "Healthy", "status": "False"}]


async def test_json_patch_with_passing_test_applies(custom: CustomObjectsApi) -> None:
    created = await _created(custom)
    ops = [
        {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": created["metadata"]["resourceVersion"],
        },
        {"op": "replace", "path": "/spec/weight", "value": 1},
        {"op": "add", "path": "/metadata/labels/exit~1by", "value": "gtm"},
    ]
    patched = await custom.patch_namespaced_custom_object(
        GROUP, "v1", NS, WLE, "a", ops, _content_type=JSON_PATCH
    )
    assert patched["spec"]["weight"] == 1
    assert patched["metadata"]["labels"]["exit/by"] == "gtm"


async def test_json_patch_failed_test_is_422(custom: CustomObjectsApi) -> None:
    await _created(custom)
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1234"},
        {"op": "replace", "path": "/spec/weight", "value": 1},
    ]
    with pytest.raises(ApiException) as caught:
        await custom.patch_namespaced_custom_object_status(
            GROUP, "v1", NS, WLE, "a", ops, _content_type=JSON_PATCH
        )
    assert caught.value.status == 422
    assert json.loads(caught.value.body)["reason"] == "Invalid"
    # A path that does not exist cannot apply either.
    with pytest.raises(ApiException) as caught:
        await custom.patch_namespaced_custom_object(
            GROUP,
            "v1",
            NS,
            WLE,
            "a",
            [{"op": "remove", "path": "/spec/nothing"}],
            _content_type=JSON_PATCH,
        )
    assert caught.value.status == 422


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "frobnicate", "path": "/spec"}],
        [{"op": "replace", "value": 1}],
        [{"op": "add", "path": "/spec/weight"}],
        [{"op": "move", "path": "/spec/x"}],
        [{"op": "replace", "path": "spec/weight", "value": 1}],
        ["replace"],
    ],
)
async def test_malformed_json_patch_is_400(custom: CustomObjectsApi, ops: list[Any]) -> None:
    await _created(custom)
    with pytest.raises(ApiException) as caught:
        await custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, WLE, "a", ops, _content_type=JSON_PATCH
        )
    assert caught.value.status == 400


async def test_object_sent_without_content_type_is_400(custom: CustomObjectsApi) -> None:
    """The kubernetes-asyncio pitfall: a dict body goes out as a JSON patch."""
    await _created(custom)
    with pytest.raises(ApiException) as caught:
        await custom.patch_namespaced_custom_object_status(
            GROUP, "v1", NS, WLE, "a", {"status": {"conditions": []}}
        )
    assert caught.value.status == 400
    assert json.loads(caught.value.body)["reason"] == "BadRequest"


async def test_list_sent_as_merge_patch_is_400(sim: KubeSim, custom: CustomObjectsApi) -> None:
    await _created(custom)
    code, body = await _raw_patch(sim, b'[{"op": "remove", "path": "/spec"}]', MERGE)
    assert (code, body["reason"]) == (400, "BadRequest")
    code, body = await _raw_patch(sim, b"{not json", MERGE)
    assert code == 400


async def test_strategic_merge_on_custom_resource_is_415(
    sim: KubeSim, custom: CustomObjectsApi
) -> None:
    await _created(custom)
    code, body = await _raw_patch(sim, b'{"spec": {"weight": 2}}', STRATEGIC)
    assert (code, body["reason"]) == (415, "UnsupportedMediaType")
    code, body = await _raw_patch(sim, b'{"spec": {"weight": 2}}', "text/plain")
    assert code == 415


async def test_strategic_merge_on_configmap_merges(core: CoreV1Api) -> None:
    await core.create_namespaced_config_map(
        NS, V1ConfigMap(metadata=V1ObjectMeta(name="c"), data={"a": "1", "b": "2"})
    )
    # CoreV1Api sends a dict body as strategic merge patch by default.
    patched = await core.patch_namespaced_config_map("c", NS, {"data": {"b": "3", "c": "4"}})
    assert patched.data == {"a": "1", "b": "3", "c": "4"}


async def test_apply_patch_needs_field_manager(custom: CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as caught:
        await custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, WLE, "a", wle("a"), _content_type=APPLY
        )
    assert caught.value.status == 422
    assert "fieldManager" in json.loads(caught.value.body)["message"]


async def test_apply_patch_creates_then_merges(custom: CustomObjectsApi) -> None:
    """Another manager's apply merges into what the first applied (fields it does not
    mention stay: they are the first manager's)."""
    answer = await custom.patch_namespaced_custom_object(
        GROUP, "v1", NS, WLE, "a", wle("a", weight=7), _content_type=APPLY, field_manager="gtm"
    )
    # The apiserver answers 201 Created; kubernetes-asyncio maps only 200 for patch,
    # so the call returns None. Read the object back.
    assert answer is None
    created = await custom.get_namespaced_custom_object(GROUP, "v1", NS, WLE, "a")
    assert created["spec"]["weight"] == 7
    managers = {(m["manager"], m["operation"]) for m in created["metadata"]["managedFields"]}
    assert ("gtm", "Apply") in managers
    applied = await custom.patch_namespaced_custom_object(
        GROUP,
        "v1",
        NS,
        WLE,
        "a",
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "WorkloadEntry",
            "metadata": {"name": "a"},
            "spec": {"locality": "region01/az01"},
        },
        _content_type=APPLY,
        field_manager="placement",
    )
    assert applied["spec"] == {"address": "10.0.0.1", "weight": 7, "locality": "region01/az01"}


async def test_force_only_with_apply(custom: CustomObjectsApi) -> None:
    await _created(custom)
    with pytest.raises(ApiException) as caught:
        await custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, WLE, "a", {"spec": {"weight": 2}}, _content_type=MERGE, force=True
        )
    assert caught.value.status == 422


async def test_patch_of_missing_object_is_not_found(custom: CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as caught:
        await custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, WLE, "ghost", {"spec": {"weight": 2}}, _content_type=MERGE
        )
    assert caught.value.status == 404


async def test_patch_that_breaks_validation_is_422(custom: CustomObjectsApi) -> None:
    await _created(custom)
    with pytest.raises(ApiException) as caught:
        await custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, WLE, "a", {"spec": {"address": None}}, _content_type=MERGE
        )
    assert caught.value.status == 422
    assert "Address is required" in json.loads(caught.value.body)["message"]


# -- the pure functions ---------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)
objects = st.dictionaries(st.text(max_size=3), json_values, max_size=4)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


@settings(max_examples=60)
@given(objects, objects)
def test_merge_patch_is_idempotent(target: dict[str, Any], patch: dict[str, Any]) -> None:
    once = merge_patch(target, patch)
    assert json_equal(merge_patch(once, patch), once)


@settings(max_examples=60)
@given(objects)
def test_merge_patch_with_itself_is_identity_without_nulls(target: dict[str, Any]) -> None:
    clean = _without_nulls(target)
    assert json_equal(merge_patch(clean, clean), clean)


@settings(max_examples=60)
@given(objects, st.text(min_size=1, max_size=4), json_values)
def test_json_patch_add_then_remove_round_trips(doc: dict[str, Any], key: str, value: Any) -> None:
    doc.pop(key, None)
    pointer = "/" + key.replace("~", "~0").replace("/", "~1")
    added = apply_json_patch(
        doc, parse_json_patch([{"op": "add", "path": pointer, "value": value}])
    )
    assert json_equal(added[key], value)
    removed = apply_json_patch(added, parse_json_patch([{"op": "remove", "path": pointer}]))
    assert json_equal(removed, doc)


def test_json_equal_tells_booleans_from_numbers() -> None:
    assert not json_equal(True, 1)
    assert json_equal(1, 1.0)
    assert not json_equal({"a": [1]}, {"a": [True]})


def test_json_patch_array_rules() -> None:
    doc = {"a": [1, 2]}
    assert apply_json_patch(doc, parse_json_patch([{"op": "add", "path": "/a/-", "value": 3}])) == {
        "a": [1, 2, 3]
    }
    assert apply_json_patch(
        doc, parse_json_patch([{"op": "move", "from": "/a/0", "path": "/b"}])
    ) == {
        "a": [2],
        "b": 1,
    }
    for bad in ("/a/01", "/a/5", "/a/x"):
        with pytest.raises(ApiError) as caught:
            apply_json_patch(doc, parse_json_patch([{"op": "replace", "path": bad, "value": 0}]))
        assert caught.value.code == 422
