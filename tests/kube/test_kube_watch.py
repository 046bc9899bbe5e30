"""kube.Client.watch(): events after a resourceVersion; too old a version is `Expired`."""

from __future__ import annotations

import contextlib
from functools import partial

import pytest

from chaos.kubesim import KubeSim
from kube import Client, Expired


def config_map(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "gtm"}}


async def test_a_watch_yields_the_changes_after_a_version(sim: KubeSim) -> None:
    async with Client(sim.configuration(), timeout=2.0) as c:
        create = partial(c.core.create_namespaced_config_map, "gtm")
        await c.request("create", partial(create, config_map("a")))
        listed = await c.request("list", partial(c.core.list_namespaced_config_map, "gtm"))
        await c.request("create", partial(create, config_map("b")))
        watch = c.watch(
            partial(c.core.list_namespaced_config_map, "gtm"),
            resource_version=listed["metadata"]["resourceVersion"],
            seconds=1,
        )
        async with contextlib.aclosing(watch) as events:
            seen = [(e.type, e.object["metadata"]["name"]) async for e in events]
    assert seen == [("ADDED", "b")]


async def test_too_old_a_version_is_expired() -> None:
    async with KubeSim(host="127.0.0.1", port=0, history=2) as sim:
        async with Client(sim.configuration(), timeout=2.0) as c:
            for name in "abcde":
                await c.request(
                    "create",
                    partial(c.core.create_namespaced_config_map, "gtm", config_map(name)),
                )
            watch = c.watch(
                partial(c.core.list_namespaced_config_map, "gtm"), resource_version="1", seconds=1
            )
            with pytest.raises(Expired):
                async with contextlib.aclosing(watch) as events:
                    async for _ in events:
                        pass


async def test_objects_come_without_their_managed_fields_unless_asked(sim: KubeSim) -> None:
    # the server keeps a field set per manager on every object: gtm never reads them
    for keep in (False, True):
        async with Client(sim.configuration(), timeout=2.0, managed_fields=keep) as c:
            name = f"m-{keep}".lower()
            create = partial(
                c.core.create_namespaced_config_map,
                "gtm",
                {**config_map(name), "data": {"k": "v"}},
                field_manager="t",
            )
            made = await c.request("create", create)
            listed = await c.request("list", partial(c.core.list_namespaced_config_map, "gtm"))
            version = str(int(listed["metadata"]["resourceVersion"]) - 1)
            watch = c.watch(
                partial(c.core.list_namespaced_config_map, "gtm"),
                resource_version=version,
                seconds=1,
            )
            async with contextlib.aclosing(watch) as events:
                seen = [e.object async for e in events if e.type != "BOOKMARK"]
            for obj in (made, *listed["items"], *seen):
                assert ("managedFields" in obj["metadata"]) is keep, obj["metadata"]
