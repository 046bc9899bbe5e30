"""Fixtures of the API and runbook tests: tokens, a real member and its API, a real pair.

Helpers live in `api_members` (real members over a simulated cluster);
tests import from there, never from this file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from api_members import OPERATOR, VIEWER, Api, Gtm, Members, inventory

from gtm.api import TokenBook
from gtm.config import Inventory


@pytest.fixture(scope="session", name="inventory")
def inventory_fixture() -> Inventory:
    return inventory()


@pytest.fixture
def tokens() -> TokenBook:
    return TokenBook.of([("alice", OPERATOR, "operator"), ("grafana", VIEWER, "viewer")])


@pytest.fixture
def leader(tmp_path: Path) -> Iterator[Members]:
    """One real member of dc1, leading."""
    with Members(tmp_path / "one") as members:
        yield members


@pytest.fixture
async def api(leader: Members) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, leader.url("dc1-a"))


@pytest.fixture
def token_files(tmp_path: Path) -> dict[str, Path]:
    files = {"operator": tmp_path / "operator.token", "viewer": tmp_path / "viewer.token"}
    files["operator"].write_text(OPERATOR + "\n")
    files["viewer"].write_text(VIEWER + "\n")
    return files


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Members]:
    """A leader (dc1-a) and its standby (dc1-b) in dc1, sharing a lease and a store."""
    with Members(tmp_path / "pair", ["dc1-a", "dc1-b"]) as members:
        yield members


@pytest.fixture
def gtm(tmp_path: Path) -> Gtm:
    """`python -m gtm ARGS` in a clean directory, with no GTM_* settings but `env`."""
    work = tmp_path / "cwd"
    work.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("GTM_")}

    def run(
        *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gtm", *args],
            capture_output=True,
            text=True,
            cwd=cwd or work,
            env={**base, "COLUMNS": "200", **(env or {})},
            timeout=60,
        )

    return run
