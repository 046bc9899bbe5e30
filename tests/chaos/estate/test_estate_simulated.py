"""`SimulatedEstate` end to end, with stand-in members in place of `gtm serve`."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import yaml
from estate_testing import NET, free_base, get, pid_gone, write_estate_file
from kubernetes_asyncio.client import ApiClient, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from chaos.estate import ControlError, Fault, SimulatedEstate
from chaos.estate.clusters import client_configuration
from chaos.kubesim import Faults
from gtm.config import load

pytestmark = pytest.mark.asyncio(loop_scope="module")

# What the demo will run as `gtm serve --config PATH`: here, just the API's /healthz.
STAND_IN = """
import sys
from aiohttp import web
from gtm.config import load, split_listen

config = load(sys.argv[1]).config
host, port = split_listen(config.api.listen)
app = web.Application()
app.router.add_get("/healthz", lambda request: web.Response(text=config.instance.member))
web.run_app(app, host=host, port=port, print=None)
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def estate(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimulatedEstate]:
    work = tmp_path_factory.mktemp("estate")
    source = write_estate_file(work)
    async with SimulatedEstate(source, work / "run", base_port=free_base()) as running:
        yield running


def vip_url(estate: SimulatedEstate, vip_id: str) -> str:
    address = vip_id.split("/")[2]
    return f"http://{address}/healthz"


async def test_files_and_addresses(estate: SimulatedEstate) -> None:
    work = estate.work_dir
    assert load(estate.estate_file).config.services[0].name == "foo"
    assert set(estate.member_configs) == {f"dc{r}-{p}" for r in (1, 2, 3) for p in "ab"}
    for name, path in estate.member_configs.items():
        config = load(path).config
        assert config.instance.member == name
        assert config.dns.listen == f"127.0.0.1:{estate.dns_ports[name]}"
        assert f"http://{config.api.listen}" == estate.api_urls[name]
        assert config.kubernetes.clusters[0].kubeconfig == str(estate.kubeconfig)
    assert (
        len(
            set(estate.dns_ports.values())
            | {int(u.rsplit(":", 1)[1]) for u in estate.api_urls.values()}
        )
        == 12
    )
    cli = yaml.safe_load(estate.cli_config.read_text())
    assert cli["server"] == estate.api_urls["dc1-a"]
    assert cli["token_file"] == str(estate.tokens.operator_file)
    assert estate.viewer_token != estate.operator_token
    assert set(estate.cluster_urls) == {"dc1", "dc2", "dc3"}
    for log in ("vips", "cluster-dc1", "cluster-dc2", "cluster-dc3"):
        assert (work / "logs" / f"{log}.log").exists()


async def test_vip_faults_through_the_estate(estate: SimulatedEstate) -> None:
    vips = await estate.vips()
    assert len(vips) == 9 and all(v["fault"] == {"mode": "ok"} for v in vips)
    foo_dc1 = next(v["id"] for v in vips if v["id"].startswith("foo/dc1/"))
    status, body, headers = await get(vip_url(estate, foo_dc1))
    assert (status, body, headers["X-Gtm-Vip"]) == (200, "ok", foo_dc1)

    state = await estate.set_vip_fault(foo_dc1, Fault("error", status=500))
    assert state["fault"] == {"mode": "error", "status": 500}
    assert (await get(vip_url(estate, foo_dc1)))[0] == 500

    answer = await estate.set_region_fault("dc2", Fault("refuse"))
    assert {v["region"] for v in answer["vips"]} == {"dc2"}
    for v in vips:
        if v["region"] == "dc2":
            with pytest.raises(aiohttp.ClientConnectorError):
                await get(vip_url(estate, v["id"]))
    with pytest.raises(ControlError, match="404"):
        await estate.set_vip_fault("foo/dc9/1.1.1.1:1", Fault())

    await estate.reset_vips()
    assert all(v["fault"] == {"mode": "ok"} and v["listening"] for v in await estate.vips())
    assert (await get(vip_url(estate, foo_dc1)))[0] == 200


async def test_wles_and_cluster_faults(estate: SimulatedEstate) -> None:
    wles = await estate.wles("dc2")
    assert len(wles) == 9
    for w in wles:
        assert w["metadata"]["labels"]["gtm.io/managed"] == "true"
        assert w["status"]["conditions"][0]["status"] == "True"
    local = [w for w in wles if w["spec"]["locality"] == "region02/az01"]
    assert {w["spec"]["address"] for w in local} == {f"{NET}.2.1", f"{NET}.2.2"}

    faults = await estate.cluster_faults("dc2", Faults(error_rate=1.0, verbs=("list",)))
    assert faults["faults"]["error_rate"] == 1.0
    config = await client_configuration(estate.kubeconfig, "dc2")
    async with ApiClient(config) as client:
        api = CustomObjectsApi(client)
        with pytest.raises(ApiException) as caught:
            await api.list_namespaced_custom_object(
                "networking.istio.io", "v1", "gtm-mesh", "workloadentries"
            )
        assert caught.value.status == 500
        assert len(await estate.wles("dc2")) == 9  # observing is not faulted
        await estate.cluster_faults("dc2", Faults())
        listed = await api.list_namespaced_custom_object(
            "networking.istio.io", "v1", "gtm-mesh", "workloadentries"
        )
        assert len(listed["items"]) == 9
    assert await estate.drop_watches("dc2") == 1  # the L4 controller's watch of Services, no other


async def test_members_start_through_the_launcher_and_stop_with_the_estate(
    estate: SimulatedEstate, tmp_path: Path
) -> None:
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    started = estate.start_members(
        None, lambda name, path: [sys.executable, str(script), str(path)], names=["dc1-a", "dc2-b"]
    )
    assert [c.name for c in started] == ["dc1-a", "dc2-b"]
    await estate.wait_members(names=["dc1-a", "dc2-b"], within=20)
    assert (await get(estate.api_urls["dc2-b"] + "/healthz"))[1] == "dc2-b"
    estate.launcher.kill("dc1-a")  # a drill's crash
    assert await estate.launcher.wait("dc1-a", 5) < 0
    assert (estate.work_dir / "logs" / "dc2-b.log").exists()

    pids = [estate.launcher.pid(n) for n in estate.launcher.names]
    assert len(pids) == 6  # vips, three clusters, two members
    await estate.stop()
    assert all(pid_gone(p) for p in pids)
