"""Fixtures of the election tests: a simulated API server and both lease backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from election_backends import Backends

from chaos.kubesim import KubeSim


@pytest.fixture
async def sim() -> AsyncIterator[KubeSim]:
    async with KubeSim(host="127.0.0.1", port=0, seed=1) as server:
        yield server


@pytest.fixture(params=["file", "kube"])
def kind_and_sim(request: pytest.FixtureRequest) -> tuple[str, KubeSim | None]:
    """Each backend in turn; the simulated API server only for "kube"."""
    if request.param == "kube":
        return "kube", request.getfixturevalue("sim")
    return "file", None


@pytest.fixture
async def backends(
    kind_and_sim: tuple[str, KubeSim | None], tmp_path: Path
) -> AsyncIterator[Backends]:
    kind, sim = kind_and_sim
    async with AsyncExitStack() as stack:
        yield Backends(kind, tmp_path, sim, stack)


@pytest.fixture
async def sim_backends(tmp_path: Path, sim: KubeSim) -> AsyncIterator[Backends]:
    async with AsyncExitStack() as stack:
        yield Backends("kube", tmp_path, sim, stack)
