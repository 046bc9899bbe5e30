"""Discovery, kubeconfig, and `python -m chaos.kubesim` as a separate process with --state."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from kubernetes_asyncio.client import (
    ApiClient,
    ApisApi,
    Configuration,
    CoreApi,
    CustomObjectsApi,
    VersionApi,
)
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import load_kube_config
from kubesim_testing import GROUP, NS, WLE, wle

from chaos.kubesim import Faults, KubeSim
from chaos.kubesim.__main__ import parse_args

ROOT = Path(__file__).resolve().parents[3]


async def test_discovery_through_the_client(api_client: ApiClient) -> None:
    version = await VersionApi(api_client).get_code()
    assert version.major == "1"
    groups = await ApisApi(api_client).get_api_versions()
    by_name = {g.name: g for g in groups.groups}
    assert by_name[GROUP].preferred_version.version == "v1"
    assert [v.version for v in by_name[GROUP].versions] == ["v1", "v1beta1"]
    assert "coordination.k8s.io" in by_name
    core = await CoreApi(api_client).get_api_versions()
    assert core.versions == ["v1"]
    resources = await CustomObjectsApi(api_client).get_api_resources("coordination.k8s.io", "v1")
    assert [r.name for r in resources.resources] == ["leases"]


async def test_unknown_paths_are_status_404(sim: KubeSim) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ("/apis/example.com", "/apis/example.com/v1", "/nothing", "/api/v2/pods"):
            async with session.get(sim.url + path) as response:
                body = await response.json()
                assert (response.status, body["kind"], body["reason"]) == (
                    404,
                    "Status",
                    "NotFound",
                )
        async with session.post(
            f"{sim.url}/apis/{GROUP}/v1/namespaces/{NS}/{WLE}/a/status"
        ) as response:
            assert response.status == 405


async def test_kubeconfig_contexts_share_a_file(tmp_path: Path) -> None:
    path = tmp_path / "kube" / "config"
    async with KubeSim() as dc1, KubeSim() as dc2:
        assert dc1.write_kubeconfig(path, context="dc1") == path
        dc2.write_kubeconfig(path, context="dc2")
        dc2.seed(wle("only-in-dc2"))
        for context, expected in (("dc1", []), ("dc2", ["only-in-dc2"])):
            config = Configuration()
            await load_kube_config(
                config_file=str(path), context=context, client_configuration=config
            )
            async with ApiClient(config) as client:
                listed = await CustomObjectsApi(client).list_namespaced_custom_object(
                    GROUP, "v1", NS, WLE
                )
            assert [o["metadata"]["name"] for o in listed["items"]] == expected
    assert "current-context: dc1" in path.read_text()


@asynccontextmanager
async def _process(*args: str) -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chaos.kubesim",
        "--listen",
        "127.0.0.1:0",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            url = (await proc.stdout.readline()).decode().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            _, stderr = await proc.communicate()
        assert proc.returncode == 0, stderr.decode()


async def test_process_keeps_state_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "dc1.json"
    async with _process("--state", str(state)) as url, ApiClient(Configuration(host=url)) as client:
        api = CustomObjectsApi(client)
        created = await api.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/_sim/faults", json={"error_rate": 1.0}) as response:
                assert response.status == 200
            with pytest.raises(ApiException) as caught:
                await api.get_namespaced_custom_object(GROUP, "v1", NS, WLE, "a")
            assert caught.value.status == 500
    assert state.exists()
    async with _process("--state", str(state)) as url, ApiClient(Configuration(host=url)) as client:
        api = CustomObjectsApi(client)
        kept = await api.get_namespaced_custom_object(
            GROUP, "v1", NS, WLE, "a"
        )  # faults are not kept
        assert kept["metadata"]["uid"] == created["metadata"]["uid"]
        patched = await api.patch_namespaced_custom_object(
            GROUP,
            "v1",
            NS,
            WLE,
            "a",
            {"spec": {"weight": 1}},
            _content_type="application/merge-patch+json",
        )
        assert int(patched["metadata"]["resourceVersion"]) > int(
            created["metadata"]["resourceVersion"]
        )


def test_command_refuses_a_bad_listen_address(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--listen", "no-port"])
    assert exited.value.code == 2
    assert "HOST:PORT" in capsys.readouterr().err
    assert parse_args(["--listen", "[::1]:8080"]).listen == ("::1", 8080)


async def test_public_api_as_documented(tmp_path: Path) -> None:
    async with KubeSim(host="127.0.0.1", port=0) as sim:
        assert sim.url.startswith("http://127.0.0.1:") and sim.port > 0
        assert sim.write_kubeconfig(tmp_path / "config", context="dc1").exists()
        assert sim.configuration().host == sim.url
        sim.faults.set(
            Faults(
                latency=0.005,
                error_rate=0.5,
                throttle_rate=0.1,
                retry_after=1,
                rate_limit=100,
                burst=10,
                drop_watches=True,
                seed=1,
            )
        )
        sim.faults.clear()
        assert sim.faults.current == Faults()
        stored = sim.seed(wle("a"))
        assert sim.objects(GROUP, "v1", WLE) == [stored]
        assert sim.objects(GROUP, "v1", WLE, namespace="other") == []
        stats = sim.stats()
        assert stats["total"] == 0 and stats["resource_version"] == 1
