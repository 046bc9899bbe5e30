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
