"""A SIGHUP reload cannot stall the member: the file is parsed and validated in a child
process while the loop answers on (`gtm.service.reload`). Real members
(`api_members.Members`); `/healthz` is the loop's pulse, asked from another thread.

The bounds are behaviour checks, generous for two shared cores, not performance claims:
parsing the large file on the loop held it for seconds.
"""

from __future__ import annotations

import asyncio
import pickle
import shutil
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from api_members import VIEWER, Members

from gtm.config import ConfigError
from gtm.service.config_state import estate_digest
from gtm.service.reload import load_aside

ROOT = Path(__file__).resolve().parents[2]
PULSE = 1.0  # seconds /healthz may take while a reload is parsed (it stalled for several)
BIG = 12_000  # services in the large file: seconds of parsing and validating


def services(n: int, *, broken: bool) -> list[dict[str, Any]]:
    """`n` more services over dc1..dc3; the last one's port is out of range when `broken`."""
    out = []
    for i in range(n):
        port = 70_000 if broken and i == n - 1 else 443
        out.append(
            {
                "name": f"svc{i:05d}",
                "fqdn": f"svc{i:05d}.example.com",
                "probe": {"kind": "tcp", "interval": 86400.0, "timeout": 0.2},
                "vips": {
                    f"dc{r}": [{"address": f"10.{r}.{i // 250 % 250}.{i % 250}", "port": port}]
                    for r in (1, 2, 3)
                },
            }
        )
    return out


def write_with(path: Path, extra: list[dict[str, Any]]) -> None:
    data = yaml.safe_load(path.read_text())
    data["services"] += extra
    path.write_text(yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False))


def start(members: Members, coro: Coroutine[Any, Any, bool]) -> Future[bool]:
    assert members._loop is not None
    return asyncio.run_coroutine_threadsafe(coro, members._loop)


async def pulse_while(members: Members, running: Future[bool]) -> list[float]:
    """How long each /healthz took, asked back to back until `running` is done."""
    took: list[float] = []
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while not running.done():
            t0 = time.monotonic()
            async with session.get(members.url("dc1-a") + "/healthz") as r:
                assert r.status == 200
            took.append(time.monotonic() - t0)
            await asyncio.sleep(0.02)
    return took


async def config_of(members: Members) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {VIEWER}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(members.url("dc1-a") + "/v1/status") as r,
    ):
        return (await r.json())["config"]  # type: ignore[no-any-return]


async def test_a_large_reload_is_parsed_off_the_loop_and_a_bad_one_refused(
    tmp_path: Path,
) -> None:
    with Members(tmp_path / "one") as members:
        member = members.members["dc1-a"]
        path = members.config_path("dc1-a")
        good = path.read_text()
        before = await config_of(members)

        write_with(path, services(BIG, broken=True))  # every service parsed, one bad port
        reloading = start(members, member.reload())
        took = await pulse_while(members, reloading)
        assert reloading.result() is False
        assert max(took) < PULSE, f"/healthz took up to {max(took):.2f}s during the reload"
        assert len(took) >= 5, "the reload ended before the loop could be watched"
        after = await config_of(members)
        assert after["digest"] == before["digest"]  # the old config runs on
        assert after["refused"] and "70000" in " ".join(after["refused"])
        assert len(member.inventory.config.services) == 2

        # an alias bomb: refused in its child, the loop answering throughout
        shutil.copy(ROOT / "tests" / "config" / "bad-alias-bomb.yaml", path)
        reloading = start(members, member.reload())
        took = await pulse_while(members, reloading)
        assert reloading.result() is False
        assert max(took, default=0.0) < PULSE
        bomb = await config_of(members)
        assert bomb["digest"] == before["digest"]
        assert any("alias bomb" in p for p in bomb["refused"])

        # and a good file applies: the new services are served, the refusal cleared
        path.write_text(good)
        write_with(path, services(3, broken=False))
        assert start(members, member.reload()).result(120) is True
        applied = await config_of(members)
        assert applied["digest"] != before["digest"] and applied["refused"] == []
        assert {s.name for s in member.inventory.config.services} >= {"svc00000", "svc00002"}


async def test_a_loader_that_dies_is_a_refusal_not_a_crash(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as e:
        await load_aside(str(missing))
    assert str(missing) in str(e.value)
    slow = tmp_path / "slow.yaml"
    slow.write_text("regions: []\n")
    with pytest.raises(ConfigError, match=r"took longer than 0\.001s"):
        await load_aside(str(slow), limit=0.001)


async def test_a_loaded_config_comes_with_the_bytes_its_dns_workers_are_sent(
    tmp_path: Path,
) -> None:
    with Members(tmp_path / "one") as members:
        path = members.config_path("dc1-a")
        loaded = await load_aside(str(path))
    again = pickle.loads(loaded.pickled)
    assert again.config == loaded.inventory.config and again.estate == loaded.inventory.estate
    assert loaded.digest == estate_digest(loaded.inventory.config)
