from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chaos.kubesim import KubeSim


@pytest.fixture
async def sim() -> AsyncIterator[KubeSim]:
    """A simulated cluster, served on loopback for the real kubernetes-asyncio client."""
    async with KubeSim(host="127.0.0.1", port=0, seed=1) as s:
        yield s
