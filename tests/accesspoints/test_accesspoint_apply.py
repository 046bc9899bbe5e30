"""`gtm accesspoint plan|apply` against the simulated clusters of the example estate, each
with its L4 controller; what they hold is read with the real `kubectl`."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaos.estate import Clusters, Launcher, PortPlan
from chaos.estate.ports import BLOCK, Endpoint, in_use
from gtm.config import load

ROOT = Path(__file__).resolve().parents[2]
ESTATE = ROOT / "examples" / "estate.yaml"
TWO_TIER = ROOT / "examples" / "accesspoints" / "two-tier.yaml"
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="needs the real kubectl")


def _free_base() -> int:
    for _ in range(200):
        base = random.randrange(32000, 32700)
        if not in_use([Endpoint("probe", "127.0.0.1", p) for p in range(base, base + BLOCK)]):
            return base
    raise RuntimeError("no free block of ports")


async def gtm(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gtm", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


async def kubectl(kubeconfig: Path, context: str, *args: str) -> Any:
    proc = await asyncio.create_subprocess_exec(
        KUBECTL or "kubectl", "--kubeconfig", str(kubeconfig), "--context", context, *args,
        "-o", "json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_apply_renders_discovers_and_converges_then_plans_nothing(tmp_path: Path) -> None:
    inventory = load(ESTATE)
    async with Launcher() as launcher:
        clusters = Clusters(inventory, tmp_path, launcher, ports=PortPlan.from_base(_free_base()))
        await clusters.start()
        try:
            await _converge(clusters.kubeconfig, tmp_path)
        finally:
            await clusters.stop()


async def _converge(kubeconfig: Path, tmp_path: Path) -> None:
    estate = yaml.safe_load(ESTATE.read_text())
    estate["kubernetes"] = {
        "clusters": [
            {
                "name": r,
                "region": r,
                "kubeconfig": str(kubeconfig),
                "context": r,
                "namespace": "pay",
            }
            for r in ("dc1", "dc2", "dc3")
        ]
    }
    config = tmp_path / "estate.yaml"
    config.write_text(yaml.safe_dump(estate, sort_keys=False))

    first = await gtm("accesspoint", "apply", str(TWO_TIER), "-c", str(config))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "pay/pay-app: cluster dc2 (revision" in first.stdout and "3 create" in first.stdout
    assert "upstream pay-app: no VIP discovered yet" in first.stderr  # its Services are new

    async def vips() -> dict[str, str]:
        out = {}
        for r in ("dc1", "dc2", "dc3"):
            svc = await kubectl(kubeconfig, r, "get", "service", "pay-app", "-n", "pay")
            ingress = svc["status"].get("loadBalancer", {}).get("ingress") or []
            if ingress:
                out[r] = ingress[0]["ip"]
        return out

    found: dict[str, str] = {}
    for _ in range(50):  # the L4 controllers give each Service a VIP within a second or so
        if len(found := await vips()) == 3:
            break
        await asyncio.sleep(0.2)
    assert len(found) == 3, found
    second = await gtm("accesspoint", "apply", str(TWO_TIER), "-c", str(config))
    assert second.returncode == 0, second.stdout + second.stderr
    wles = (await kubectl(kubeconfig, "dc2", "get", "workloadentries", "-n", "pay"))["items"]
    weights = {w["spec"]["address"]: w["spec"]["weight"] for w in wles}
    assert weights == {found["dc1"]: 1, found["dc2"]: 98, found["dc3"]: 1}  # seen from dc2
    for w in wles:
        (cond,) = w["status"]["conditions"]  # written at once: never a WLE without one
        assert (cond["type"], cond["status"], cond["message"]) == (
            "Healthy",
            "False",
            "Awaiting gtm",
        )
        assert w["metadata"]["labels"]["gtm.io/service"] == "pay-app"
    (se,) = (await kubectl(kubeconfig, "dc2", "get", "serviceentries", "-n", "pay"))["items"]
    assert se["spec"]["hosts"] == ["pay-app.pay.ap.gtm.internal"]
    vs = await kubectl(kubeconfig, "dc2", "get", "virtualservice", "pay-gw", "-n", "pay")
    assert vs["spec"]["http"][0]["route"][0]["destination"]["host"] == "pay-app.pay.ap.gtm.internal"

    settled = await gtm("accesspoint", "plan", str(TWO_TIER), "-c", str(config))
    assert settled.returncode == 0, settled.stdout + settled.stderr
    assert settled.stdout.count("0 create, 0 update, 0 delete, 0 conflict") == 6  # 2 APs x 3

    # the reconciler's weight is not ours to put back; a hand edit of an owned field is
    await kubectl(kubeconfig, "dc2", "patch", "workloadentry", wles[0]["metadata"]["name"],
                  "-n", "pay", "--type=merge", "-p", '{"spec": {"weight": 7}}')  # fmt: skip
    await kubectl(kubeconfig, "dc2", "patch", "gateway", "pay-gw", "-n", "pay", "--type=merge",
                  "-p", '{"spec": {"selector": {"istio": "hand-edited"}}}')  # fmt: skip
    drift = await gtm("accesspoint", "plan", str(TWO_TIER), "-c", str(config), "--cluster", "dc2")
    assert "update Gateway pay/pay-gw: spec.selector.istio" in drift.stdout
    assert "WorkloadEntry" not in drift.stdout
    fixed = await gtm("accesspoint", "apply", str(TWO_TIER), "-c", str(config), "--cluster", "dc2")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    gw = await kubectl(kubeconfig, "dc2", "get", "gateway", "pay-gw", "-n", "pay")
    assert gw["spec"]["selector"] == {"istio": "app-gateway"}
    wle = await kubectl(
        kubeconfig, "dc2", "get", "workloadentry", wles[0]["metadata"]["name"], "-n", "pay"
    )
    assert wle["spec"]["weight"] == 7  # left to its owner

    # a cluster of the upstream's scope that cannot be read: its VIP is unknown, not gone
    blind = yaml.safe_load(await asyncio.to_thread(kubeconfig.read_text))
    for c in blind["clusters"]:
        if c["name"] == "dc3":
            c["cluster"]["server"] = "http://127.0.0.1:9"  # nothing listens there
    blind_kubeconfig = tmp_path / "blind-kubeconfig.yaml"
    blind_kubeconfig.write_text(yaml.safe_dump(blind))
    for c in estate["kubernetes"]["clusters"]:
        c |= {"kubeconfig": str(blind_kubeconfig), "timeout": 2, "retry": {"attempts": 1}}
    blind_config = tmp_path / "blind-estate.yaml"
    blind_config.write_text(yaml.safe_dump(estate, sort_keys=False))
    held = await gtm(
        "accesspoint", "apply", str(TWO_TIER), "-c", str(blind_config), "--cluster", "dc2"
    )
    assert held.returncode == 3, held.stdout + held.stderr
    assert "1 delete held" in held.stdout and "hold WorkloadEntry pay/" in held.stdout
    assert "upstream pay-app's VIPs not all known (dc3:" in held.stdout
    kept = (await kubectl(kubeconfig, "dc2", "get", "workloadentries", "-n", "pay"))["items"]
    assert {w["spec"]["address"] for w in kept} == set(found.values())  # dc3's VIP's WLE too

    # an AP no longer naming its upstream: what it made for it is swept, nothing else
    doc = yaml.safe_load(TWO_TIER.read_text())
    doc["items"][1]["spec"].pop("upstreams")
    route = doc["items"][1]["spec"]["trafficTemplate"]["virtualService"]["spec"]["http"][0]
    route["route"][0]["destination"]["host"] = "pay.pay.svc.cluster.local"
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(yaml.safe_dump(doc, sort_keys=False))
    swept = await gtm("accesspoint", "apply", str(smaller), "-c", str(config), "--cluster", "dc2")
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert "3 delete" not in swept.stdout and "delete WorkloadEntry" in swept.stdout
    left = (await kubectl(kubeconfig, "dc2", "get", "workloadentries", "-n", "pay"))["items"]
    assert (
        left == []
        and not (await kubectl(kubeconfig, "dc2", "get", "serviceentries", "-n", "pay"))["items"]
    )
    assert (await kubectl(kubeconfig, "dc2", "get", "service", "pay-app", "-n", "pay"))["metadata"]
