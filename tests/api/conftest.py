"""Fixtures of the API and runbook tests: the estate, tokens, a served API, a served pair.

Helpers live in `api_member` (the fake member) and `api_served` (serving it);
tests import from those, never from this file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from api_member import ESTATE, OPERATOR, VIEWER, FakeMember
from api_served import Api, Gtm, Members

from gtm.api import TokenBook, make_app, serve_api
from gtm.config import Inventory, loads


@pytest.fixture(scope="session")
def inventory() -> Inventory:
    return loads(ESTATE, "api-estate.yaml")


@pytest.fixture
def tokens() -> TokenBook:
    return TokenBook.of([("alice", OPERATOR, "operator"), ("grafana", VIEWER, "viewer")])


@pytest.fixture
def member(inventory: Inventory) -> FakeMember:
    return FakeMember("dc1-a", inventory)


@pytest.fixture
async def api(member: FakeMember, tokens: TokenBook) -> AsyncIterator[Api]:
    async with serve_api(make_app(member, tokens), "127.0.0.1:0") as served:
        async with aiohttp.ClientSession() as session:
            yield Api(session, served)


@pytest.fixture
def token_files(tmp_path: Path) -> dict[str, Path]:
    files = {"operator": tmp_path / "operator.token", "viewer": tmp_path / "viewer.token"}
    files["operator"].write_text(OPERATOR + "\n")
    files["viewer"].write_text(VIEWER + "\n")
    return files


@pytest.fixture
def pair(inventory: Inventory, tokens: TokenBook) -> Iterator[Members]:
    """A leader and its standby in dc1 (the standby follows the leader's intent)."""
    leader = FakeMember("dc1-a", inventory, hold=0.3)
    standby = FakeMember("dc1-b", inventory, role="standby", hold=0.3, source=leader)
    with Members(inventory, tokens, [leader, standby]) as members:
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
