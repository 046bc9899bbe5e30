"""The VIP farm's control API, in process and as `python -m chaos.estate.vips`."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from estate_testing import get, write_estate_file

from chaos.estate import VipControl, VipFarm
from gtm.config import load


@pytest.fixture
async def control(tmp_path: Path) -> AsyncIterator[tuple[str, VipFarm]]:
    farm = VipFarm(load(write_estate_file(tmp_path)))
    runner = web.AppRunner(VipControl(farm).application(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    async with farm:
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield f"http://127.0.0.1:{port}", farm
        finally:
            await runner.cleanup()


async def call(
    method: str, url: str, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body, data=raw) as response,
    ):
        return response.status, await response.json()


def vip_url(farm: VipFarm, vip_id: str) -> str:
    vip = farm.server(vip_id).vip
    return f"http://{vip.address}:{vip.port}/healthz"


async def test_list_set_and_reset(control: tuple[str, VipFarm]) -> None:
    base, farm = control
    status, listed = await call("GET", f"{base}/_vips")
    assert status == 200 and [v["id"] for v in listed["vips"]] == list(farm.vip_ids)
    first = listed["vips"][0]
    assert first["fault"] == {"mode": "ok"} and first["listening"] is True
    vip_id = first["id"]  # foo/dc1/127.61.1.1:PORT — slashes and a colon

    status, state = await call("POST", f"{base}/_vips/{vip_id}/fault", {"mode": "error"})
    assert status == 200 and state["fault"] == {"mode": "error", "status": 503}
    assert (await get(vip_url(farm, vip_id)))[0] == 503

    encoded = quote(vip_id, safe="")
    body = {"mode": "flap", "period": 5, "status": 500}
    status, state = await call("POST", f"{base}/_vips/{encoded}/fault", body)
    assert status == 200 and state["fault"] == {"mode": "flap", "status": 500, "period": 5.0}
    status, one = await call("GET", f"{base}/_vips/{encoded}")
    assert status == 200 and one["fault"]["mode"] == "flap"

    status, region = await call("POST", f"{base}/_regions/dc3/fault", {"mode": "region_down"})
    assert status == 200 and region["fault"] == {"mode": "refuse"}
    assert {v["region"] for v in region["vips"]} == {"dc3"} and len(region["vips"]) == 3
    assert all(not v["listening"] for v in region["vips"])

    status, done = await call("POST", f"{base}/_reset")
    assert status == 200 and done == {"reset": True, "vips": 9}
    assert all(s["fault"] == {"mode": "ok"} and s["listening"] for s in farm.states())


async def test_bad_requests(control: tuple[str, VipFarm]) -> None:
    base, farm = control
    vip_id = farm.vip_ids[0]
    cases: list[tuple[str, Any, bytes | None, int, str]] = [
        ("/_vips/foo/dc9/1.2.3.4:1/fault", {"mode": "ok"}, None, 404, "no VIP"),
        ("/_regions/dc9/fault", {"mode": "ok"}, None, 404, "no region"),
        (f"/_vips/{vip_id}/fault", {"mode": "sideways"}, None, 400, "unknown mode"),
        (f"/_vips/{vip_id}/fault", {"mode": "slow"}, None, 400, "latency"),
        (f"/_vips/{vip_id}/fault", {"mode": "error", "status": 700}, None, 400, "status"),
        (f"/_vips/{vip_id}/fault", {"mode": "ok", "x": 1}, None, 400, "unknown fault fields"),
        (f"/_vips/{vip_id}/fault", None, b"{not json", 400, "not JSON"),
        (f"/_vips/{vip_id}/fault", None, None, 400, "a fault is a JSON object"),
        (f"/_vips/{vip_id}/fault", {"mode": "region_down"}, None, 400, "unknown mode"),
        ("/_regions/dc1/fault", {"mode": "flap", "period": -1}, None, 400, "period"),
    ]
    for path, body, raw, code, words in cases:
        status, answer = await call("POST", base + path, body, raw)
        assert (status, words in answer["error"]) == (code, True), (path, body, answer)
    status, answer = await call("GET", f"{base}/_vips/nope")
    assert status == 404
    assert all(s["fault"] == {"mode": "ok"} for s in farm.states())  # nothing changed


async def _run(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chaos.estate.vips",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_process_prints_its_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    estate = write_estate_file(tmp_path)
    farm = VipFarm(load(estate))
    proc = await _run("--config", str(estate), "--control", "127.0.0.1:0")
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            base = (await proc.stdout.readline()).decode().strip()
        assert base.startswith("http://127.0.0.1:")
        vip_id = farm.vip_ids[0]
        status, _ = await call("POST", f"{base}/_vips/{vip_id}/fault", {"mode": "error"})
        assert status == 200
        assert (await get(vip_url(farm, vip_id)))[0] == 503
        # the port is busy while it runs
        async with asyncio.timeout(20):
            busy = await _run("--config", str(estate))
            _, err = await busy.communicate()
        assert busy.returncode == 1 and b"cannot listen" in err
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            _, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    assert b"vips.stopped" in stderr


async def test_process_refuses_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("regions: []\nservices: []\n")
    proc = await _run("--config", str(bad))
    async with asyncio.timeout(20):
        _, stderr = await proc.communicate()
    assert proc.returncode == 2 and b"at least one region" in stderr
