"""The leader's AccessPoint controller against the simulated clusters of the example estate
(three API servers, each with its L4 controller), through gtm's own Kubernetes clients; the
AccessPoints are put into the home cluster, and what the clusters hold is read, with the
real `kubectl`.

Each region's controller renders into its own region's clusters only, writes its own
entries of the AP's status (the other region's are kept, even when both write at once),
writes nothing once its lease is lost, changes nothing while the home cluster cannot be
read, and sweeps what a deleted AP made in its clusters, nothing else.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from accesspoint_testing import (
    ESTATE,
    KUBECTL,
    Leaders,
    certificate,
    estate_file,
    example_clusters,
    free_base,
    kubectl,
)

from accesspoints import Change, ClusterPlan
from chaos.estate import Clusters, Launcher, PortPlan
from failover import LeaseNotHeld
from gtm.config import load
from gtm.service.accesspoint_apply import apply_plan, open_objects
from kube import KubeError

ROOT = Path(__file__).resolve().parents[2]
TWO_TIER = ROOT / "examples" / "accesspoints" / "two-tier.yaml"
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="needs the real kubectl")


async def _names(kubeconfig: Path, context: str, kind: str) -> set[str]:
    items = (await kubectl(kubeconfig, context, "get", kind, "-n", "pay"))["items"]
    return {i["metadata"]["name"] for i in items}


async def _status(kubeconfig: Path, name: str) -> dict[str, Any]:
    ap = await kubectl(kubeconfig, "dc1", "get", "accesspoint", name, "-n", "pay")
    return ap.get("status") or {}


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


async def test_each_region_renders_its_own_clusters_and_its_own_status_entries(
    tmp_path: Path,
) -> None:
    inventory = load(ESTATE)
    async with Launcher() as launcher:
        clusters = Clusters(
            inventory, tmp_path, launcher, ports=PortPlan.from_base(free_base(32000, 32700))
        )
        await clusters.start()
        try:
            async with AsyncExitStack() as stack:
                await _run(clusters, tmp_path, stack)
        finally:
            await clusters.stop()


async def _run(clusters: Clusters, tmp_path: Path, stack: AsyncExitStack) -> None:
    kubeconfig = clusters.kubeconfig
    leaders = Leaders(estate_file(tmp_path, kubeconfig), stack)
    dc1, dc2 = await leaders.open("dc1"), await leaders.open("dc2")
    # the example as it is, a `kind: List` (kubectl reads /openapi/v2 in protobuf for it)
    applied = await kubectl(kubeconfig, "dc1", "apply", "-f", str(TWO_TIER), json_out=False)
    assert "pay-app created" in applied and "pay-gw created" in applied

    first = await dc1.sync()
    assert first.accesspoints == 2 and not first.invalid
    assert await _names(kubeconfig, "dc1", "services") == {"pay-app", "pay-gw"}
    for other in ("dc2", "dc3"):  # another region's clusters are not dc1's leader's to write
        assert await _names(kubeconfig, other, "services") == set()
    status = await _status(kubeconfig, "pay-gw")
    assert [e["name"] for e in status["clusters"]] == ["dc1"]
    assert _condition(status, "Applied")["status"] == "False"  # dc2, dc3: not yet

    # both leaders at once: each region's entries survive the other's write (CAS, re-read)
    await asyncio.gather(dc1.sync(), dc2.sync())
    status = await _status(kubeconfig, "pay-gw")
    assert [e["name"] for e in status["clusters"]] == ["dc1", "dc2"]
    assert all(e["region"] == e["name"] for e in status["clusters"])
    assert await _names(kubeconfig, "dc3", "services") == set()

    # the L4 controllers give the Services VIPs; the next syncs make the upstream's WLEs
    for _ in range(50):
        await asyncio.gather(dc1.sync(), dc2.sync())
        wles = (await kubectl(kubeconfig, "dc2", "get", "workloadentries", "-n", "pay"))["items"]
        if len(wles) == 2:
            break
        await asyncio.sleep(0.2)
    assert len(wles) == 2, wles  # pay-app's VIPs in dc1 and dc2 (dc3 has no leader here)
    weights = {w["spec"]["locality"].split("/")[0]: w["spec"]["weight"] for w in wles}
    seen_from = {w["spec"]["address"] for w in wles}
    assert sorted(weights.values()) == [1, 98]
    for w in wles:  # a gtm service's new WLE waits for gtm's reconciler, never True blindly
        (cond,) = w["status"]["conditions"]
        assert (cond["status"], cond["message"]) == ("False", "Awaiting gtm")
    status = await _status(kubeconfig, "pay-gw")
    assert {v["cluster"] for v in status["vips"]} == {"dc1", "dc2"}
    assert all(e["applied"] for e in status["clusters"]), status["clusters"]
    l4 = _condition(status, "L4Ready")
    assert (l4["status"], l4["reason"]) == ("False", "NoAddress") and "dc3" in l4["message"]
    assert _condition(status, "UpstreamsResolved")["status"] == "True"
    assert _condition(status, "Degraded")["status"] == "True"
    app = await _status(kubeconfig, "pay-app")
    assert {v["ip"] for v in app["vips"]} == seen_from

    # certificates: each leader reads the Secrets its clusters' Gateways name
    cert = _condition(status, "CertificateReady")
    assert (
        cert["status"] == "False" and "dc1: Secret pay/pay-example-com not found" in cert["message"]
    )
    for cluster, days in (("dc1", 60), ("dc2", 5)):
        crt, key = certificate(tmp_path, "pay.example.com", leaders.clock + timedelta(days=days))
        await kubectl(kubeconfig, cluster, "create", "secret", "tls", "pay-example-com",
                      "-n", "pay", f"--cert={crt}", f"--key={key}")  # fmt: skip
    await asyncio.gather(dc1.sync(), dc2.sync())
    status = await _status(kubeconfig, "pay-gw")
    cert = _condition(status, "CertificateReady")
    assert (cert["status"], cert["reason"]) == ("False", "CertificateProblem")
    assert cert["message"] == "dc2: Secret pay/pay-example-com: 5 days left (fewer than 14)"
    dc1_entry = next(e for e in status["clusters"] if e["name"] == "dc1")
    assert dc1_entry["certificates"] == [
        {"secret": "pay/pay-example-com", "notAfter": "2027-02-05T12:00:00Z", "daysLeft": 60}
    ]
    crt, key = certificate(tmp_path, "pay.example.com", leaders.clock + timedelta(days=30))
    await kubectl(kubeconfig, "dc2", "delete", "secret", "pay-example-com", "-n", "pay",
                  json_out=False)  # fmt: skip
    await kubectl(kubeconfig, "dc2", "create", "secret", "tls", "pay-example-com", "-n", "pay",
                  f"--cert={crt}", f"--key={key}")  # fmt: skip
    await asyncio.gather(dc1.sync(), dc2.sync())
    cert = _condition(await _status(kubeconfig, "pay-gw"), "CertificateReady")
    assert (cert["status"], cert["reason"]) == ("Unknown", "NotChecked")  # dc3: no leader here
    assert cert["message"] == "not checked yet in dc3"

    # settled: a sync writes nothing more (the status' resourceVersion stays)
    await asyncio.gather(dc1.sync(), dc2.sync())  # each entry now says its revision is in place
    before = await kubectl(kubeconfig, "dc1", "get", "accesspoint", "pay-gw", "-n", "pay")
    await asyncio.gather(dc1.sync(), dc2.sync())
    after = await kubectl(kubeconfig, "dc1", "get", "accesspoint", "pay-gw", "-n", "pay")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    # dc1's VIP of pay-app withdrawn: its WLE in dc2 goes out first, stamped, and is deleted
    # only once the DNS TTL and the exit margin (10 s + 3 s) have passed; back, it is restored
    dc1_vip = next(v["ip"] for v in app["vips"] if v["cluster"] == "dc1")

    async def wle_of(address: str) -> dict[str, Any] | None:
        items = (await kubectl(kubeconfig, "dc2", "get", "workloadentries", "-n", "pay"))["items"]
        return next((w for w in items if w["spec"]["address"] == address), None)

    await clusters.l4["dc1"].withdraw("pay", "pay-app")
    await dc2.sync()
    out = await wle_of(dc1_vip)
    assert out is not None
    (cond,) = out["status"]["conditions"]
    assert (cond["status"], cond["message"]) == ("False", "VIP Withdrawn")
    assert (
        out["metadata"]["annotations"]["gtm.io/withdrawn-at"] == "2026-12-07T12:00:00.000000Z"
    )  # to the microsecond
    leaders.clock += timedelta(seconds=12)
    waiting = await dc2.sync()
    (entry,) = waiting.results["pay/pay-gw"]
    assert entry.applied and "deleted in 1s" in entry.message
    assert await wle_of(dc1_vip) is not None
    await clusters.l4["dc1"].restore("pay", "pay-app")
    await dc2.sync()
    back = await wle_of(dc1_vip)
    assert back is not None and "gtm.io/withdrawn-at" not in back["metadata"]["annotations"]
    assert back["status"]["conditions"][0]["message"] == "Awaiting gtm"
    await clusters.l4["dc1"].withdraw("pay", "pay-app")
    await dc2.sync()
    leaders.clock += timedelta(seconds=13)
    await dc2.sync()
    assert await wle_of(dc1_vip) is None
    await clusters.l4["dc1"].restore("pay", "pay-app")
    await asyncio.gather(dc1.sync(), dc2.sync())
    assert await wle_of(dc1_vip) is not None  # created again, as any new VIP

    # drift of an owned field is put back
    await kubectl(kubeconfig, "dc2", "patch", "gateway", "pay-gw", "-n", "pay", "--type=merge",
                  "-p", '{"spec": {"selector": {"istio": "hand-edited"}}}')  # fmt: skip
    await dc2.sync()
    gw = await kubectl(kubeconfig, "dc2", "get", "gateway", "pay-gw", "-n", "pay")
    assert gw["spec"]["selector"] == {"istio": "app-gateway"}

    # a leader that lost its lease writes nothing: the template change waits for the next one
    leaders.leading["dc2"] = False
    await kubectl(kubeconfig, "dc1", "patch", "accesspoint", "pay-gw", "-n", "pay",
                  "--type=merge", "-p",
                  '{"spec": {"trafficTemplate": {"gateway": {"spec": {"selector": '
                  '{"istio": "app-gateway-2"}}}}}}')  # fmt: skip
    with pytest.raises(LeaseNotHeld):
        await dc2.sync()
    gw = await kubectl(kubeconfig, "dc2", "get", "gateway", "pay-gw", "-n", "pay")
    assert gw["spec"]["selector"] == {"istio": "app-gateway"}
    leaders.leading["dc2"] = True
    await dc2.sync()
    gw = await kubectl(kubeconfig, "dc2", "get", "gateway", "pay-gw", "-n", "pay")
    assert gw["spec"]["selector"] == {"istio": "app-gateway-2"}

    # the home cluster cannot be read: nothing rendered is touched
    blind = yaml.safe_load(await asyncio.to_thread(kubeconfig.read_text))
    for c in blind["clusters"]:
        if c["name"] == "dc1":
            c["cluster"]["server"] = "http://127.0.0.1:9"  # nothing listens there
    blind_kubeconfig = tmp_path / "blind-kubeconfig.yaml"
    blind_kubeconfig.write_text(yaml.safe_dump(blind))
    cut_off = await leaders.open(
        "dc2", estate_file(tmp_path, blind_kubeconfig, timeout=2, retry={"attempts": 1})
    )
    held = await _names(kubeconfig, "dc2", "workloadentries")
    with pytest.raises(KubeError):
        await cut_off.sync()
    assert await _names(kubeconfig, "dc2", "workloadentries") == held

    # an AP deleted: its objects in each region's clusters are swept by that region's leader,
    # nothing else (the other AP's, an object gtm did not make)
    await kubectl(kubeconfig, "dc2", "create", "configmap", "hand-made", "-n", "pay")
    await kubectl(kubeconfig, "dc1", "delete", "accesspoint", "pay-gw", "-n", "pay",
                  json_out=False)  # fmt: skip
    swept = await dc2.sync()
    assert swept.swept and all("AccessPoint pay-gw gone" in line for line in swept.swept)
    assert await _names(kubeconfig, "dc2", "services") == {"pay-app"}
    assert await _names(kubeconfig, "dc2", "workloadentries") == set()
    assert await _names(kubeconfig, "dc2", "gateways") == {"pay-app"}
    assert "hand-made" in await _names(kubeconfig, "dc2", "configmaps")
    assert await _names(kubeconfig, "dc1", "services") == {"pay-app", "pay-gw"}  # dc1's turn
    await dc1.sync()
    assert await _names(kubeconfig, "dc1", "services") == {"pay-app"}


async def test_a_new_workload_entry_gets_the_weight_and_health_it_is_given(tmp_path: Path) -> None:
    # the controller gives apply_plan what the table this cluster follows says of a new WLE
    # (`Reconciler.first_target`): it is created with that weight, its condition at once
    async with example_clusters(tmp_path, 34100, 34800) as kubeconfig, AsyncExitStack() as stack:
        objects = await open_objects(load(estate_file(tmp_path, kubeconfig)), stack)
        wle = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "WorkloadEntry",
            "metadata": {"name": "pay-gw-pay-app-dc1", "namespace": "pay"},
            "spec": {"address": "127.1.1.9", "weight": 98, "locality": "region01/az01"},
        }
        key = ("networking.istio.io/v1", "WorkloadEntry", "pay", "pay-gw-pay-app-dc1")
        plan = ClusterPlan("dc2", "r1", (Change("create", key, wle),))
        applied = await apply_plan(
            objects["dc2"], plan, [], lambda obj: (True, ""), weight=lambda obj: 40
        )
        assert applied.ok and applied.done == ["create WorkloadEntry pay/pay-gw-pay-app-dc1"]
        got = await kubectl(kubeconfig, "dc2", "get", "workloadentry", key[3], "-n", "pay")
        assert got["spec"]["weight"] == 40
        assert got["status"]["conditions"][0]["status"] == "True"
