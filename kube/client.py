"""`Client`: one cluster's API connection with the one retrying `request()` and `watch()`.

Every call goes through `request()`, which
- holds one of `concurrency` slots and a token of the client-side rate limit
  (`qps`, `burst`) before it sends, when the caller asks for them (watches
  take a token, not a slot);
- bounds the call with `timeout` (asyncio and the HTTP client both);
- retries temporary errors — 429, 5xx, timeouts, broken connections — with
  tenacity: exponential backoff with full jitter, never sooner than the
  server's Retry-After, logging `kube.retry` with `attempt #n/N`;
- raises permanent errors at once, as `KubeError` subclasses (a 409 is a
  `Conflict`: the caller re-reads and rebuilds its write).

A call is an API method of kubernetes-asyncio with its arguments bound
(`functools.partial(client.core.read_namespaced_config_map, name, ns)`);
`request()` adds the timeout and asks for the raw answer, so every result is
the object as the server sent it (a JSON dict): timestamps stay strings and
no model class rewrites them. `metrics` (a `RequestMetrics`) counts requests,
retries and the rate limit's waits for the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Protocol

import aiohttp
import structlog
from kubernetes_asyncio.client import (
    ApiClient,
    Configuration,
    CoordinationV1Api,
    CoreV1Api,
    CustomObjectsApi,
)
from kubernetes_asyncio.client.exceptions import ApiException
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from kube.errors import KubeError, PermanentError, TemporaryError, error_of
from kube.rate_limit import Sleep, TokenBucket
from kube.settings import RetrySettings
from kube.watch import WatchEvent, read_events, without_managed_fields

log = structlog.get_logger(__name__)

Call = Callable[..., Awaitable[Any]]  # an API method with its arguments bound


class RequestMetrics(Protocol):
    """What a client counts; `failover.metrics.ClusterMetrics` is one."""

    def request(self, verb: str, code: int) -> None: ...

    def retry(self, verb: str, cause: str) -> None: ...

    def waited(self, seconds: float) -> None: ...


class _Uncounted:
    def request(self, verb: str, code: int) -> None:
        pass

    def retry(self, verb: str, cause: str) -> None:
        pass

    def waited(self, seconds: float) -> None:
        pass


class Client:
    """Requests to one cluster, bounded, retried and (when asked) paced.

    `api` is an `ApiClient` (the caller's to close) or a `Configuration`
    (the client opens its own `ApiClient` and closes it in `aclose()`).
    """

    def __init__(
        self,
        api: ApiClient | Configuration,
        *,
        timeout: float = 10.0,
        retry: RetrySettings | None = None,
        qps: float | None = None,
        burst: int = 1,
        concurrency: int | None = None,
        metrics: RequestMetrics | None = None,
        context: Mapping[str, str] | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        managed_fields: bool = False,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self._owns = isinstance(api, Configuration)
        self.api = ApiClient(configuration=api) if isinstance(api, Configuration) else api
        self.timeout = timeout
        self.retry = retry or RetrySettings()
        self._bucket = (
            TokenBucket(qps, burst, clock=clock, sleep=asyncio.sleep) if qps is not None else None
        )
        self._slots = asyncio.Semaphore(concurrency) if concurrency is not None else None
        self._metrics: RequestMetrics = metrics or _Uncounted()
        self._sleep = sleep
        self._keep_managed = managed_fields
        self._log = log.bind(**(context or {}))
        self._core: CoreV1Api | None = None
        self._custom: CustomObjectsApi | None = None
        self._coordination: CoordinationV1Api | None = None

    def derive(
        self, *, metrics: RequestMetrics | None = None, context: Mapping[str, str] | None = None
    ) -> Client:
        """This client (same connection, limits and settings) counting into `metrics`
        and logging with `context` instead: for several users sharing one connection."""
        other = copy.copy(self)
        other._owns = False
        if metrics is not None:
            other._metrics = metrics
        if context is not None:
            other._log = log.bind(**context)
        return other

    # -- the API groups gtm calls ---------------------------------------------------

    @property
    def core(self) -> CoreV1Api:
        if self._core is None:
            self._core = CoreV1Api(self.api)
        return self._core

    @property
    def custom_objects(self) -> CustomObjectsApi:
        if self._custom is None:
            self._custom = CustomObjectsApi(self.api)
        return self._custom

    @property
    def coordination(self) -> CoordinationV1Api:
        if self._coordination is None:
            self._coordination = CoordinationV1Api(self.api)
        return self._coordination

    # -- lifetime ---------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._owns:
            await self.api.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the one retrying request -------------------------------------------------

    async def request(self, verb: str, call: Call, *, what: str = "") -> dict[str, Any]:
        """`call()` with a slot, a token, a timeout, and retries of temporary errors.

        Returns the answer's JSON object; raises a `KubeError` (a
        `TemporaryError` once the attempts are spent, a `PermanentError` at once).
        """
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(TemporaryError),
            sleep=self._sleep,
            before_sleep=lambda state: self._retrying(state, verb, what),
            reraise=True,
        )
        return await retrying(self._once, verb, call)

    def _wait(self, state: RetryCallState) -> float:
        retry = self.retry
        backoff = wait_random_exponential(multiplier=retry.backoff, max=retry.backoff_max)(state)
        error = state.outcome.exception() if state.outcome else None
        after = getattr(error, "retry_after", None)
        if after is None:
            return backoff
        return max(backoff, min(after, retry.retry_after_max))

    def _retrying(self, state: RetryCallState, verb: str, what: str) -> None:
        error = state.outcome.exception() if state.outcome else None
        cause = error.cause if isinstance(error, KubeError) else "connection"
        self._metrics.retry(verb, cause)
        wait = state.next_action.sleep if state.next_action else 0.0
        self._log.warning(
            "kube.retry",
            verb=verb,
            what=what,
            attempt=f"#{state.attempt_number}/{self.retry.attempts}",
            error=str(error),
            wait=round(wait, 3),
        )

    async def _once(self, verb: str, call: Call) -> dict[str, Any]:
        async with self._slots or contextlib.nullcontext():
            await self._take_token()
            try:
                async with asyncio.timeout(self.timeout):
                    response = await call(_request_timeout=self.timeout, _preload_content=False)
                    async with response:
                        raw = await response.read()
                    status, reason, headers = response.status, response.reason, response.headers
            except ApiException as e:  # the client could not even build the request
                self._metrics.request(verb, e.status or 0)
                raise error_of(e.status or 0, e.reason or "", e.body, e.headers) from e
            except (TimeoutError, aiohttp.ClientError) as e:
                self._metrics.request(verb, 0)
                raise TemporaryError(None, type(e).__name__, str(e)) from e
        self._metrics.request(verb, status)
        if not 200 <= status < 300:
            raise error_of(status, reason or "", raw, headers)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError as e:
            raise PermanentError(status, "BadBody", raw[:200].decode(errors="replace")) from e
        if not isinstance(body, dict):
            return {}
        return body if self._keep_managed else without_managed_fields(body)

    async def _take_token(self) -> None:
        if self._bucket is not None:
            self._metrics.waited(await self._bucket.take())

    # -- watches --------------------------------------------------------------------

    async def watch(
        self, call: Call, *, resource_version: str, seconds: float
    ) -> AsyncIterator[WatchEvent]:
        """Events of the list `call` after `resource_version` until the server ends the watch.

        The server ends it after `seconds` (whole, at least 1). Raises
        `Expired` when the version is too old (re-list, then watch from the
        list's version) and `TemporaryError` when the stream breaks; not
        retried (the caller resumes). Use with `contextlib.aclosing` so an
        abandoned watch closes its socket.
        """
        whole = max(1, int(seconds))
        await self._take_token()
        try:
            response = await call(
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=whole,
                _preload_content=False,
                _request_timeout=aiohttp.ClientTimeout(
                    total=whole + self.timeout, connect=self.timeout
                ),
            )
        except (TimeoutError, aiohttp.ClientError) as e:
            self._metrics.request("watch", 0)
            raise TemporaryError(None, type(e).__name__, str(e)) from e
        try:
            self._metrics.request("watch", response.status)
            async for event in read_events(response, managed_fields=self._keep_managed):
                yield event
        finally:
            response.close()
