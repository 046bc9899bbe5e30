"""One ConfigMap, read-modify-written under a resourceVersion precondition.

The stores that keep intent, audit and the published table in Kubernetes
share this: `swap(change)` reads the ConfigMap (or uses the copy it last
wrote), applies the pure `change`, and writes the result with a PUT that
carries the resourceVersion it read (a POST when the ConfigMap is missing).
A 409 (another writer got in first; or AlreadyExists on create) or a 404
(deleted meanwhile) re-reads and re-applies `change`, at most
`KubeRetry.conflicts` rounds (tenacity, with a little jitter between them),
then `StoreUnavailable`. The first try of a round is optimistic, on the copy
this object last wrote (saving a GET while it is the only writer); only the
server accepting that write confirms the copy: when `change` finds nothing
to do, or raises, on it, it is run again on a fresh read.

Every request has a timeout (the client's `_request_timeout` and an
`asyncio.timeout` around it) and is retried on 429 (honouring Retry-After),
5xx, timeouts and connection errors, with jittered exponential backoff
(tenacity), `KubeRetry.attempts` times. A PUT retried after a 5xx whose
write did land gets a 409 and re-reads, so a retried write never applies
twice. Other errors (403 for missing RBAC, 422) are reported at once as
`StoreUnavailable`, with the server's message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import structlog
from kubernetes_asyncio.client import CoreV1Api, V1ConfigMap, V1ObjectMeta
from kubernetes_asyncio.client.exceptions import ApiException
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random,
)

from intent.errors import StoreUnavailable, TooLarge
from intent.metrics import StoreMetrics

log = structlog.get_logger(__name__)

T = TypeVar("T")

CONFIGMAP_LIMIT = 1024 * 1024  # bytes of data plus decoded binaryData (kube validation)
_TRANSIENT = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class KubeRetry:
    attempts: int = 8  # per request, on 429/5xx/timeouts/connection errors
    conflicts: int = 10  # read-modify-write rounds on 409
    backoff: float = 0.05  # first backoff, seconds; doubles, with full jitter
    max_backoff: float = 2.0
    max_retry_after: float = 10.0  # cap on a server's Retry-After
    timeout: float = 5.0  # per request


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


class _Conflict(Exception):
    """The write lost a race (409, or 404 on a PUT): read again and apply the change again."""


class ConfigMapCAS:
    def __init__(
        self,
        api: CoreV1Api,
        name: str,
        namespace: str,
        *,
        store: str,
        labels: Mapping[str, str] | None = None,
        retry: KubeRetry | None = None,
        metrics: StoreMetrics,
    ) -> None:
        self.api = api
        self.name = name
        self.namespace = namespace
        self.store = store  # the metrics' label
        self.labels = dict(labels or {})
        self.retry = retry or KubeRetry()
        self.metrics = metrics
        self._cached: ConfigMapData | None = None

    @property
    def where(self) -> str:
        return f"configmap {self.namespace}/{self.name}"

    async def read(self) -> ConfigMapData:
        try:
            obj = await self._call(
                "get", self.api.read_namespaced_config_map, name=self.name, namespace=self.namespace
            )
        except ApiException as e:
            if e.status != 404:
                raise StoreUnavailable(f"{self.where}: get failed: {_explain(e)}") from e
            current = ConfigMapData()
        else:
            current = _decode(obj)
        self._cached = current
        return current

    async def swap(self, change: Change) -> Swap:
        """Apply `change` (pure; None or the same content: nothing to write) and write it."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.conflicts),
            wait=wait_random(0, self.retry.backoff),  # spreads writers that collided
            retry=retry_if_exception_type(_Conflict),
            before_sleep=lambda state: log.debug(
                "intent.cas_conflict",
                store=self.store,
                attempt=f"{state.attempt_number}/{self.retry.conflicts}",
            ),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(change)
        except _Conflict:
            raise StoreUnavailable(
                f"{self.where}: gave up after {self.retry.conflicts} conflicting writes "
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
                except _Conflict:
                    pass  # someone wrote since: read and apply `change` again
        current = await self.read()
        new = change(current)
        if new is None or new.same_content(current):
            return Swap(current, current)
        return await self._put(current, new)

    async def _put(self, current: ConfigMapData, new: ConfigMapData) -> Swap:
        size = new.size()
        if size > CONFIGMAP_LIMIT:
            raise TooLarge(f"{self.where}: {size} bytes, above the {CONFIGMAP_LIMIT} limit")
        try:
            written = await self._write(current, new)
        except _Conflict:
            self._cached = None
            self.metrics.conflict(self.store)
            raise
        self._cached = written
        return Swap(current, written)

    async def _write(self, current: ConfigMapData, new: ConfigMapData) -> ConfigMapData:
        body = V1ConfigMap(
            api_version="v1",
            kind="ConfigMap",
            metadata=V1ObjectMeta(
                name=self.name,
                namespace=self.namespace,
                labels={**new.labels, **self.labels} or None,
                annotations=dict(new.annotations) or None,
                resource_version=current.resource_version,
            ),
            data=dict(new.data) or None,
            binary_data=dict(new.binary_data) or None,
        )
        creating = current.resource_version is None
        try:
            if creating:
                obj = await self._call(
                    "create",
                    self.api.create_namespaced_config_map,
                    namespace=self.namespace,
                    body=body,
                )
            else:
                obj = await self._call(
                    "replace",
                    self.api.replace_namespaced_config_map,
                    name=self.name,
                    namespace=self.namespace,
                    body=body,
                )
        except ApiException as e:
            if e.status == 409 or (e.status == 404 and not creating):
                raise _Conflict from e
            if e.status == 413:
                raise TooLarge(f"{self.where}: {_explain(e)}") from e
            raise StoreUnavailable(f"{self.where}: write failed: {_explain(e)}") from e
        return _decode(obj)

    async def _call(self, verb: str, call: Callable[..., Awaitable[T]], **kwargs: Any) -> T:
        """One request with a timeout, retried on transient errors; 404/409 are raised as is."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception(_transient),
            before_sleep=lambda state: self._retrying(verb, state),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with asyncio.timeout(self.retry.timeout):
                        return await call(**kwargs, _request_timeout=self.retry.timeout)
        except ApiException as e:
            if e.status not in _TRANSIENT:
                raise  # 404, 409, 413 and the permanent ones: the caller decides
            raise StoreUnavailable(
                f"{self.where}: {verb} failed {self.retry.attempts} times: {_explain(e)}"
            ) from e
        except (TimeoutError, aiohttp.ClientError) as e:
            raise StoreUnavailable(
                f"{self.where}: {verb} failed {self.retry.attempts} times: {e!r}"
            ) from e
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _wait(self, state: RetryCallState) -> float:
        cap = min(self.retry.max_backoff, self.retry.backoff * 2 ** (state.attempt_number - 1))
        wait = random.uniform(0, cap)
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, ApiException) and error.status == 429:
            wait = max(wait, min(self.retry.max_retry_after, _retry_after(error)))
        return wait

    def _retrying(self, verb: str, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        cause = _cause(error)
        self.metrics.retried(self.store, cause)
        log.warning(
            "intent.kube_retry",
            store=self.store,
            verb=verb,
            attempt=f"{state.attempt_number}/{self.retry.attempts}",
            cause=cause,
            wait=round(state.upcoming_sleep, 3),
        )


def _decode(obj: V1ConfigMap) -> ConfigMapData:
    meta = obj.metadata
    return ConfigMapData(
        data=dict(obj.data or {}),
        binary_data=dict(obj.binary_data or {}),
        labels=dict(meta.labels or {}),
        annotations=dict(meta.annotations or {}),
        resource_version=meta.resource_version,
    )


def _transient(error: BaseException) -> bool:
    if isinstance(error, ApiException):
        return error.status in _TRANSIENT
    return isinstance(error, TimeoutError | aiohttp.ClientError)


def _cause(error: BaseException | None) -> str:
    if isinstance(error, ApiException):
        return str(error.status)
    if isinstance(error, TimeoutError):
        return "timeout"
    return "connection"


def _retry_after(error: ApiException) -> float:
    try:
        return float((error.headers or {}).get("Retry-After", 0))
    except (TypeError, ValueError):
        return 0.0


def _explain(error: ApiException) -> str:
    """`409 Conflict: <the Status message>`."""
    message = ""
    try:
        body = json.loads(error.body) if error.body else {}
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
    except (TypeError, ValueError):
        message = str(error.body)[:200]
    return f"{error.status} {error.reason}" + (f": {message}" if message else "")
