"""Build the stores, the lease and the reconcilers a member's config asks for.

The one place that turns settings into clients: file backends under the
state directory for the embedded default, ConfigMaps and a Lease in a
Kubernetes cluster otherwise.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from failover import ClusterSettings, Reconciler
from gtm.config import ClusterConfig, Inventory, RetryConfig
from gtm.ha import ElectionSettings, Elector, FileLease, KubeLease
from intent import (
    AuditLog,
    ConfigMapAudit,
    ConfigMapIntentStore,
    ConfigMapPublishedStore,
    FileAudit,
    FileIntentStore,
    FilePublishedStore,
    IntentStore,
    PublishedStore,
    StoreMetrics,
)
from kube import NO_RETRY, Client, RetrySettings, load_configuration


@dataclass(frozen=True)
class Stores:
    intent: IntentStore
    audit: AuditLog
    dns_table: PublishedStore  # the table DNS serves: the standby serves it too
    mesh_table: PublishedStore  # the table the WorkloadEntries follow (lags DNS on exits)


def own_clusters(inventory: Inventory, region: str) -> list[ClusterConfig]:
    return [c for c in inventory.config.kubernetes.clusters if c.region == region]


def _cluster(inventory: Inventory, region: str, name: str | None) -> ClusterConfig:
    clusters = inventory.config.kubernetes.clusters
    if name is not None:
        return next(c for c in clusters if c.name == name)
    mine = own_clusters(inventory, region)
    if not mine:
        raise ValueError(f"no Kubernetes cluster in region {region} for the kubernetes backend")
    return mine[0]


async def open_stores(
    inventory: Inventory,
    region: str,
    state_dir: Path,
    stack: AsyncExitStack,
    registry: CollectorRegistry,
) -> Stores:
    """The stores the config names, counting into `registry` (the member's)."""
    store = inventory.config.ha.store
    metrics = StoreMetrics(registry)
    if store.backend == "file":
        audit = FileAudit(state_dir / "audit.jsonl", keep_bytes=store.audit_keep_bytes)
        return Stores(
            intent=FileIntentStore(state_dir / "intent.json", audit=audit, metrics=metrics),
            audit=audit,
            dns_table=FilePublishedStore(state_dir / "table-dns.json", metrics=metrics),
            mesh_table=FilePublishedStore(state_dir / "table-mesh.json", metrics=metrics),
        )
    configuration = await load_configuration(_cluster(inventory, region, store.cluster))
    api = await stack.enter_async_context(
        Client(configuration, timeout=store.timeout, retry=retry_settings(store.retry))
    )
    audit_cm = ConfigMapAudit(api, name=store.audit, namespace=store.namespace, metrics=metrics)
    return Stores(
        intent=ConfigMapIntentStore(
            api, name=store.intent, namespace=store.namespace, audit=audit_cm, metrics=metrics
        ),
        audit=audit_cm,
        dns_table=ConfigMapPublishedStore(
            api, name=f"{store.table}-dns", namespace=store.namespace, metrics=metrics
        ),
        mesh_table=ConfigMapPublishedStore(
            api, name=f"{store.table}-mesh", namespace=store.namespace, metrics=metrics
        ),
    )


async def open_elector(
    inventory: Inventory,
    region: str,
    identity: str,
    address: str,
    state_dir: Path,
    stack: AsyncExitStack,
    registry: CollectorRegistry,
) -> Elector:
    lease = inventory.config.ha.lease
    settings = ElectionSettings.from_config(lease, identity=identity, address=address)
    if lease.backend == "file":
        backend = FileLease(Path(lease.path) if lease.path else state_dir / f"{region}.lease")
    else:
        configuration = await load_configuration(_cluster(inventory, region, lease.cluster))
        client = await stack.enter_async_context(
            Client(configuration, timeout=settings.timeout, retry=NO_RETRY)
        )
        backend = KubeLease(client, name=lease.name, namespace=lease.namespace)
    return Elector(backend, settings, registry=registry)


def cluster_settings(cluster: ClusterConfig, inventory: Inventory) -> ClusterSettings:
    return ClusterSettings(
        name=cluster.name,
        region=cluster.region,
        namespace=cluster.namespace,
        selector=cluster.selector,
        service_label=cluster.service_label,
        region_label=cluster.region_label,
        qps=cluster.qps,
        burst=cluster.burst,
        concurrency=cluster.concurrency,
        timeout=cluster.timeout,
        api_version=cluster.api_version,
        max_unhealthy_share=inventory.config.safety.max_unhealthy_share,
        ensure_annotation=cluster.ensure_annotation,
        retry=retry_settings(cluster.retry),
    )


def retry_settings(retry: RetryConfig) -> RetrySettings:
    """The config's retry section as the client's settings (the same names)."""
    return RetrySettings(**retry.model_dump())


async def open_reconcilers(
    inventory: Inventory, region: str, registry: CollectorRegistry
) -> list[Reconciler]:
    localities = {r.name: r.locality for r in inventory.config.regions}
    out = []
    for cluster in own_clusters(inventory, region):
        configuration = await load_configuration(cluster)
        out.append(
            Reconciler(
                cluster_settings(cluster, inventory),
                configuration,
                inventory.estate,
                localities,
                registry=registry,
            )
        )
    return out
