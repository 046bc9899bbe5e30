"""Where a cluster's API is: a kubernetes-asyncio `Configuration` from the in-cluster
service account or a kubeconfig file and context."""

from __future__ import annotations

from typing import Protocol

from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import Configuration


class ClusterAccess(Protocol):
    """How to reach a cluster: `gtm.config.ClusterConfig` has these fields."""

    @property
    def in_cluster(self) -> bool: ...

    @property
    def kubeconfig(self) -> str | None: ...

    @property
    def context(self) -> str | None: ...


async def load_configuration(cluster: ClusterAccess) -> Configuration:
    """In-cluster service account, or a kubeconfig file and context."""
    configuration = Configuration()
    if cluster.in_cluster:
        kube_config.load_incluster_config(client_configuration=configuration)
    else:
        await kube_config.load_kube_config(
            config_file=cluster.kubeconfig,
            context=cluster.context,
            client_configuration=configuration,
        )
    return configuration
