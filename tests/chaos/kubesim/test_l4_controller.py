"""The simulated L4 controller (`chaos.estate.l4`) on a simulated cluster: a VIP from the
region's loopback pool for each `gtm.io/ipvs` LoadBalancer Service, within a second,
through `/status`; other classes untouched; freed on delete; withdrawn and restored."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kubesim_testing import NS, Kubectl, needs_kubectl, table_rows

from chaos.estate import Clusters, Launcher, PortPlan
from chaos.estate.clusters import client_configuration
from chaos.estate.l4 import L4Controller, l4_pool
from chaos.estate.ports import BLOCK, Endpoint, in_use
from chaos.kubesim import Faults, KubeSim
from gtm.config import load
from kube import MERGE_PATCH, NO_RETRY, Client


def service(name: str, lb_class: str | None = "gtm.io/ipvs", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "LoadBalancer", "ports": [{"port": 443}], **spec}
    if lb_class is not None:
        body["loadBalancerClass"] = lb_class
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}


@pytest.fixture
async def l4(kube_client: Client) -> AsyncIterator[L4Controller]:
    controller = L4Controller(kube_client, region="dc1", pool=l4_pool(0), watch_seconds=5)
    await controller.start()
    yield controller
    await controller.stop()


async def _create(client: Client, body: dict[str, Any]) -> None:
    await client.request("create", partial(client.core.create_namespaced_service, NS, body))


def _ingress(sim: KubeSim, name: str) -> list[dict[str, Any]]:
    for svc in sim.objects("", "v1", "services", NS):
        if svc["metadata"]["name"] == name:
            return list(svc["status"].get("loadBalancer", {}).get("ingress") or [])
    raise KeyError(name)


async def _until(check: Callable[[], bool], within: float = 1.0) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within}s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def test_pools_are_loopback_and_apart_per_region() -> None:
    assert l4_pool(0)[0] == "127.1.1.1" and l4_pool(2)[0] == "127.1.3.1"
    assert len(l4_pool(0)) == 254
    with pytest.raises(ValueError, match="loopback"):
        L4Controller(None, region="x", pool=["10.0.0.1"])  # type: ignore[arg-type]


async def test_an_ipvs_service_gets_a_vip_within_a_second(
    l4: L4Controller, kube_client: Client, sim: KubeSim
) -> None:
    await _create(kube_client, service("foo-gw"))
    await _until(lambda: bool(_ingress(sim, "foo-gw")), within=1.0)
    assert _ingress(sim, "foo-gw") == [{"ip": "127.1.1.1", "ipMode": "VIP"}]
    assert l4.vips() == {(NS, "foo-gw"): "127.1.1.1"}
    (svc,) = sim.objects("", "v1", "services", NS)
    writers = {(e["manager"], e.get("subresource")) for e in svc["metadata"]["managedFields"]}
    assert any(sub == "status" for _, sub in writers)  # written through /status


async def test_other_classes_and_types_are_ignored(
    l4: L4Controller, kube_client: Client, sim: KubeSim
) -> None:
    await _create(kube_client, service("other", lb_class="metallb.io/l2"))
    await _create(kube_client, service("default-lb", lb_class=None))
    await _create(kube_client, service("plain", lb_class=None, type="ClusterIP"))
    await _create(kube_client, service("ours"))
    await _until(lambda: bool(_ingress(sim, "ours")))
    await asyncio.sleep(0.2)
    assert _ingress(sim, "other") == _ingress(sim, "default-lb") == _ingress(sim, "plain") == []
    assert list(l4.vips()) == [(NS, "ours")]


async def test_a_deleted_service_frees_its_vip(
    l4: L4Controller, kube_client: Client, sim: KubeSim
) -> None:
    await _create(kube_client, service("a"))
    await _until(lambda: bool(_ingress(sim, "a")))
    await _create(kube_client, service("b"))
    await _until(lambda: bool(_ingress(sim, "b")))
    assert l4.vips() == {(NS, "a"): "127.1.1.1", (NS, "b"): "127.1.1.2"}
    await kube_client.request(
        "delete", partial(kube_client.core.delete_namespaced_service, "a", NS)
    )
    await _until(lambda: (NS, "a") not in l4.vips())
    await _create(kube_client, service("c"))
    await _until(lambda: bool(_ingress(sim, "c")))
    assert _ingress(sim, "c")[0]["ip"] == "127.1.1.1"  # reused


async def test_a_service_that_stops_being_ours_loses_its_vip(
    l4: L4Controller, kube_client: Client, sim: KubeSim
) -> None:
    await _create(kube_client, service("foo-gw"))
    await _until(lambda: bool(_ingress(sim, "foo-gw")))
    patch = {"spec": {"type": "ClusterIP"}}
    changed = await kube_client.request(
        "patch",
        partial(
            kube_client.core.patch_namespaced_service,
            "foo-gw",
            NS,
            patch,
            _content_type=MERGE_PATCH,
        ),
    )
    # the apiserver drops what only a LoadBalancer carries; the controller its VIP
    assert "loadBalancerClass" not in changed["spec"]
    assert "nodePort" not in changed["spec"]["ports"][0]
    await _until(lambda: not _ingress(sim, "foo-gw"))
    assert l4.vips() == {}


async def test_a_requested_address_in_the_pool_is_honoured(
    l4: L4Controller, kube_client: Client, sim: KubeSim
) -> None:
    await _create(kube_client, service("pinned", loadBalancerIP="127.1.1.77"))
    await _until(lambda: bool(_ingress(sim, "pinned")))
    assert _ingress(sim, "pinned")[0]["ip"] == "127.1.1.77"


async def test_withdraw_clears_the_ingress_and_restore_brings_it_back(
    l4: L4Controller, kube_client: Client, sim: KubeSim
) -> None:
    await _create(kube_client, service("foo-gw"))
    await _until(lambda: bool(_ingress(sim, "foo-gw")))
    await l4.withdraw(NS, "foo-gw")
    await _until(lambda: not _ingress(sim, "foo-gw"))
    (svc,) = sim.objects("", "v1", "services", NS)
    assert svc["status"] == {"loadBalancer": {}}
    await asyncio.sleep(0.2)  # the controller does not put it back by itself
    assert not _ingress(sim, "foo-gw")
    await l4.restore(NS, "foo-gw")
    await _until(lambda: bool(_ingress(sim, "foo-gw")))
    assert _ingress(sim, "foo-gw")[0]["ip"] == "127.1.1.1"


async def test_someone_clearing_the_status_gets_it_rewritten(
    l4: L4Controller, kube_client: Client, sim: KubeSim
) -> None:
    await _create(kube_client, service("foo-gw"))
    await _until(lambda: bool(_ingress(sim, "foo-gw")))
    body = {"status": {"loadBalancer": {"ingress": [{"ip": "127.9.9.9"}]}}}
    await kube_client.request(
        "patch",
        partial(
            kube_client.core.patch_namespaced_service_status,
            "foo-gw",
            NS,
            body,
            _content_type=MERGE_PATCH,
        ),
    )
    await _until(lambda: _ingress(sim, "foo-gw") == [{"ip": "127.1.1.1", "ipMode": "VIP"}])


async def test_a_restarted_controller_keeps_the_addresses(
    kube_client: Client, sim: KubeSim
) -> None:
    first = L4Controller(kube_client, region="dc1", pool=l4_pool(0), watch_seconds=5)
    await first.start()
    await _create(kube_client, service("a"))
    await _create(kube_client, service("b"))
    await _until(lambda: bool(_ingress(sim, "a")) and bool(_ingress(sim, "b")))
    before = first.vips()
    await first.stop()
    await kube_client.request(
        "delete", partial(kube_client.core.delete_namespaced_service, "a", NS)
    )
    second = L4Controller(kube_client, region="dc1", pool=l4_pool(0), watch_seconds=5)
    await second.start()
    try:
        assert second.vips() == {(NS, "b"): before[(NS, "b")]}
        await _create(kube_client, service("c"))
        await _until(lambda: bool(_ingress(sim, "c")))
        assert _ingress(sim, "c")[0]["ip"] == before[(NS, "a")]
    finally:
        await second.stop()


@needs_kubectl
async def test_kubectl_sees_the_vip_as_external_ip(
    l4: L4Controller, kubectl: Kubectl, sim: KubeSim, tmp_path: Path
) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: foo-gw}\nspec:\n"
        "  type: LoadBalancer\n  loadBalancerClass: gtm.io/ipvs\n  ports: [{port: 443}]\n"
    )
    await kubectl("apply", "-f", str(manifest), "-n", NS)
    await _until(lambda: bool(_ingress(sim, "foo-gw")))
    rows = table_rows(await kubectl("get", "svc", "foo-gw", "-n", NS))
    assert rows[1][3] == "127.1.1.1"


ESTATE = Path(__file__).resolve().parents[3] / "examples" / "estate.yaml"


def _free_base() -> int:
    """A base port whose `PortPlan.from_base` block is free on loopback."""
    for _ in range(200):
        base = random.randrange(30000, 32000)
        block = [Endpoint("probe", "127.0.0.1", p) for p in range(base, base + BLOCK)]
        if not in_use(block):
            return base
    raise RuntimeError("no free block of ports")


async def test_the_estate_runs_an_l4_controller_beside_each_cluster(tmp_path: Path) -> None:
    inventory = load(ESTATE)
    async with Launcher() as launcher:
        clusters = Clusters(inventory, tmp_path, launcher, ports=PortPlan.from_base(_free_base()))
        await clusters.start()
        try:
            assert sorted(clusters.l4) == sorted(inventory.region_names)
            config = await client_configuration(clusters.kubeconfig, "dc2")
            async with Client(config) as client:
                await _create(client, service("foo-gw"))

                async def ingress() -> list[dict[str, Any]]:
                    read = await client.request(
                        "get", partial(client.core.read_namespaced_service, "foo-gw", NS)
                    )
                    return list(read["status"]["loadBalancer"].get("ingress") or [])

                async with asyncio.timeout(2):
                    while True:
                        if await ingress():
                            break
                        await asyncio.sleep(0.05)
                assert await ingress() == [{"ip": "127.1.2.1", "ipMode": "VIP"}]  # dc2's pool
                await clusters.l4["dc2"].withdraw(NS, "foo-gw")
                assert await ingress() == []
        finally:
            await clusters.stop()
    assert clusters.l4 == {}


async def test_an_api_brownout_is_ridden_out_with_backoff(
    kube_client: Client, sim: KubeSim
) -> None:
    await _create(kube_client, service("foo-gw"))
    sim.faults.set(Faults(error_rate=1.0, verbs=("list",)))
    controller = L4Controller(
        Client(sim.configuration(), timeout=2, retry=NO_RETRY),
        region="dc1",
        pool=l4_pool(0),
        retry_delay=0.05,
        retry_max=0.2,
    )
    task = asyncio.create_task(controller.start(within=5))
    await asyncio.sleep(0.6)
    lists = sim.stats()["by_verb"].get("list", 0)
    assert 2 <= lists <= 8  # 0.05, 0.1, 0.2, 0.2... not a tight loop
    sim.faults.set(Faults())
    await task
    try:
        await _until(lambda: bool(_ingress(sim, "foo-gw")))
    finally:
        await controller.stop()
        await controller.client.aclose()
