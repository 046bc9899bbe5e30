"""Fixtures: a simulated API server per test and real kubernetes-asyncio clients on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio.client import (
    ApiClient,
    CoordinationV1Api,
    CoreV1Api,
    CustomObjectsApi,
)
from kubesim_testing import Kubectl

from chaos.kubesim import KubeSim
from kube import Client


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


@pytest.fixture
async def kube_client(sim: KubeSim) -> AsyncIterator[Client]:
    """gtm's own client room (`kube.Client`) on the simulated cluster, keeping what the
    server says of its field managers (`managedFields`: the simulation's own tests)."""
    async with Client(sim.configuration(), timeout=5, managed_fields=True) as client:
        yield client


@pytest.fixture
def kubectl(sim: KubeSim, tmp_path: Path) -> Kubectl:
    config = sim.write_kubeconfig(tmp_path / "kubeconfig", context="sim")
    return Kubectl(config, tmp_path / "kube-cache")
