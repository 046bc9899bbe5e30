"""The WorkloadEntry calls of one cluster: list, watch, get and patch; DestinationRule
list (read only, for the distribute conflicts). All through `kube.Client`.

The client is paced (`qps`, `burst`, `concurrency` of the cluster), bounded by
its `timeout` and retried as `ClusterSettings.retry` says. Patches are merge
patches (`application/merge-patch+json`, always passed: kubernetes-asyncio
would send a dict as a JSON patch otherwise) whose body carries
`metadata.resourceVersion`, so a concurrent writer is never overwritten.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from typing import Any

import structlog

from failover.metrics import ClusterMetrics
from failover.settings import DR_PLURAL, WLE_GROUP, WLE_PLURAL, ClusterSettings
from kube import MERGE_PATCH, ApiClient, Call, Client, Expired, Sleep, WatchEvent

log = structlog.get_logger(__name__)


class EntryCalls:
    """WorkloadEntry (and DestinationRule) calls against one cluster, paced, bounded and retried."""

    def __init__(
        self,
        settings: ClusterSettings,
        api: ApiClient,
        metrics: ClusterMetrics,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._s = settings
        self.client = Client(
            api,
            timeout=settings.timeout,
            retry=settings.retry,
            qps=settings.qps,
            burst=settings.burst,
            concurrency=settings.concurrency,
            metrics=metrics,
            context={"cluster": settings.name},
            sleep=sleep,
            clock=clock,
        )
        self._api = self.client.custom_objects
        self._path = (WLE_GROUP, settings.api_version)
        self._log = log.bind(cluster=settings.name)

    async def list_entries(self) -> tuple[list[dict[str, Any]], str]:
        """Every selected WLE, in pages, and the list's resourceVersion."""
        return await self._list_all(WLE_PLURAL, self._s.selector)

    async def list_rules(self) -> list[dict[str, Any]]:
        """Every DestinationRule in the namespace (every namespace when it is None).

        Raises `NotFound` when the cluster does not serve them (no CRD, or
        not in this version) and `Forbidden` when RBAC does not grant the list.
        """
        items, _ = await self._list_all(DR_PLURAL, None)
        return items

    async def _list_all(
        self, plural: str, selector: str | None
    ) -> tuple[list[dict[str, Any]], str]:
        """Every object of `plural` (matching `selector`), in pages, and the list's resourceVersion.

        A continue token that expired mid-way (410) restarts the list, up to
        `conflict_attempts` times.
        """
        for restart in range(self._s.retry.conflict_attempts + 1):
            items: list[dict[str, Any]] = []
            token: str | None = None
            try:
                while True:
                    options: dict[str, Any] = {"limit": self._s.page_size}
                    if token is not None:
                        options["_continue"] = token
                    page = await self.client.request(
                        "list", partial(self._list(plural, selector), **options), what=plural
                    )
                    items += page.get("items") or []
                    meta = page.get("metadata") or {}
                    token = meta.get("continue") or None
                    if token is None:
                        return items, str(meta.get("resourceVersion", ""))
            except Expired:
                if restart == self._s.retry.conflict_attempts:
                    raise
                self._log.info("kube.list.restarted", why="continue token expired")
        raise AssertionError("unreachable")

    def _list(self, plural: str, selector: str | None) -> Call:
        """The list call of `plural` in the namespace (every namespace when it is None)."""
        group, version = self._path
        options = {"label_selector": selector} if selector else {}
        if self._s.namespace:
            return partial(
                self._api.list_namespaced_custom_object,
                group,
                version,
                self._s.namespace,
                plural,
                **options,
            )
        return partial(self._api.list_cluster_custom_object, group, version, plural, **options)

    async def get_entry(self, namespace: str, name: str) -> dict[str, Any]:
        group, version = self._path
        return await self.client.request(
            "get",
            partial(
                self._api.get_namespaced_custom_object, group, version, namespace, WLE_PLURAL, name
            ),
            what=f"{namespace}/{name}",
        )

    async def patch_entry(
        self, namespace: str, name: str, body: Mapping[str, Any], *, status: bool
    ) -> dict[str, Any]:
        """A merge patch of the main resource or of its status subresource."""
        group, version = self._path
        fn = (
            self._api.patch_namespaced_custom_object_status
            if status
            else self._api.patch_namespaced_custom_object
        )
        return await self.client.request(
            "patch",
            partial(
                fn,
                group,
                version,
                namespace,
                WLE_PLURAL,
                name,
                dict(body),
                _content_type=MERGE_PATCH,
            ),
            what=f"{namespace}/{name}{'/status' if status else ''}",
        )

    def watch_entries(
        self, resource_version: str, seconds: float | None = None
    ) -> AsyncIterator[WatchEvent]:
        """Events after `resource_version` until the server ends the watch (see `Client.watch`).

        The server ends it after `seconds` (at most `watch_timeout`). Use with
        `contextlib.aclosing` so an abandoned watch closes its socket.
        """
        seconds = min(seconds or self._s.watch_timeout, self._s.watch_timeout)
        return self.client.watch(
            self._list(WLE_PLURAL, self._s.selector),
            resource_version=resource_version,
            seconds=seconds,
        )
