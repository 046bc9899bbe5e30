"""A staged rollout across the three regions' simulated clusters, each region's leader
writing only its own clusters, and the real `gtm accesspoint resume|list` beside them.

`pay-web` rolls out dc2 → dc1 → dc3, the gate being `Applied` and `L4Ready` (its Service
has a VIP), with a pause after dc1: dc1's leader starts when the AP's status shows dc2's
gate held, dc3's only after `gtm accesspoint resume`. A changed template whose override
fails in dc2 holds there and, once the gate's timeout has passed, aborts: dc1 and dc3
keep the revision they have. A fixed template is a new rollout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from accesspoint_testing import (
    KUBECTL,
    REGIONS,
    Leaders,
    estate_file,
    example_clusters,
    gtm,
    kubectl,
)

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="needs the real kubectl")

WEB = {
    "apiVersion": "gtm.io/v1alpha1",
    "kind": "AccessPoint",
    "metadata": {"name": "pay-web", "namespace": "pay"},
    "spec": {
        "scope": {"clusters": ["dc1", "dc2", "dc3"]},
        "trafficTemplate": {
            "service": {
                "spec": {
                    "type": "LoadBalancer",
                    "loadBalancerClass": "gtm.io/ipvs",
                    "selector": {"app": "pay-web"},
                    "ports": [{"name": "https", "port": 8443, "protocol": "TCP"}],
                }
            }
        },
        "policy": {
            "rollout": {
                "order": ["dc2", "dc1", "dc3"],
                "pauseAfter": ["dc1"],
                "gate": {"conditions": ["Applied", "L4Ready"], "timeout": "30s"},
            }
        },
    },
}


async def test_a_rollout_goes_cluster_by_cluster_pauses_resumes_and_aborts(
    tmp_path: Path,
) -> None:
    async with example_clusters(tmp_path, 32700, 33400) as kubeconfig, AsyncExitStack() as stack:
        await _run(kubeconfig, tmp_path, stack)


async def _run(kubeconfig: Path, tmp_path: Path, stack: AsyncExitStack) -> None:
    config = estate_file(tmp_path, kubeconfig)
    leaders = Leaders(config, stack)
    controllers = [await leaders.open(r) for r in REGIONS]

    async def sync() -> dict[str, Any]:
        for c in controllers:  # one after the other: each sees what the previous wrote
            await c.sync()
        ap = await kubectl(kubeconfig, "dc1", "get", "accesspoint", "pay-web", "-n", "pay")
        return ap.get("status") or {}

    async def until(check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        for _ in range(60):
            status = await sync()
            if check(status):
                return status
            await asyncio.sleep(0.2)
        raise AssertionError(f"never {what}: {status}")

    async def services() -> dict[str, dict[str, Any] | None]:
        out = {}
        for r in REGIONS:
            items = (await kubectl(kubeconfig, r, "get", "services", "-n", "pay"))["items"]
            out[r] = next((i for i in items if i["metadata"]["name"] == "pay-web"), None)
        return out

    def phase(status: dict[str, Any]) -> tuple[str, str | None]:
        rollout = status.get("rollout") or {}
        return rollout.get("phase"), rollout.get("cluster")

    manifest = tmp_path / "pay-web.yaml"
    manifest.write_text(yaml.safe_dump(WEB))
    await kubectl(kubeconfig, "dc1", "apply", "-f", str(manifest), json_out=False)

    status = await sync()  # dc2 first; dc1 and dc3 are not touched
    # (dc3's leader, last, may already see dc2's VIP: then the rollout waits on dc1)
    assert phase(status) in (("Progressing", "dc2"), ("Progressing", "dc1"))
    held = {s: v is not None for s, v in (await services()).items()}
    assert held == {"dc1": False, "dc2": True, "dc3": False}
    entries = {e["name"]: e for e in status["clusters"]}
    assert entries["dc1"]["message"].startswith("held by the rollout (Progressing, step 1)")
    assert "template" not in entries["dc1"] and entries["dc2"]["template"]
    applied = next(c for c in status["conditions"] if c["type"] == "Applied")
    assert applied["reason"] == "RollingOut"
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert "Applied" not in degraded["message"]  # a rollout is not a degradation

    # dc2's Service gets its VIP (gate held): dc1 starts, then the pause after dc1
    status = await until(lambda s: phase(s) == ("Paused", "dc1"), "paused after dc1")
    assert {s: v is not None for s, v in (await services()).items()} == {
        "dc1": True, "dc2": True, "dc3": False,
    }  # fmt: skip
    code, out, err = await gtm("accesspoint", "list", "-c", str(config))
    assert code == 0 and "Paused" in out, err

    # the operator resumes; the real CLI waits until a leader has acted on it
    resumed = asyncio.create_task(
        gtm("accesspoint", "resume", "pay-web", "-n", "pay", "-c", str(config), "--wait", "30")
    )
    while not resumed.done():
        await sync()
        await asyncio.sleep(0.3)
    code, out, err = resumed.result()
    assert code == 0, err
    assert "resume written: pay/pay-web" in out and "Paused at dc1" in out
    status = await until(lambda s: phase(s) == ("Complete", None), "complete")
    assert all(v is not None for v in (await services()).values())
    code, _, err = await gtm("accesspoint", "resume", "pay-web", "-n", "pay", "-c", str(config))
    assert code == 3 and "neither paused nor aborted" in err

    # a changed template whose override fails in dc2: held there, then aborted
    changed = {
        "spec": {
            "trafficTemplate": {"service": {"metadata": {"annotations": {"release": "2"}}}},
            "overrides": [
                {
                    "clusters": ["dc2"],
                    "jsonPatch": [
                        {"op": "test", "path": "/service/spec/type", "value": "NodePort"}
                    ],
                }
            ],
        }
    }
    await kubectl(kubeconfig, "dc1", "patch", "accesspoint", "pay-web", "-n", "pay",
                  "--type=merge", "-p", yaml.safe_dump(changed), json_out=False)  # fmt: skip
    status = await sync()
    assert phase(status) == ("Progressing", "dc2")
    assert "spec.overrides[0].jsonPatch[0]: test failed" in status["rollout"]["message"]
    leaders.clock += timedelta(seconds=31)
    status = await sync()
    assert phase(status) == ("Aborted", "dc2"), status["rollout"]
    assert "within 30s" in status["rollout"]["message"]
    applied = next(c for c in status["conditions"] if c["type"] == "Applied")
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert applied["reason"] == "RolloutAborted" and degraded["status"] == "True"
    leaders.clock += timedelta(seconds=60)
    status = await sync()  # stays aborted; the rest keep the revision they have
    assert phase(status) == ("Aborted", "dc2")
    for r, svc in (await services()).items():
        assert "release" not in (svc["metadata"].get("annotations") or {}), r

    # the override fixed: a new revision, a new rollout (dc2, dc1, then the pause again)
    fixed = {"spec": {"overrides": None}}
    await kubectl(kubeconfig, "dc1", "patch", "accesspoint", "pay-web", "-n", "pay",
                  "--type=merge", "-p", yaml.safe_dump(fixed), json_out=False)  # fmt: skip
    await until(lambda s: phase(s) == ("Paused", "dc1"), "paused after dc1 again")
    releases = {
        r: (svc["metadata"].get("annotations") or {}).get("release")
        for r, svc in (await services()).items()
    }
    assert releases == {"dc1": "2", "dc2": "2", "dc3": None}
