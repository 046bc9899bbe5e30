"""Label and field selectors, all-namespace lists, and paging."""

from __future__ import annotations

import pytest
from kubernetes_asyncio.client import CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException
from kubesim_testing import GROUP, NS, WLE, wle

from chaos.kubesim.selectors import parse_labels

FLEET = {
    "a": {"region": "dc1", "tier": "vip"},
    "b": {"region": "dc2", "tier": "vip"},
    "c": {"region": "dc3"},
    "d": {},
}


async def _fleet(custom: CustomObjectsApi) -> None:
    for name, labels in FLEET.items():
        await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle(name, labels=labels))


async def _names(custom: CustomObjectsApi, **query: str) -> list[str]:
    listed = await custom.list_namespaced_custom_object(GROUP, "v1", NS, WLE, **query)
    return [o["metadata"]["name"] for o in listed["items"]]


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("region=dc1", ["a"]),
        ("region==dc2", ["b"]),
        ("region!=dc1", ["b", "c", "d"]),  # != matches objects without the key
        ("region in (dc1, dc3)", ["a", "c"]),
        ("region notin (dc1,dc3)", ["b", "d"]),  # so does notin
        ("tier", ["a", "b"]),
        ("!tier", ["c", "d"]),
        ("tier=vip,region!=dc2", ["a"]),
        ("region in (dc1,dc2),!missing", ["a", "b"]),
        ("", ["a", "b", "c", "d"]),
    ],
)
async def test_label_selectors(custom: CustomObjectsApi, selector: str, names: list[str]) -> None:
    await _fleet(custom)
    assert await _names(custom, label_selector=selector) == names


@pytest.mark.parametrize(
    "selector",
    ["region in dc1", "region in (dc1", "=dc1", "region=dc1)", "re gion=x", "a=b=c", "k=bad/value"],
)
async def test_malformed_label_selectors_are_400(custom: CustomObjectsApi, selector: str) -> None:
    with pytest.raises(ApiException) as caught:
        await custom.list_namespaced_custom_object(GROUP, "v1", NS, WLE, label_selector=selector)
    assert caught.value.status == 400


async def test_field_selectors(custom: CustomObjectsApi) -> None:
    await _fleet(custom)
    assert await _names(custom, field_selector="metadata.name=b") == ["b"]
    assert await _names(custom, field_selector="metadata.name!=b,metadata.namespace=default") == [
        "a",
        "c",
        "d",
    ]
    with pytest.raises(ApiException) as caught:
        await custom.list_namespaced_custom_object(
            GROUP, "v1", NS, WLE, field_selector="spec.weight=1"
        )
    assert caught.value.status == 400


async def test_all_namespaces_list(custom: CustomObjectsApi) -> None:
    for namespace in ("mesh-a", "mesh-b"):
        await custom.create_namespaced_custom_object(GROUP, "v1", namespace, WLE, wle("x"))
    listed = await custom.list_cluster_custom_object(GROUP, "v1", WLE)
    assert [o["metadata"]["namespace"] for o in listed["items"]] == ["mesh-a", "mesh-b"]
    assert await _names(custom) == []
    with pytest.raises(ApiException) as caught:  # no create without a namespace
        await custom.create_cluster_custom_object(GROUP, "v1", WLE, wle("y"))
    assert caught.value.status == 405


async def test_paging_with_limit_and_continue(custom: CustomObjectsApi) -> None:
    for index in range(5):
        await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle(f"w{index}"))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        query = {"limit": 2, **({"_continue": token} if token else {})}
        page = await custom.list_namespaced_custom_object(GROUP, "v1", NS, WLE, **query)
        pages += 1
        seen += [o["metadata"]["name"] for o in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
        assert page["metadata"]["remainingItemCount"] == 5 - len(seen)
    assert (pages, seen) == (3, [f"w{i}" for i in range(5)])
    with pytest.raises(ApiException) as caught:
        await custom.list_namespaced_custom_object(GROUP, "v1", NS, WLE, _continue="garbage")
    assert caught.value.status == 400


def test_selector_parse_keeps_commas_inside_sets() -> None:
    selector = parse_labels("a in (x, y),b")
    assert [r.op for r in selector.requirements] == ["in", "exists"]
    assert selector.matches({"a": "y", "b": ""})
    assert not selector.matches({"a": "z", "b": ""})
