"""Peer-link relays (partitions) and the workflow of named steps."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from chaos.drills.layout import BLOCK, DrillPorts, find_free_base
from chaos.drills.links import PeerLinks
from chaos.drills.workflow import Workflow
from chaos.estate import MemberConfig


@pytest.fixture
async def peers(tmp_path: Path) -> AsyncIterator[tuple[list[MemberConfig], int]]:
    """Two members (dc1-a, dc2-a); dc2-a's API is a real little server."""
    base = find_free_base(random.randrange(50000, 60000, BLOCK))
    ports = DrillPorts(base)
    members = [
        MemberConfig("dc1-a", "dc1", tmp_path / "a.yaml", base, base + 25),
        MemberConfig("dc2-a", "dc2", tmp_path / "b.yaml", base + 1, base + 26),
    ]

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"identity": "dc2-a"})

    app = web.Application()
    app.router.add_get("/v1/status", status)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", base + 26).start()
    try:
        yield members, ports.links
    finally:
        await runner.cleanup()


async def fetch(url: str, within: float = 1.0) -> str:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=within)) as s,
        s.get(url + "/v1/status") as r,
    ):
        return str((await r.json())["identity"])


async def test_cut_blackholes_both_ways_and_heal_restores(
    peers: tuple[list[MemberConfig], int],
) -> None:
    members, first = peers
    async with PeerLinks(members, first) as links:
        a, b = members
        via = links.url(a, b)
        assert via == f"http://127.0.0.1:{first}"  # dc1's link to dc2-a
        assert links.url(b, a) == f"http://127.0.0.1:{first + 1}"  # dc2's link to dc1-a
        assert links.url(a, a) == a.api_url  # a member's own region: direct
        assert await fetch(via) == "dc2-a"
        links.cut("dc2", "dc1")
        with pytest.raises(TimeoutError):
            await fetch(via, within=0.5)
        links.heal()
        assert await fetch(via) == "dc2-a"


async def test_the_workflow_runs_always_steps_after_a_failure() -> None:
    ran: list[str] = []

    async def ok() -> None:
        ran.append("ok")

    async def boom() -> None:
        raise RuntimeError("no estate")

    async def cleanup() -> None:
        ran.append("cleanup")

    stages = await (
        Workflow("t")
        .step("first", ok)
        .step("breaks", boom)
        .step("skipped", ok)
        .step("stop every process", cleanup, always=True)
        .run()
    )
    assert [(s.name, s.outcome) for s in stages] == [
        ("first", "ok"),
        ("breaks", "failed"),
        ("skipped", "skipped"),
        ("stop every process", "ok"),
    ]
    assert stages[1].error == "RuntimeError: no estate"
    assert ran == ["ok", "cleanup"]
