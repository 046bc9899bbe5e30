"""Each VIP fault, seen from a real HTTP client on the VIP's own address."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from estate_testing import NET, get, write_estate_file

from chaos.estate import Fault, FaultError, UnknownRegion, UnknownVip, VipFarm
from gtm.config import Inventory, load


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    return load(write_estate_file(tmp_path))


@pytest.fixture
async def farm(inventory: Inventory) -> AsyncIterator[VipFarm]:
    async with VipFarm(inventory) as running:
        yield running


def url(farm: VipFarm, vip_id: str, path: str = "/healthz") -> str:
    vip = farm.server(vip_id).vip
    return f"http://{vip.address}:{vip.port}{path}"


def foo(farm: VipFarm, region: str = "dc1") -> str:
    return next(i for i in farm.vip_ids if i.startswith(f"foo/{region}/"))


async def test_every_vip_answers_ok_with_its_name(farm: VipFarm) -> None:
    assert len(farm.vip_ids) == 9
    for vip_id in farm.vip_ids:
        for path in ("/healthz", "/"):
            status, body, headers = await get(url(farm, vip_id, path))
            assert (status, body, headers["X-Gtm-Vip"]) == (200, "ok", vip_id)
    status, _, headers = await get(url(farm, foo(farm), "/nothing"))
    assert (status, headers["X-Gtm-Vip"]) == (404, foo(farm))
    assert farm.server(foo(farm)).requests == 3


async def test_refuse_closes_the_listener_and_open_connections(farm: VipFarm) -> None:
    target = url(farm, foo(farm))
    async with aiohttp.ClientSession() as session:
        async with session.get(target) as response:  # a kept-alive connection
            assert response.status == 200
        await farm.set_fault(foo(farm), Fault("refuse"))
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            async with session.get(target):
                pass
        assert isinstance(caught.value.os_error, ConnectionRefusedError)
    assert farm.server(foo(farm)).state()["listening"] is False
    other = await get(url(farm, foo(farm, "dc2")))
    assert other[0] == 200
    await farm.set_fault(foo(farm), Fault())
    assert (await get(target))[0] == 200


async def test_blackhole_accepts_and_never_answers(farm: VipFarm) -> None:
    await farm.set_fault(foo(farm), Fault("blackhole"))
    vip = farm.server(foo(farm)).vip
    reader, writer = await asyncio.open_connection(vip.address, vip.port)  # accepted
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await reader.read(1)
    writer.close()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await get(url(farm, foo(farm)), within=0.4)
    assert time.monotonic() - started >= 0.35
    await farm.set_fault(foo(farm), Fault())
    assert (await get(url(farm, foo(farm))))[0] == 200


async def test_slow_answers_after_the_latency(farm: VipFarm) -> None:
    await farm.set_fault(foo(farm), Fault("slow", latency=0.3))
    started = time.monotonic()
    status, body, _ = await get(url(farm, foo(farm)))
    assert (status, body) == (200, "ok")
    assert time.monotonic() - started >= 0.3


async def test_error_answers_the_status(farm: VipFarm) -> None:
    await farm.set_fault(foo(farm), Fault("error"))
    status, _, headers = await get(url(farm, foo(farm)))
    assert (status, headers["X-Gtm-Fault"]) == (503, "error")
    await farm.set_fault(foo(farm), Fault("error", status=500))
    assert (await get(url(farm, foo(farm), "/")))[0] == 500


async def test_flap_alternates_error_and_ok(farm: VipFarm) -> None:
    period = 0.25
    before = time.monotonic()
    await farm.set_fault(foo(farm), Fault("flap", period=period, status=502))
    after = time.monotonic()  # the farm started the flap in between
    seen: list[tuple[int, int]] = []  # (phase, status)
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - after < 4 * period:
            asked = time.monotonic()
            async with session.get(url(farm, foo(farm))) as response:
                answered = time.monotonic()
                phases = {
                    int((t - s) // period) for t in (asked, answered) for s in (before, after)
                }
                if len(phases) == 1:  # surely not across a phase edge
                    seen.append((phases.pop(), response.status))
            await asyncio.sleep(0.02)
    by_phase: dict[int, set[int]] = {}
    for phase, status in seen:
        by_phase.setdefault(phase, set()).add(status)
    assert len(by_phase) >= 3  # error, ok, error at least: it alternates
    for phase, statuses in by_phase.items():
        assert statuses == ({502} if phase % 2 == 0 else {200}), by_phase  # error first


async def test_region_down_refuses_every_vip_of_the_region(farm: VipFarm) -> None:
    states = await farm.set_region_fault("dc2", Fault("refuse"))
    assert {s["id"].split("/")[1] for s in states} == {"dc2"} and len(states) == 2
    for vip_id in farm.vip_ids:
        if "/dc2/" in vip_id:
            with pytest.raises(aiohttp.ClientConnectorError):
                await get(url(farm, vip_id))
        else:
            assert (await get(url(farm, vip_id)))[0] == 200
    await farm.reset()
    assert all(s["fault"] == {"mode": "ok"} and s["listening"] for s in farm.states())
    assert (await get(url(farm, foo(farm, "dc2"))))[0] == 200


async def test_unknown_names_and_bad_faults(farm: VipFarm) -> None:
    with pytest.raises(UnknownVip):
        await farm.set_fault("foo/dc9/1.2.3.4:1", Fault())
    with pytest.raises(UnknownRegion):
        await farm.set_region_fault("dc9", Fault())
    assert await farm.set_region_fault("dc2", Fault("slow", latency=0.01))
    for bad in (
        {"mode": "sideways"},
        {"mode": "slow"},
        {"mode": "error", "status": 99},
        {"mode": "flap", "period": 0},
        {"mode": "ok", "colour": "red"},
        {"mode": "slow", "latency": "1s"},
        {"latency": 1},
        [],
    ):
        with pytest.raises(FaultError):
            Fault.from_dict(bad)
    assert Fault.from_dict({"mode": "region_down"}, region=True) == Fault("refuse")
    with pytest.raises(FaultError):
        Fault.from_dict({"mode": "region_down"})


async def test_a_busy_address_is_reported_with_the_vip(inventory: Inventory) -> None:
    async with VipFarm(inventory):
        with pytest.raises(OSError, match=rf"VIP foo/dc1/{NET}\.1\.1:\d+ cannot listen"):
            async with VipFarm(inventory):
                pass
