"""AccessPoints with real `gtm serve` members: one per region of the simulated estate, the APs
put into the home cluster (dc1) with the real `kubectl`.

Each region's leader renders them into its own cluster and writes its own entry of their
status. An AP with `spec.gtm` is onboarded by every member: probed at its discovered VIPs,
answered in DNS, failed over; the WorkloadEntries other APs make for it follow its table rows
(a region exit takes the exited region's out). One whose FQDN is taken is refused, and says
so. `gtm accesspoint list|status` read what the leaders wrote; deleting an AP sweeps what it
made from every cluster.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import dns.asyncquery
import dns.edns
import dns.message
import pytest
import yaml
from accesspoint_testing import KUBECTL, certificate, free_base, gtm, kubectl

from chaos.estate import SimulatedEstate

ROOT = Path(__file__).resolve().parents[2]
TWO_TIER = ROOT / "examples" / "accesspoints" / "two-tier.yaml"
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="needs the real kubectl")
REGIONS = ("dc1", "dc2", "dc3")
PORT = 18443  # pay-app's gateway port here (443 would need root to listen on)


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within:g}s: {what}"
        await asyncio.sleep(0.5)


async def answers(port: int, fqdn: str, subnet: str, n: int = 20) -> list[str]:
    """`n` answers of the member's DNS for clients in `subnet` (ECS)."""
    address, prefix = subnet.split("/")
    out = []
    for _ in range(n):
        q = dns.message.make_query(
            fqdn, "A", use_edns=0, options=[dns.edns.ECSOption(address, int(prefix))]
        )
        reply = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=2.0)
        out += [rr.to_text() for rrset in reply.answer for rr in rrset]
    return out


def _manifest(tmp_path: Path) -> Path:
    """The two-tier example, one document per AP (a `kind: List` makes kubectl fetch
    /openapi/v2 in protobuf, which the simulated API server does not serve); pay-app's
    gateway on PORT and probed over TCP every second."""
    app, gw = yaml.safe_load(TWO_TIER.read_text())["items"]
    app["spec"]["trafficTemplate"]["service"]["spec"]["ports"][0]["port"] = PORT
    app["spec"]["gtm"]["probe"] = {"kind": "tcp", "interval": "1s", "timeout": "500ms"}
    path = tmp_path / "two-tier.yaml"
    path.write_text(yaml.safe_dump_all([app, gw]))
    return path


async def test_accesspoints_rendered_onboarded_and_failed_over_by_real_members(
    tmp_path: Path,
) -> None:
    data = yaml.safe_load((ROOT / "examples" / "estate.yaml").read_text())
    data["accesspoints"]["resync"] = "1s"
    data["instance"] = {"evaluate_every": "1s"}
    data["dns"].update({"ttl": 2, "exit_margin": "1s"})
    for policy in data["policies"]:  # a new service's regions ramp in within seconds
        policy.pop("ramp", None)
        policy.pop("max_step", None)
    estate_file = tmp_path / "estate.yaml"
    estate_file.write_text(yaml.safe_dump(data))
    async with SimulatedEstate(
        estate_file, tmp_path / "work", base_port=free_base(33000, 34000), pair=("a",)
    ) as est:
        for path in est.member_configs.values():  # the reconcilers see the APs' WLEs too
            config = yaml.safe_load(path.read_text())
            for cluster in config["kubernetes"]["clusters"]:
                cluster["namespace"] = None
            path.write_text(yaml.safe_dump(config, sort_keys=False))
        est.start_members(
            None, lambda name, path: [sys.executable, "-m", "gtm", "serve", "--config", str(path)]
        )
        await est.wait_members(path="/readyz", within=60.0)
        servers: list[asyncio.Server] = []
        try:
            await _accesspoints(est, tmp_path, servers)
        finally:
            for server in servers:
                server.close()


async def _accesspoints(
    est: SimulatedEstate, tmp_path: Path, servers: list[asyncio.Server]
) -> None:
    kubeconfig, config = est.kubeconfig, est.member_configs["dc2-a"]
    ends = datetime.now(UTC) + timedelta(days=90)
    for secret, host in (("pay-app-cert", "pay-app.pay.ap.gtm.internal"),
                         ("pay-example-com", "pay.example.com")):  # fmt: skip
        crt, key = certificate(tmp_path, host, ends)
        for r in REGIONS:
            await kubectl(kubeconfig, r, "create", "secret", "tls", secret, "-n", "pay",
                          f"--cert={crt}", f"--key={key}")  # fmt: skip
    applied = await kubectl(kubeconfig, "dc1", "apply", "-f", str(_manifest(tmp_path)),
                            json_out=False)  # fmt: skip
    assert "pay-app created" in applied

    # each region's leader renders into its own cluster; the L4 controllers give VIPs
    vips: dict[str, str] = {}

    async def addressed() -> bool:
        for r in REGIONS:
            items = (await kubectl(kubeconfig, r, "get", "services", "-n", "pay"))["items"]
            app = next((s for s in items if s["metadata"]["name"] == "pay-app"), None)
            ingress = ((app or {}).get("status") or {}).get("loadBalancer", {}).get("ingress")
            if ingress:
                vips[r] = ingress[0]["ip"]
        return len(vips) == 3

    await eventually(addressed, 60, "pay-app's Service with a VIP in every cluster")
    # (each L4 controller answers on the VIPs it announces, as the gateway behind them)

    # onboarded by every member: answered in DNS, dc2's clients mostly to dc2's VIP
    async def answered() -> bool:
        got = await answers(est.dns_ports["dc1-a"], "pay-app.example.com", "127.0.2.0/24")
        return bool(got) and set(got) <= set(vips.values()) and got.count(vips["dc2"]) >= 15

    await eventually(answered, 60, "pay-app.example.com answered from its VIPs by dc1-a")

    async def status(name: str) -> dict[str, Any]:
        ap = await kubectl(kubeconfig, "dc1", "get", "accesspoint", name, "-n", "pay")
        return ap.get("status") or {}

    async def settled() -> bool:
        # each region's leader writes what its member knows: alike once every member has
        # seen every VIP (one that saw a single region's refused it for its policy)
        for _ in range(3):
            app, gw = await status("pay-app"), await status("pay-gw")
            entries = gw.get("clusters") or []
            onboarded = {c["type"]: c for c in app.get("conditions") or []}.get("Onboarded")
            if not (
                [e["name"] for e in entries] == list(REGIONS)
                and all(e["applied"] for e in entries)
                and onboarded is not None
                and onboarded["status"] == "True"
            ):
                return False
            await asyncio.sleep(1)
        return True

    await eventually(settled, 30, "every region's entry applied, pay-app onboarded")
    app = {c["type"]: c for c in (await status("pay-app"))["conditions"]}
    assert app["Onboarded"]["message"] == "answered in DNS as pay-app.example.com"
    assert {k: c["status"] for k, c in app.items()} == {
        "L4Ready": "True",
        "CertificateReady": "True",
        "UpstreamsResolved": "True",  # it has none
        "Applied": "True",
        "Onboarded": "True",
        "Degraded": "False",
    }
    gw = {c["type"]: c for c in (await status("pay-gw"))["conditions"]}
    assert gw["Onboarded"]["status"] == "False"  # the estate file's `pay` has its FQDN
    assert "fqdn: 'pay.example.com' is already the FQDN of 'pay'" in gw["Onboarded"]["message"]
    assert gw["Degraded"]["status"] == "True"

    # pay-gw's WLEs for pay-app follow pay-app's table rows: all in, 98 local / 1 / 1
    async def wles(region: str) -> dict[str, dict[str, Any]]:
        items = await kubectl(kubeconfig, region, "get", "workloadentries", "-n", "pay")
        return {w["spec"]["address"]: w for w in items["items"]}

    def healthy(wle: dict[str, Any]) -> str:
        conditions = (wle.get("status") or {}).get("conditions") or []
        return next((c["status"] for c in conditions if c["type"] == "Healthy"), "missing")

    async def all_in() -> bool:
        for r in REGIONS:
            found = await wles(r)
            if len(found) != 3 or any(healthy(w) != "True" for w in found.values()):
                return False
        return True

    await eventually(all_in, 30, "pay-app's WLEs in every cluster, Healthy=True")

    async def weighed() -> bool:
        for r in REGIONS:
            weights = {a: w["spec"]["weight"] for a, w in (await wles(r)).items()}
            if weights.get(vips[r]) != 98 or sorted(weights.values()) != [1, 1, 98]:
                return False
        return True

    await eventually(weighed, 30, "seen from each region: 98 to its own VIP, 1 to each other")

    # what an SRE reads: the list, one AP's status, from any member's config
    code, out, err = await gtm("accesspoint", "list", "-c", str(config))
    assert code == 0, err
    lines = {line.split()[1]: line.split() for line in out.splitlines() if "pay-" in line}
    assert lines["pay-app"] == ["pay", "pay-app", "3/3", "-", "3", "True", "True", "False"]
    code, out, err = await gtm("accesspoint", "status", "pay-app", "-n", "pay", "-c", str(config))
    assert code == 0, err
    assert "AccessPoint pay/pay-app: generation 1, observed 1" in out
    for r in REGIONS:
        assert any(line.split()[:2] == [r, r] and "yes" in line for line in out.splitlines())
    assert "fewest days left: 89" in out and "answered in DNS as pay-app.example.com" in out
    code, _, err = await gtm("accesspoint", "status", "nope", "-n", "pay", "-c", str(config))
    assert code == 2 and "AccessPoint pay/nope: not found" in err

    # a region exit: DNS stops answering dc3's VIP, and the WLEs pointing at it go out
    async with aiohttp.ClientSession() as session:
        async with session.post(
            est.api_urls["dc1-a"] + "/v1/region/exit",
            json={"region": "dc3", "services": ["pay-app"], "reason": "test: exit on an AP"},
            headers={"Authorization": f"Bearer {est.operator_token}"},
        ) as r:
            assert r.status == 200, await r.text()

    async def exited() -> bool:
        got = await answers(est.dns_ports["dc3-a"], "pay-app.example.com", "127.0.3.0/24", 10)
        if not got or vips["dc3"] in got:
            return False
        for r in ("dc1", "dc2"):
            wle = (await wles(r))[vips["dc3"]]
            conditions = (wle.get("status") or {}).get("conditions") or []
            health = [(c["status"], c.get("message")) for c in conditions if c["type"] == "Healthy"]
            if health != [("False", "Region Exit")]:  # written by the WLE reconciler
                return False
        return True

    await eventually(exited, 60, "dc3's VIP out of DNS and of the WLEs in dc1 and dc2")

    # an AP deleted: what it made is swept from every cluster, pay-app's objects kept
    await kubectl(kubeconfig, "dc1", "delete", "accesspoint", "pay-gw", "-n", "pay",
                  json_out=False)  # fmt: skip

    async def swept() -> bool:
        for r in REGIONS:
            gateways = (await kubectl(kubeconfig, r, "get", "gateways", "-n", "pay"))["items"]
            if {g["metadata"]["name"] for g in gateways} != {"pay-app"}:
                return False
            if await wles(r):
                return False
        return True

    await eventually(swept, 30, "pay-gw's objects swept from every cluster, pay-app's kept")
