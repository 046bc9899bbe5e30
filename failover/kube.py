"""The one place that talks to Kubernetes: WorkloadEntry list, watch, get and patch;
DestinationRule list (read only, for the distribute conflicts).

Every call goes through `KubeClient.request()`, which
- holds one of `concurrency` slots (watches excepted) and a token of the
  client-side rate limit (`qps`, `burst`) before it sends;
- bounds the call with `timeout` (asyncio and the HTTP client both);
- retries temporary errors — 429, 5xx, timeouts, broken connections — with
  tenacity: exponential backoff with jitter, never sooner than the server's
  Retry-After, logging `attempt #n/N`;
- raises permanent errors at once, as `KubeError` subclasses. A 409 is a
  `Conflict`: the write's resourceVersion precondition failed, so sending it
  again cannot succeed — the caller re-reads and rebuilds it.

Patches are merge patches (`application/merge-patch+json`, always passed:
kubernetes-asyncio would send a dict as a JSON patch otherwise) whose body
carries `metadata.resourceVersion`, so a concurrent writer is never
overwritten. The watch reads the stream itself rather than through
`kubernetes_asyncio.watch.Watch` (which opens a second ApiClient with the
default configuration, parses each event twice, and in watch-forever mode
resumes a 410 with the same too-old resourceVersion).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import structlog
from kubernetes_asyncio.client import ApiClient, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from failover.metrics import ClusterMetrics
from failover.rate_limit import Sleep, TokenBucket
from failover.settings import DR_PLURAL, WLE_GROUP, WLE_PLURAL, ClusterSettings

log = structlog.get_logger(__name__)

T = TypeVar("T")
MERGE_PATCH = "application/merge-patch+json"
_TEMPORARY_CODES = frozenset({429, 500, 502, 503, 504})


class KubeError(Exception):
    def __init__(
        self, status: int | None, reason: str, message: str = "", retry_after: float | None = None
    ) -> None:
        self.status, self.reason, self.message, self.retry_after = (
            status,
            reason,
            message,
            retry_after,
        )
        super().__init__(f"{status or 'no answer'} {reason}: {message}".rstrip(": "))


class TemporaryError(KubeError):
    """429, 5xx, a timeout or a broken connection: worth another attempt."""


class PermanentError(KubeError):
    """Anything else: another attempt would get the same answer."""


class Conflict(PermanentError):
    """409: the resourceVersion precondition failed; re-read, rebuild, retry."""


class NotFound(PermanentError):
    """404: no such object, or (on a list) the resource is not served."""


class Forbidden(PermanentError):
    """403: RBAC does not grant the request."""


class Expired(PermanentError):
    """410: a watch or list continuation from a resourceVersion the server no longer has."""


def _retry_after(headers: Mapping[str, str] | None, body: Mapping[str, Any]) -> float | None:
    raw = (headers or {}).get("Retry-After")
    if raw is not None:
        raw = raw.strip()
        if raw.isdigit():
            return float(raw)
        try:
            return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
        except (TypeError, ValueError):
            pass
    seconds = (body.get("details") or {}).get("retryAfterSeconds")
    return float(seconds) if isinstance(seconds, int | float) else None


def error_of(status: int, reason: str, raw: bytes | str | None, headers: Any) -> KubeError:
    """A `KubeError` from an HTTP error answer (its body a Kubernetes `Status`, if any)."""
    body: dict[str, Any] = {}
    if raw:
        try:
            parsed = json.loads(raw)
            body = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            pass
    reason = str(body.get("reason") or reason or "")
    message = str(body.get("message") or "")
    after = _retry_after(headers, body)
    kind: type[KubeError]
    if status in _TEMPORARY_CODES:
        kind = TemporaryError
    else:
        kind = {409: Conflict, 404: NotFound, 403: Forbidden, 410: Expired}.get(
            status, PermanentError
        )
    return kind(status, reason, message, after)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    object: dict[str, Any]

    @property
    def resource_version(self) -> str:
        return str((self.object.get("metadata") or {}).get("resourceVersion", ""))


class KubeClient:
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
        self._api = CustomObjectsApi(api)
        self._metrics = metrics
        self._sleep = sleep
        self._bucket = TokenBucket(settings.qps, settings.burst, clock=clock, sleep=asyncio.sleep)
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._path = (WLE_GROUP, settings.api_version)
        self._log = log.bind(cluster=settings.name)

    # -- the one retrying request -------------------------------------------------

    async def request(self, verb: str, call: Callable[[], Awaitable[T]], *, what: str) -> T:
        """`call()` with a slot, a token, a timeout, and retries of temporary errors."""
        retry = self._s.retry
        retrying = AsyncRetrying(
            stop=stop_after_attempt(retry.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(TemporaryError),
            sleep=self._sleep,
            before_sleep=lambda state: self._retrying(state, verb, what),
            reraise=True,
        )
        return await retrying(self._once, verb, call)

    def _wait(self, state: RetryCallState) -> float:
        retry = self._s.retry
        backoff = wait_random_exponential(multiplier=retry.backoff, max=retry.backoff_max)(state)
        error = state.outcome.exception() if state.outcome else None
        after = getattr(error, "retry_after", None)
        if after is None:
            return backoff
        return max(backoff, min(after, retry.retry_after_max))

    def _retrying(self, state: RetryCallState, verb: str, what: str) -> None:
        self._metrics.retry(verb)
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self._log.debug(
            "kube.retry",
            verb=verb,
            what=what,
            attempt=f"#{state.attempt_number}/{self._s.retry.attempts}",
            error=str(error),
            wait=round(wait, 3),
        )

    async def _once(self, verb: str, call: Callable[[], Awaitable[T]]) -> T:
        async with self._slots:
            self._metrics.waited(await self._bucket.take())
            try:
                async with asyncio.timeout(self._s.timeout):
                    result = await call()
            except ApiException as e:
                self._metrics.request(verb, e.status or 0)
                raise error_of(e.status or 0, e.reason or "", e.body, e.headers) from e
            except (TimeoutError, aiohttp.ClientError) as e:
                self._metrics.request(verb, 0)
                raise TemporaryError(None, type(e).__name__, str(e)) from e
        self._metrics.request(verb, 200)
        return result

    # -- WorkloadEntry calls ---------------------------------------------------------

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
                    page = await self.request(
                        "list",
                        lambda t=token: self._list(plural, selector, _continue=t),
                        what=plural,
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

    def _list(self, plural: str, selector: str | None, **kwargs: Any) -> Awaitable[dict[str, Any]]:
        group, version = self._path
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        kwargs.setdefault("_request_timeout", self._s.timeout)
        if selector:
            kwargs["label_selector"] = selector
        if "watch" not in kwargs:
            kwargs["limit"] = self._s.page_size
        if self._s.namespace:
            return self._api.list_namespaced_custom_object(  # type: ignore[no-any-return]
                group, version, self._s.namespace, plural, **kwargs
            )
        return self._api.list_cluster_custom_object(  # type: ignore[no-any-return]
            group, version, plural, **kwargs
        )

    async def get_entry(self, namespace: str, name: str) -> dict[str, Any]:
        group, version = self._path
        return await self.request(
            "get",
            lambda: self._api.get_namespaced_custom_object(
                group, version, namespace, WLE_PLURAL, name, _request_timeout=self._s.timeout
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
        return await self.request(
            "patch",
            lambda: fn(
                group,
                version,
                namespace,
                WLE_PLURAL,
                name,
                dict(body),
                _content_type=MERGE_PATCH,
                _request_timeout=self._s.timeout,
            ),
            what=f"{namespace}/{name}{'/status' if status else ''}",
        )

    async def watch_entries(
        self, resource_version: str, seconds: float | None = None
    ) -> AsyncIterator[WatchEvent]:
        """Events after `resource_version` until the server ends the watch.

        The server ends it after `seconds` (at most `watch_timeout`).
        Raises `Expired` when the version is too old (re-list, then watch from
        the list's version) and `TemporaryError` when the stream breaks.
        Use with `contextlib.aclosing` so an abandoned watch closes its socket.
        """
        seconds = max(1, int(min(seconds or self._s.watch_timeout, self._s.watch_timeout)))
        timeout = aiohttp.ClientTimeout(total=seconds + self._s.timeout, connect=self._s.timeout)
        self._metrics.waited(await self._bucket.take())
        try:
            resp = await self._list(
                WLE_PLURAL,
                self._s.selector,
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=seconds,
                _preload_content=False,
                _request_timeout=timeout,
            )
        except (TimeoutError, aiohttp.ClientError) as e:
            self._metrics.request("watch", 0)
            raise TemporaryError(None, type(e).__name__, str(e)) from e
        response: aiohttp.ClientResponse = resp  # type: ignore[assignment]
        try:
            self._metrics.request("watch", response.status)
            if response.status != 200:
                raw = await response.read()
                raise error_of(response.status, response.reason or "", raw, response.headers)
            while True:
                try:
                    line = await response.content.readline()
                except (TimeoutError, aiohttp.ClientError) as e:
                    raise TemporaryError(None, type(e).__name__, str(e)) from e
                if not line:
                    return
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError as e:
                    raise TemporaryError(
                        None, "BadWatchEvent", line[:200].decode(errors="replace")
                    ) from e
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    code = int(obj.get("code") or 500)
                    raise error_of(code, str(obj.get("reason", "")), json.dumps(obj), None)
                yield WatchEvent(str(kind), obj)
        finally:
            response.close()
