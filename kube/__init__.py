"""kube: the one room that talks to Kubernetes (kubernetes-asyncio is imported only here).

    configuration = await load_configuration(cluster)      # in-cluster or kubeconfig
    async with Client(configuration, timeout=5, retry=RetrySettings(attempts=4),
                      qps=20, burst=40, concurrency=8, metrics=m) as client:
        cm = await client.request("get", partial(client.core.read_namespaced_config_map,
                                                 "gtm-intent", "gtm"), what="gtm/gtm-intent")
        async with aclosing(client.watch(list_call, resource_version=rv, seconds=60)) as events:
            async for event in events: ...

Public API:
- `Client(api, *, timeout, retry, qps, burst, concurrency, metrics, context, sleep, clock,
  managed_fields)`:
  `request(verb, call, *, what) -> dict` (the one retrying request),
  `watch(call, *, resource_version, seconds)` -> `WatchEvent`s; `.core`,
  `.custom_objects`, `.coordination` (the API groups to bind calls from);
  `.timeout`, `.retry`; `derive(metrics=, context=)` (the same connection and
  limits, counted and logged apart); `aclose()` / `async with`.
- `RetrySettings` (`attempts`, `backoff`, `backoff_max`, `retry_after_max`,
  `conflict_attempts`), `NO_RETRY` — the one retry settings type.
- `RequestMetrics` — what a client counts (request, retry, waited).
- `KubeError` > `TemporaryError`, `PermanentError` > `Conflict`, `NotFound`,
  `Forbidden`, `Expired`; `error_of(status, reason, body, headers)`.
- `WatchEvent`; `TokenBucket`, `Sleep` — the client-side rate limit.
- `load_configuration(cluster)`, `ClusterAccess`; `ApiClient`, `Configuration`
  (kubernetes-asyncio's, for those who hand a connection in).
- `MERGE_PATCH` — the content type to pass to every dict patch.

Every object read (`request`, `watch`) comes without `metadata.managedFields`
(`Client(managed_fields=True)` keeps them, for the simulated API server's own
tests): nothing of gtm reads them, and at tens of thousands of objects they cost
hundreds of MB.
"""

from kubernetes_asyncio.client import ApiClient, Configuration

from kube.client import Call, Client, RequestMetrics
from kube.configuration import ClusterAccess, load_configuration
from kube.errors import (
    Conflict,
    Expired,
    Forbidden,
    KubeError,
    NotFound,
    PermanentError,
    TemporaryError,
    error_of,
)
from kube.rate_limit import Sleep, TokenBucket
from kube.settings import NO_RETRY, RetrySettings
from kube.watch import WatchEvent

# kubernetes-asyncio sends a dict body as a JSON patch unless told otherwise
MERGE_PATCH = "application/merge-patch+json"

__all__ = [
    "MERGE_PATCH",
    "NO_RETRY",
    "ApiClient",
    "Call",
    "Client",
    "ClusterAccess",
    "Configuration",
    "Conflict",
    "Expired",
    "Forbidden",
    "KubeError",
    "NotFound",
    "PermanentError",
    "RequestMetrics",
    "RetrySettings",
    "Sleep",
    "TemporaryError",
    "TokenBucket",
    "WatchEvent",
    "error_of",
    "load_configuration",
]
