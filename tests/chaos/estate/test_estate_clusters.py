"""Simulated clusters as processes: the mesh read back with kubernetes-asyncio through the kubeconfig."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import yaml
from estate_testing import free_base, write_estate_file
from kubernetes_asyncio.client import ApiClient, CustomObjectsApi

from chaos.estate import Clusters, Launcher, PortPlan, mesh_objects
from chaos.estate.clusters import client_configuration
from gtm.config import load

pytestmark = pytest.mark.asyncio(loop_scope="module")
GROUP, VERSION, NS = "networking.istio.io", "v1", "gtm-mesh"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def clusters(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Clusters]:
    work = tmp_path_factory.mktemp("clusters")
    inventory = load(write_estate_file(work))
    async with Launcher() as launcher:
        running = Clusters(inventory, work, launcher, ports=PortPlan.from_base(free_base()))
        await running.start()
        try:
            yield running
        finally:
            await running.stop()


async def listed(clusters: Clusters, region: str, plural: str, **kw: Any) -> list[dict[str, Any]]:
    config = await client_configuration(clusters.kubeconfig, region)
    async with ApiClient(config) as client:
        found = await CustomObjectsApi(client).list_namespaced_custom_object(
            GROUP, VERSION, NS, plural, **kw
        )
    return sorted(found["items"], key=lambda o: o["metadata"]["name"])


async def test_kubeconfig_has_a_context_per_region(clusters: Clusters) -> None:
    config = yaml.safe_load(clusters.kubeconfig.read_text())
    assert [c["name"] for c in config["contexts"]] == ["dc1", "dc2", "dc3"]
    servers = {c["name"]: c["cluster"]["server"] for c in config["clusters"]}
    assert servers == clusters.urls
    assert len(set(servers.values())) == 3
    for region in clusters.urls:
        assert (await client_configuration(clusters.kubeconfig, region)).host == servers[region]


async def test_objects_are_held_as_an_apiserver_holds_them(clusters: Clusters) -> None:
    for region in ("dc1", "dc2", "dc3"):
        expected = mesh_objects(clusters.inventory, region)
        wles = await listed(
            clusters, region, "workloadentries", label_selector="gtm.io/managed=true"
        )
        want = sorted(expected.workload_entries, key=lambda o: o["metadata"]["name"])
        assert [w["metadata"]["name"] for w in wles] == [w["metadata"]["name"] for w in want]
        for got, body in zip(wles, want, strict=True):
            meta = got["metadata"]
            assert got["spec"] == body["spec"]  # address, ports, locality, weight, labels
            assert meta["labels"] == body["metadata"]["labels"]
            assert meta["annotations"] == {"proxy.istio.io/health-checks-enabled": "true"}
            assert meta["generation"] == 1  # the status write did not touch the spec
            [healthy] = got["status"]["conditions"]
            assert (healthy["type"], healthy["status"]) == ("Healthy", "True")
            assert healthy["lastTransitionTime"].endswith("Z")
            local = got["spec"]["locality"] == clusters.inventory.regions[region].locality
            assert (got["spec"]["weight"] >= 98) == local
        entries = await listed(clusters, region, "serviceentries")
        assert [e["spec"] for e in entries] == [
            e["spec"] for e in sorted(expected.service_entries, key=lambda o: o["metadata"]["name"])
        ]
        assert clusters.seeded[region].created == len(want) + len(entries)


async def test_each_region_has_its_own_cluster(clusters: Clusters) -> None:
    config = await client_configuration(clusters.kubeconfig, "dc3")
    async with ApiClient(config) as client:
        await CustomObjectsApi(client).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            NS,
            "workloadentries",
            "foo-dc3-127-61-3-1-" + str(clusters.inventory.services["foo"].vips["dc3"][0].port),
            {"spec": {"weight": 7}},
            _content_type="application/merge-patch+json",
        )
    weights = {
        r: [w["spec"]["weight"] for w in await listed(clusters, r, "workloadentries")]
        for r in ("dc1", "dc3")
    }
    assert 7 in weights["dc3"] and 7 not in weights["dc1"]


async def test_a_restart_keeps_the_objects_and_seeds_nothing_twice(clusters: Clusters) -> None:
    before = await listed(clusters, "dc3", "workloadentries")
    await clusters.stop()
    assert clusters.state_file("dc3").exists()
    await clusters.start()
    assert {r.region: (r.created, r.kept > 0) for r in clusters.seeded.values()} == {
        "dc1": (0, True),
        "dc2": (0, True),
        "dc3": (0, True),
    }
    after = await listed(clusters, "dc3", "workloadentries")
    assert [(w["metadata"]["uid"], w["spec"]) for w in after] == [
        (w["metadata"]["uid"], w["spec"]) for w in before
    ]  # the weight 7 written above survived: the seed never undoes a change
