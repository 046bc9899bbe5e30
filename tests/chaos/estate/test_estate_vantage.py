"""Source faults: a VIP fails for the processes one fault names (a vantage), for nobody else."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from estate_testing import get, write_estate_file

from chaos.estate import Fault, VipControl, VipFarm
from chaos.estate.sources import SourceFaults, process_group, socket_inode
from gtm.config import load

OUTSIDER = """
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=3).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception as e:
    print(type(e).__name__)
"""


@pytest.fixture
async def farm(tmp_path: Path) -> AsyncIterator[VipFarm]:
    async with VipFarm(load(write_estate_file(tmp_path))) as running:
        yield running


def url(farm: VipFarm) -> str:
    vip = farm.server(farm.vip_ids[0]).vip
    return f"http://{vip.address}:{vip.port}/healthz"


async def from_another_group(target: str) -> str:
    """GET `target` from a process in a process group of its own: what it printed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        OUTSIDER,
        target,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    out, _ = await proc.communicate()
    return out.decode().strip()


async def test_a_source_fault_hits_the_named_group_only(farm: VipFarm) -> None:
    me = os.getpgrp()
    farm.set_source_fault("vantage-test", [me], Fault("error", status=503))
    status, body, headers = await get(url(farm))
    assert (status, headers["X-Gtm-Fault"]) == (503, "error") and "injected" in body
    assert await from_another_group(url(farm)) == "200"
    farm.clear_source_fault("vantage-test")
    assert (await get(url(farm)))[0] == 200


async def test_refuse_resets_the_named_group_and_blackhole_hangs_it(farm: VipFarm) -> None:
    farm.set_source_fault("vantage-test", [os.getpgrp()], Fault("refuse"))
    with pytest.raises(aiohttp.ClientError):
        await get(url(farm))
    assert await from_another_group(url(farm)) == "200"
    farm.set_source_fault("vantage-test", [os.getpgrp()], Fault("blackhole"))
    with pytest.raises(TimeoutError):
        await get(url(farm), within=0.5)
    await farm.reset()  # clears source faults too
    assert farm.sources.states() == [] and (await get(url(farm)))[0] == 200


async def test_a_kept_alive_connection_is_judged_again_when_faults_change(farm: VipFarm) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(url(farm)) as r:
            assert r.status == 200
        farm.set_source_fault("vantage-test", [os.getpgrp()], Fault("error", status=500))
        async with session.get(url(farm)) as r:
            assert r.status == 500


async def test_the_control_api_sets_and_clears_source_faults(farm: VipFarm) -> None:
    app = VipControl(farm).application()
    from aiohttp.test_utils import TestClient, TestServer

    async with TestClient(TestServer(app)) as client:
        r = await client.post("/_sources/v/fault", json={"groups": [os.getpgrp()], "mode": "error"})
        assert r.status == 200 and (await r.json())["groups"] == [os.getpgrp()]
        assert (await get(url(farm)))[0] == 503
        listed = await (await client.get("/_sources")).json()
        assert [s["name"] for s in listed["sources"]] == ["v"]
        bad = await client.post("/_sources/v/fault", json={"groups": "me", "mode": "error"})
        assert bad.status == 400
        assert (await client.delete("/_sources/v")).status == 200
        assert (await get(url(farm)))[0] == 200


def test_socket_owner_lookup_reads_proc() -> None:
    assert process_group(os.getpid()) == os.getpgrp()
    assert process_group(2**22 + 7) is None
    assert socket_inode(("127.0.0.1", 1), ("127.0.0.1", 2)) is None
    sources = SourceFaults()
    assert sources.owner(("127.0.0.1", 1), ("127.0.0.1", 2)) is None  # no faults: no lookup
