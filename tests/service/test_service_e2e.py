"""The service end to end on loopback: real `gtm serve` processes in HA pairs.

A simulated estate (VIP servers, one simulated cluster per region) and six
members; the tests drive them through the API and signals the way an
operator and the platform would, and observe from outside: DNS on the wire,
WorkloadEntries through the cluster's API, `/v1/status`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import dns.asyncquery
import dns.edns
import dns.message
import pytest
import pytest_asyncio
import yaml

from chaos.estate import SimulatedEstate

ROOT = Path(__file__).resolve().parents[2]
BASE_PORT = 24000
pytestmark = pytest.mark.asyncio(loop_scope="module")
LEASE = {"duration": 4.0, "renew_deadline": 3.0, "retry_period": 0.5}


def fast_estate(tmp: Path) -> Path:
    """The example estate with timings fit for a test: short TTL, lease and probes."""
    data = yaml.safe_load((ROOT / "examples" / "estate.yaml").read_text())
    data["dns"].update({"ttl": 2, "exit_margin": "1s"})
    data["ha"] = {"lease": LEASE}
    data["instance"] = {"evaluate_every": "1s"}
    for s in data["services"]:
        s["probe"].update({"interval": "1s", "timeout": "500ms"})
    path = tmp / "estate.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def estate(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimulatedEstate]:
    tmp = tmp_path_factory.mktemp("e2e")
    async with SimulatedEstate(fast_estate(tmp), tmp / "work", base_port=BASE_PORT) as est:
        est.start_members(
            None, lambda name, path: [sys.executable, "-m", "gtm", "serve", "--config", str(path)]
        )
        await est.wait_members(path="/readyz", within=60.0)
        yield est


class Api:
    def __init__(self, est: SimulatedEstate, session: aiohttp.ClientSession) -> None:
        self.est = est
        self.session = session

    async def get(self, member: str, path: str, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.est.viewer_token}"}
        async with self.session.get(self.est.api_urls[member] + path, headers=headers) as r:
            return r.status, await r.json()

    async def post(
        self, member: str, path: str, body: Any, token: str | None = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = raw if raw is not None else json.dumps(body).encode()
        async with self.session.post(
            self.est.api_urls[member] + path,
            data=data,
            headers={**headers, "Content-Type": "application/json"},
        ) as r:
            return r.status, await r.json()

    async def leader(self, region: str) -> str:
        for name in self.est.api_urls:
            if name.startswith(region + "-"):
                status, doc = await self.get(name, "/v1/status")
                if status == 200 and doc["role"] == "leader":
                    return name
        raise AssertionError(f"no leader in {region}")


@pytest_asyncio.fixture(loop_scope="module")
async def api(estate: SimulatedEstate) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield Api(estate, session)


async def answers_from(
    est: SimulatedEstate, member: str, fqdn: str, subnet: str, n: int = 20
) -> set[str]:
    address, prefix = subnet.split("/")
    out = set()
    for _ in range(n):
        q = dns.message.make_query(
            fqdn, "A", use_edns=0, options=[dns.edns.ECSOption(address, int(prefix))]
        )
        reply = await dns.asyncquery.udp(q, "127.0.0.1", port=est.dns_ports[member], timeout=2.0)
        out |= {rr.to_text() for rrset in reply.answer for rr in rrset}
    return out


def wle_health(est: SimulatedEstate, objs: list[dict[str, Any]]) -> dict[str, str]:
    """WLE name -> status of its Healthy condition."""
    out = {}
    for o in objs:
        conds = {c["type"]: c["status"] for c in o.get("status", {}).get("conditions", [])}
        out[o["metadata"]["name"]] = conds.get("Healthy", "missing")
    return out


def pointing_at(objs: list[dict[str, Any]], locality: str) -> list[str]:
    return [o["metadata"]["name"] for o in objs if o["spec"].get("locality") == locality]


async def test_api_refuses_bad_requests_and_changes_nothing(
    estate: SimulatedEstate, api: Api
) -> None:
    leader = await api.leader("dc1")
    _, before = await api.get(leader, "/v1/overrides")
    body = {"region": "dc3", "reason": "auth test"}
    assert (await api.post(leader, "/v1/region/exit", body))[0] == 401
    assert (await api.post(leader, "/v1/region/exit", body, token=estate.viewer_token))[0] == 403
    status, doc = await api.post(
        leader, "/v1/region/exit", None, token=estate.operator_token, raw=b"{not json"
    )
    assert status == 400 and "error" in doc
    status, doc = await api.post(
        leader, "/v1/region/exit", {"region": "dc3"}, token=estate.operator_token
    )
    assert status == 400  # no reason
    status, doc = await api.post(
        leader, "/v1/region/exit", {"region": "dc9", "reason": "x"}, token=estate.operator_token
    )
    assert status == 422
    _, after = await api.get(leader, "/v1/overrides")
    assert after == before


async def test_sighup_with_a_bad_config_keeps_serving(estate: SimulatedEstate, api: Api) -> None:
    member = "dc3-b"
    path = estate.member_configs[member]
    good = path.read_text()
    log = estate.work_dir / "logs" / f"{member}.log"
    try:
        path.write_text(good.replace("regions:", "regions: [", 1))  # not YAML any more
        _hup(estate, member)
        await _until(lambda: "config.refused" in log.read_text(), 10)
        fqdn = "foo.example.com"
        assert await answers_from(estate, member, fqdn, "127.0.3.0/24", n=3)
        status, doc = await api.get(member, "/v1/status")
        assert status == 200 and doc["ready"]
    finally:
        path.write_text(good)
    _hup(estate, member)
    await _until(lambda: "config.reloaded" in log.read_text(), 10)


async def test_sigterm_releases_the_lease_so_the_standby_takes_over_at_once(
    estate: SimulatedEstate, api: Api
) -> None:
    leader = await api.leader("dc3")
    standby = next(n for n in estate.api_urls if n.startswith("dc3-") and n != leader)
    started = time.monotonic()
    code = await estate.launcher.terminate(leader, timeout=15)
    assert code == 0
    while True:
        s, doc = await api.get(standby, "/v1/status")
        if s == 200 and doc["role"] == "leader":
            break
        await asyncio.sleep(0.1)
    # released, not expired: well under the lease duration after the old leader stopped
    assert time.monotonic() - started < LEASE["duration"]
    log = (estate.work_dir / "logs" / f"{leader}.log").read_text()
    assert "leader.released" in log and "member.stopped" in log


async def test_leader_killed_mid_exit_the_standby_finishes_and_nothing_flips_back(
    estate: SimulatedEstate, api: Api
) -> None:
    leader = await api.leader("dc1")
    standby = next(n for n in estate.api_urls if n.startswith("dc1-") and n != leader)
    status, result = await api.post(
        leader,
        "/v1/region/exit",
        {"region": "dc2", "reason": "e2e: leader dies"},
        token=estate.operator_token,
    )
    assert status == 200 and result["accepted"], result
    killed_at = time.monotonic()
    estate.launcher.kill(leader)  # SIGKILL before the mesh has followed DNS

    # the standby takes over within one lease duration (plus a retry)
    while True:
        s, doc = await api.get(standby, "/v1/status")
        if s == 200 and doc["role"] == "leader":
            break
        assert time.monotonic() - killed_at < LEASE["duration"] + 2 * LEASE["retry_period"] + 1.0
        await asyncio.sleep(0.2)
    took_over = time.monotonic() - killed_at
    assert took_over <= LEASE["duration"] + 2 * LEASE["retry_period"] + 1.0

    # it finishes the exit: every WLE in dc1 pointing at dc2 goes unhealthy, and stays so
    dc2_locality = estate.inventory.regions["dc2"].locality
    samples: list[dict[str, str]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        objs = await estate.wles("dc1")
        health = wle_health(estate, objs)
        samples.append({n: health[n] for n in pointing_at(objs, dc2_locality)})
        if all(v == "False" for v in samples[-1].values()) and len(samples) > 5:
            break
        await asyncio.sleep(0.5)
    assert samples and all(v == "False" for v in samples[-1].values()), samples[-1]
    flipped = [
        n
        for n in samples[-1]
        if any(a.get(n) == "False" and b.get(n) == "True" for a, b in itertools.pairwise(samples))
    ]
    assert not flipped, f"WLEs went back to healthy: {flipped}"

    # DNS from the new leader and every dc1 answer exclude dc2, and the table keeps it out
    dc2_vips = {v.address for s in estate.inventory.estate.services for v in s.vips.get("dc2", ())}
    for _ in range(5):
        got = await answers_from(estate, standby, "foo.example.com", "127.0.2.0/24", n=10)
        assert got and not (got & dc2_vips)
        _, table = await api.get(standby, "/v1/table")
        assert all(
            row["cells"]["dc2"]["weight"] == 0
            for rows in table["rows"].values()
            for row in rows.values()
        )
        await asyncio.sleep(0.5)

    # nothing lost: the override is there exactly once, accepted once in the audit
    _, intent = await api.get(standby, "/v1/overrides")
    exits = [o for o in intent["overrides"] if o["kind"] == "exit" and o["region"] == "dc2"]
    assert len(exits) == 1
    _, history = await api.get(standby, "/v1/history?limit=50")
    accepted = [
        e
        for e in history["entries"]
        if e["action"] == "accepted" and e["override_id"] == exits[0]["id"]
    ]
    assert len(accepted) == 1

    # its status reports, per cluster, the DestinationRules overriding the weights: none here
    _, doc = await api.get(standby, "/v1/status")
    assert doc["mesh"] and all(m["conflicts"] == [] for m in doc["mesh"].values())


def _hup(estate: SimulatedEstate, member: str) -> None:
    os.kill(estate.launcher.pid(member), signal.SIGHUP)


async def _until(check: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)
