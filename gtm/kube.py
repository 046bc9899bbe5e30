"""A kubernetes-asyncio client configuration for a cluster of the estate config."""

from __future__ import annotations

from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import Configuration

from gtm.config import ClusterConfig


async def kube_configuration(cluster: ClusterConfig) -> Configuration:
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
