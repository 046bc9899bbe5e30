"""`kubectl get` prints what a real cluster prints: the columns of Istio's CRDs, served as
a meta.k8s.io Table (kubectl's Accept), driven through the real `kubectl`."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubesim_testing import GROUP, NS, SE, WLE, wle

from chaos.kubesim import KubeSim
from chaos.kubesim.tables import human_duration

KUBECTL_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


def service_entry(name: str, host: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": name},
        "spec": {
            "hosts": [host],
            "location": "MESH_INTERNAL",
            "resolution": "STATIC",
            "ports": [{"number": 18080, "name": "http", "protocol": "HTTP"}],
            "workloadSelector": {"labels": {"gtm.io/service": name}},
        },
    }


async def kubectl(kubeconfig: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        shutil.which("kubectl") or "kubectl",
        "--kubeconfig",
        str(kubeconfig),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def _rows(block: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in block.strip().splitlines()]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_kubectl_get_we_se_shows_istios_printer_columns(sim: KubeSim, tmp_path: Path) -> None:
    sim.seed(wle("foo-dc2", address="127.0.2.1"))
    sim.seed(service_entry("foo", "foo.example.com"))
    config = sim.write_kubeconfig(tmp_path / "kubeconfig", context="dc1")
    out = await kubectl(config, "get", "we,se", "-n", NS)
    we, se = out.strip().split("\n\n")
    assert _rows(we)[0] == ["NAME", "AGE", "ADDRESS"], out
    name, age, address = _rows(we)[1]
    assert (name, address) == ("workloadentry.networking.istio.io/foo-dc2", "127.0.2.1")
    assert re.fullmatch(r"\d+s", age), out
    assert _rows(se)[0] == ["NAME", "HOSTS", "LOCATION", "RESOLUTION", "AGE"], out
    name, hosts, location, resolution, age = _rows(se)[1]
    assert (name, hosts, location, resolution) == (
        "serviceentry.networking.istio.io/foo",
        '["foo.example.com"]',
        "MESH_INTERNAL",
        "STATIC",
    )
    one = await kubectl(config, "get", "we", "foo-dc2", "-n", NS)  # a get is a Table too
    assert _rows(one)[0] == ["NAME", "AGE", "ADDRESS"] and _rows(one)[1][2] == "127.0.2.1"
    wide = await kubectl(config, "get", "we", "-n", NS, "-o", "yaml")  # objects still objects
    assert "kind: WorkloadEntry" in wide and "address: 127.0.2.1" in wide


async def test_a_table_is_served_as_kubectl_asks_and_objects_otherwise(sim: KubeSim) -> None:
    sim.seed(wle("a", address="10.0.0.7"))
    url = f"{sim.url}/apis/{GROUP}/v1/namespaces/{NS}/{WLE}"
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers={"Accept": KUBECTL_ACCEPT}) as r:
            table = await r.json()
        async with s.get(url + "?includeObject=Object", headers={"Accept": KUBECTL_ACCEPT}) as r:
            whole = await r.json()
        async with s.get(url, headers={"Accept": "application/json"}) as r:
            listed = await r.json()
        async with s.get(
            f"{sim.url}/apis/{GROUP}/v1/namespaces/{NS}/{SE}", headers={"Accept": KUBECTL_ACCEPT}
        ) as r:
            empty = await r.json()
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age", "Address"]
    assert table["columnDefinitions"][0]["format"] == "name"
    assert table["metadata"]["resourceVersion"] == listed["metadata"]["resourceVersion"]
    (row,) = table["rows"]
    assert row["cells"][0] == "a" and row["cells"][2] == "10.0.0.7"
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["apiVersion"] == "meta.k8s.io/v1"
    assert row["object"]["metadata"]["name"] == "a"
    assert whole["rows"][0]["object"]["spec"]["address"] == "10.0.0.7"
    assert listed["kind"] == "WorkloadEntryList"
    assert [c["name"] for c in empty["columnDefinitions"]] == [
        "Name",
        "Hosts",
        "Location",
        "Resolution",
        "Age",
    ]
    assert empty["rows"] == []


def test_ages_read_as_the_apiserver_prints_them() -> None:
    cases = {5: "5s", 119: "119s", 130: "2m10s", 600: "10m", 3 * 3600 + 60: "3h1m"}
    cases |= {9 * 3600: "9h", 3 * 86400 + 3600: "3d1h", 30 * 86400: "30d"}
    assert {s: human_duration(s) for s in cases} == cases


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_kubectl_get_watch_keeps_the_columns(sim: KubeSim, tmp_path: Path) -> None:
    sim.seed(wle("foo-dc2", address="127.0.2.1"))
    config = sim.write_kubeconfig(tmp_path / "kubeconfig", context="dc1")
    proc = await asyncio.create_subprocess_exec(
        *(shutil.which("kubectl") or "kubectl", "--kubeconfig", str(config)),
        *("get", "we", "-n", NS, "-w"),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        lines = [await asyncio.wait_for(proc.stdout.readline(), 10) for _ in range(2)]
        url = f"{sim.url}/apis/{GROUP}/v1/namespaces/{NS}/{WLE}/foo-dc2"
        async with aiohttp.ClientSession() as s:
            body = {"spec": {"address": "127.0.2.9"}}
            headers = {"Content-Type": "application/merge-patch+json"}
            async with s.patch(url, json=body, headers=headers) as r:
                assert r.status == 200
        lines.append(await asyncio.wait_for(proc.stdout.readline(), 10))
    finally:
        proc.kill()
        await proc.wait()
    rows = [line.decode().split() for line in lines]
    assert rows[0] == ["NAME", "AGE", "ADDRESS"]
    assert (rows[1][0], rows[1][2]) == ("foo-dc2", "127.0.2.1")
    assert (rows[2][0], rows[2][2]) == ("foo-dc2", "127.0.2.9")  # not NAME/AGE only
