"""One ConfigMap, read-modify-written under a resourceVersion precondition.

The stores that keep intent, audit and the published table in Kubernetes
share this (`write_once` for a caller that decides, does something, and then
writes): `swap(change)` reads the ConfigMap (or uses the copy it last
wrote), applies the pure `change`, and writes the result with a PUT that
carries the resourceVersion it read (a POST when the ConfigMap is missing).
A 409 (another writer got in first; or AlreadyExists on create) or a 404
(deleted meanwhile) re-reads and re-applies `change`, at most
`conflict_attempts` rounds of the client's `RetrySettings` (tenacity, with a
little jitter between them), then `StoreUnavailable`. The first try of a
round is optimistic, on the copy this object last wrote (saving a GET while
it is the only writer); only the server accepting that write confirms the
copy: when `change` finds nothing to do, or raises, on it, it is run again on
a fresh read.

Every request goes through `kube.Client.request()`: a timeout, and retries of
429 (honouring Retry-After), 5xx, timeouts and connection errors. A PUT
retried after a 5xx whose write did land gets a 409 and re-reads, so a
retried write never applies twice. Other errors (403 for missing RBAC, 422)
are reported at once as `StoreUnavailable`, with the server's message.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random

from intent.errors import StoreUnavailable, TooLarge
from intent.metrics import StoreMetrics
from kube import Client, Conflict, KubeError, NotFound, TemporaryError

log = structlog.get_logger(__name__)

CONFIGMAP_LIMIT = 1024 * 1024  # bytes of data plus decoded binaryData (kube validation)


@dataclass(frozen=True)
class ConfigMapData:
    """A ConfigMap's content at one resourceVersion (None: it does not exist)."""

    data: Mapping[str, str] = field(default_factory=dict)
    binary_data: Mapping[str, str] = field(default_factory=dict)  # base64 strings
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    resource_version: str | None = None

    def same_content(self, other: ConfigMapData) -> bool:
        return (
            self.data == other.data
            and self.binary_data == other.binary_data
            and self.labels == other.labels
            and self.annotations == other.annotations
        )

    def size(self) -> int:
        """Bytes counted against the 1 MiB ConfigMap limit."""
        text = sum(len(k) + len(v.encode()) for k, v in self.data.items())
        binary = sum(len(k) + len(base64.b64decode(v)) for k, v in self.binary_data.items())
        return text + binary


@dataclass(frozen=True)
class Swap:
    before: ConfigMapData
    after: ConfigMapData  # `before` itself when nothing was written

    @property
    def wrote(self) -> bool:
        return self.after is not self.before


Change = Callable[[ConfigMapData], ConfigMapData | None]


class WriteLost(Exception):
    """The write lost a race (409, or 404 on a PUT): read again and apply the change again."""


class _StoreCounts:
    """The client's `RequestMetrics`, counted as the store's retries."""

    def __init__(self, metrics: StoreMetrics, store: str) -> None:
        self._metrics, self._store = metrics, store

    def request(self, verb: str, code: int) -> None:
        pass

    def retry(self, verb: str, cause: str) -> None:
        self._metrics.retried(self._store, cause)

    def waited(self, seconds: float) -> None:
        pass


class ConfigMapCAS:
    def __init__(
        self,
        client: Client,
        name: str,
        namespace: str,
        *,
        store: str,
        labels: Mapping[str, str] | None = None,
        metrics: StoreMetrics,
    ) -> None:
        self.client = client.derive(metrics=_StoreCounts(metrics, store), context={"store": store})
        self.name = name
        self.namespace = namespace
        self.store = store  # the metrics' label
        self.labels = dict(labels or {})
        self.metrics = metrics
        self._cached: ConfigMapData | None = None

    @property
    def cached(self) -> ConfigMapData | None:
        """The copy last read or written (None: none, or the last write lost a race)."""
        return self._cached

    @property
    def resource_version(self) -> str | None:
        """The resourceVersion last read or written (None: none yet, or a lost race)."""
        return None if self._cached is None else self._cached.resource_version

    @property
    def where(self) -> str:
        return f"configmap {self.namespace}/{self.name}"

    async def read(self) -> ConfigMapData:
        core = self.client.core
        try:
            obj = await self.client.request(
                "get",
                partial(core.read_namespaced_config_map, self.name, self.namespace),
                what=self.where,
            )
        except NotFound:
            current = ConfigMapData()
        except KubeError as e:
            raise self._unavailable("get", e) from e
        else:
            current = _decode(obj)
        self._cached = current
        return current

    async def swap(self, change: Change) -> Swap:
        """Apply `change` (pure; None or the same content: nothing to write) and write it."""
        rounds = self.client.retry.conflict_attempts
        retrying = AsyncRetrying(
            stop=stop_after_attempt(rounds),
            wait=wait_random(0, self.client.retry.backoff),  # spreads writers that collided
            retry=retry_if_exception_type(WriteLost),
            before_sleep=lambda state: log.debug(
                "intent.cas_conflict", store=self.store, attempt=f"#{state.attempt_number}/{rounds}"
            ),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(change)
        except WriteLost:
            raise StoreUnavailable(
                f"{self.where}: gave up after {rounds} conflicting writes "
                "(other writers keep changing it)"
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _attempt(self, change: Change) -> Swap:
        """One round: optimistically on the copy last written, then on a fresh read."""
        cached = self._cached
        if cached is not None:
            try:
                new = change(cached)
            except Exception:  # decided on our copy: decide again on the server's
                new = None
            if new is not None and not new.same_content(cached):
                try:
                    return await self._put(cached, new)
                except WriteLost:
                    pass  # someone wrote since: read and apply `change` again
        current = await self.read()
        new = change(current)
        if new is None or new.same_content(current):
            return Swap(current, current)
        return await self._put(current, new)

    async def write_once(self, current: ConfigMapData, new: ConfigMapData) -> ConfigMapData:
        """Write `new` over `current` (read with `read()`) exactly once, under its
        resourceVersion: `WriteLost` when another writer got in first (nothing written),
        for a caller that must do something between deciding and writing (audit first)."""
        return (await self._put(current, new)).after

    async def _put(self, current: ConfigMapData, new: ConfigMapData) -> Swap:
        size = new.size()
        if size > CONFIGMAP_LIMIT:
            raise TooLarge(f"{self.where}: {size} bytes, above the {CONFIGMAP_LIMIT} limit")
        try:
            written = await self._write(current, new)
        except WriteLost:
            self._cached = None
            self.metrics.conflict(self.store)
            raise
        self._cached = written
        return Swap(current, written)

    async def _write(self, current: ConfigMapData, new: ConfigMapData) -> ConfigMapData:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        labels = {**new.labels, **self.labels}
        if labels:
            metadata["labels"] = labels
        if new.annotations:
            metadata["annotations"] = dict(new.annotations)
        if current.resource_version is not None:
            metadata["resourceVersion"] = current.resource_version
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
        if new.data:
            body["data"] = dict(new.data)
        if new.binary_data:
            body["binaryData"] = dict(new.binary_data)
        creating = current.resource_version is None
        core = self.client.core
        verb, call = (
            ("create", partial(core.create_namespaced_config_map, self.namespace, body))
            if creating
            else (
                "replace",
                partial(core.replace_namespaced_config_map, self.name, self.namespace, body),
            )
        )
        try:
            obj = await self.client.request(verb, call, what=self.where)
        except (Conflict, NotFound) as e:
            if isinstance(e, NotFound) and creating:
                raise self._unavailable(verb, e) from e
            raise WriteLost from e
        except KubeError as e:
            if e.status == 413:
                raise TooLarge(f"{self.where}: {e}") from e
            raise self._unavailable(verb, e) from e
        return _decode(obj)

    def _unavailable(self, verb: str, error: KubeError) -> StoreUnavailable:
        if isinstance(error, TemporaryError):
            attempts = self.client.retry.attempts
            return StoreUnavailable(f"{self.where}: {verb} failed {attempts} times: {error}")
        return StoreUnavailable(f"{self.where}: {verb} failed: {error}")


def _decode(obj: Mapping[str, Any]) -> ConfigMapData:
    meta = obj.get("metadata") or {}
    return ConfigMapData(
        data=dict(obj.get("data") or {}),
        binary_data=dict(obj.get("binaryData") or {}),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        resource_version=meta.get("resourceVersion"),
    )
