"""AccessPoints rendered by real `gtm serve` members: one per region of the simulated estate,
the APs put into the home cluster (dc1) with the real `kubectl`; each region's leader renders
them into its own cluster and writes its own entry of their status; deleting an AP sweeps
what it made from every cluster."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from certificates_testing import certificate

from chaos.estate import SimulatedEstate
from chaos.estate.ports import BLOCK, Endpoint, in_use

ROOT = Path(__file__).resolve().parents[2]
TWO_TIER = ROOT / "examples" / "accesspoints" / "two-tier.yaml"
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="needs the real kubectl")
REGIONS = ("dc1", "dc2", "dc3")


def _free_base() -> int:
    for _ in range(200):
        base = random.randrange(33000, 34000)
        if not in_use([Endpoint("probe", "127.0.0.1", p) for p in range(base, base + BLOCK)]):
            return base
    raise RuntimeError("no free block of ports")


async def kubectl(kubeconfig: Path, context: str, *args: str) -> Any:
    proc = await asyncio.create_subprocess_exec(
        KUBECTL or "kubectl", "--kubeconfig", str(kubeconfig), "--context", context, *args,
        "-o", "json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within:g}s: {what}"
        await asyncio.sleep(0.5)


async def test_each_regions_leader_renders_the_home_clusters_accesspoints(
    tmp_path: Path,
) -> None:
    data = yaml.safe_load((ROOT / "examples" / "estate.yaml").read_text())
    data["accesspoints"]["resync"] = "1s"
    data["instance"] = {"evaluate_every": "1s"}
    estate_file = tmp_path / "estate.yaml"
    estate_file.write_text(yaml.safe_dump(data))
    async with SimulatedEstate(
        estate_file, tmp_path / "work", base_port=_free_base(), pair=("a",)
    ) as est:
        est.start_members(
            None, lambda name, path: [sys.executable, "-m", "gtm", "serve", "--config", str(path)]
        )
        await est.wait_members(path="/readyz", within=60.0)
        await _rendered_everywhere_then_swept(est.kubeconfig, tmp_path, est.member_configs["dc2-a"])


async def gtm(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gtm", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "COLUMNS": "200"}, cwd=ROOT,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _rendered_everywhere_then_swept(kubeconfig: Path, tmp_path: Path, config: Path) -> None:
    ends = datetime.now(UTC) + timedelta(days=90)
    for secret, host in (("pay-app-cert", "pay-app.pay.ap.gtm.internal"),
                         ("pay-example-com", "pay.example.com")):  # fmt: skip
        crt, key = certificate(tmp_path, host, ends)
        for r in REGIONS:
            await kubectl(kubeconfig, r, "create", "secret", "tls", secret, "-n", "pay",
                          f"--cert={crt}", f"--key={key}")  # fmt: skip
    manifest = tmp_path / "two-tier.yaml"  # one document per AP (see the controller's test)
    manifest.write_text(yaml.safe_dump_all(yaml.safe_load(TWO_TIER.read_text())["items"]))
    proc = await asyncio.create_subprocess_exec(
        KUBECTL or "kubectl", "--kubeconfig", str(kubeconfig), "--context", "dc1",
        "apply", "-f", str(manifest), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()

    async def wles_everywhere() -> bool:
        for r in REGIONS:
            items = (await kubectl(kubeconfig, r, "get", "workloadentries", "-n", "pay"))["items"]
            if len(items) != 3:  # pay-app's VIP in each region
                return False
        return True

    await eventually(
        wles_everywhere, 60, "pay-app's three VIPs as WorkloadEntries in every cluster"
    )

    async def status_whole() -> bool:
        ap = await kubectl(kubeconfig, "dc1", "get", "accesspoint", "pay-gw", "-n", "pay")
        entries = (ap.get("status") or {}).get("clusters") or []
        return [e["name"] for e in entries] == list(REGIONS) and all(e["applied"] for e in entries)

    await eventually(status_whole, 30, "every region's entry in pay-gw's status, applied")
    ap = await kubectl(kubeconfig, "dc1", "get", "accesspoint", "pay-gw", "-n", "pay")
    conditions = {c["type"]: c["status"] for c in ap["status"]["conditions"]}
    assert conditions == {
        "L4Ready": "True",
        "CertificateReady": "True",
        "UpstreamsResolved": "True",
        "Applied": "True",
        "Degraded": "False",
    }
    assert {v["region"] for v in ap["status"]["vips"]} == set(REGIONS)

    # what an SRE reads: the list, one AP's status, from any member's config
    code, out, err = await gtm("accesspoint", "list", "-c", str(config))
    assert code == 0, err
    lines = {line.split()[1]: line.split() for line in out.splitlines() if "pay-" in line}
    assert lines["pay-gw"] == ["pay", "pay-gw", "3/3", "3", "True", "True", "False"]
    code, out, err = await gtm("accesspoint", "status", "pay-gw", "-n", "pay", "-c", str(config))
    assert code == 0, err
    assert "AccessPoint pay/pay-gw: generation 1, observed 1" in out
    for r in REGIONS:
        assert any(line.split()[:2] == [r, r] and "yes" in line for line in out.splitlines())
    assert "L4Ready" in out and "Addressed" in out and "a VIP in every cluster" in out
    assert "fewest days left: 89" in out
    code, _, err = await gtm("accesspoint", "status", "nope", "-n", "pay", "-c", str(config))
    assert code == 2 and "AccessPoint pay/nope: not found" in err
    for r in REGIONS:  # seen from each region: 98 to its own VIP, 1 to each other
        wles = (await kubectl(kubeconfig, r, "get", "workloadentries", "-n", "pay"))["items"]
        weights = {w["spec"]["locality"].split("/")[0]: w["spec"]["weight"] for w in wles}
        own = next(x for x in ("region01", "region02", "region03") if x.endswith(r[-1]))
        assert weights[own] == 98 and sorted(weights.values()) == [1, 1, 98]

    deleted = await asyncio.create_subprocess_exec(
        KUBECTL or "kubectl", "--kubeconfig", str(kubeconfig), "--context", "dc1",
        "delete", "accesspoint", "pay-gw", "-n", "pay", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await deleted.communicate()
    assert deleted.returncode == 0, err.decode()

    async def swept() -> bool:
        for r in REGIONS:
            gateways = (await kubectl(kubeconfig, r, "get", "gateways", "-n", "pay"))["items"]
            if {g["metadata"]["name"] for g in gateways} != {"pay-app"}:
                return False
            if (await kubectl(kubeconfig, r, "get", "workloadentries", "-n", "pay"))["items"]:
                return False
        return True

    await eventually(swept, 30, "pay-gw's objects swept from every cluster, pay-app's kept")
