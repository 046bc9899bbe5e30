"""Fixtures: a simulated API server per test and real kubernetes-asyncio clients on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio.client import (
    ApiClient,
    CoordinationV1Api,
    CoreV1Api,
    CustomObjectsApi,
)

from chaos.kubesim import KubeSim


@pytest.fixture
async def sim() -> AsyncIterator[KubeSim]:
    async with KubeSim(host="127.0.0.1", port=0, history=50, bookmark_interval=0.2, seed=1) as s:
        yield s


@pytest.fixture
async def api_client(sim: KubeSim) -> AsyncIterator[ApiClient]:
    async with ApiClient(sim.configuration()) as client:
        yield client


@pytest.fixture
def custom(api_client: ApiClient) -> CustomObjectsApi:
    return CustomObjectsApi(api_client)


@pytest.fixture
def coordination(api_client: ApiClient) -> CoordinationV1Api:
    return CoordinationV1Api(api_client)


@pytest.fixture
def core(api_client: ApiClient) -> CoreV1Api:
    return CoreV1Api(api_client)
