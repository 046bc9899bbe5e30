"""The access log, as structlog events, and the API's request metrics.

One `api.request` event per request with method, path (no query string),
route, status, duration and the token's *name*; never a header, so the
`Authorization` token cannot reach a log. Reads that succeed log at debug
level (peers and dashboards poll), writes and errors at info.
"""

from __future__ import annotations

import time

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from gtm.api.auth import GRANT
from gtm.api.errors import Handler

log = structlog.get_logger("gtm.api")

_READS = ("GET", "HEAD", "OPTIONS")


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "gtm_api_requests",
            "HTTP API requests by route, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "gtm_api_request_seconds",
            "HTTP API request duration by route",
            ["route"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
            registry=registry,
        )


API_METRICS = web.AppKey("api_metrics", ApiMetrics)


def route_name(request: web.Request) -> str:
    """The route's pattern (`/v1/overrides/{id}`): bounded label values."""
    info = request.match_info
    if info.http_exception is not None:
        return "unmatched"
    resource = info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        elapsed = time.perf_counter() - started
        route = route_name(request)
        metrics = request.app[API_METRICS]
        metrics.requests.labels(route, request.method, str(status)).inc()
        metrics.seconds.labels(route).observe(elapsed)
        grant = request.get(GRANT)
        quiet = request.method in _READS and status < 400
        emit = log.debug if quiet else log.info
        emit(
            "api.request",
            method=request.method,
            path=request.path,
            route=route,
            status=status,
            ms=round(elapsed * 1000, 1),
            who=None if grant is None else grant.name,
            remote=request.remote,
        )
