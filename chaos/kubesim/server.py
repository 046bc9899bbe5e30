"""The aiohttp application of the simulated API server: routes and middleware.

Request path: the error middleware turns every failure into a `Status`
body; the fault middleware classifies API requests by verb and resource,
applies the injected faults and marks the request for the stats, which count
each response as its headers go out (watches included, when they start).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from chaos.kubesim import discovery, openapi
from chaos.kubesim.api import ResourceApi, reply
from chaos.kubesim.control import Control
from chaos.kubesim.errors import (
    ApiError,
    internal_error,
    method_not_allowed,
    request_entity_too_large,
    unknown_path,
)
from chaos.kubesim.faults import FaultInjector
from chaos.kubesim.request import read_verb, resolve
from chaos.kubesim.stats import RequestStats
from chaos.kubesim.store import Store
from chaos.kubesim.watchstream import WatchSettings, WatchStreamer

log = structlog.get_logger(__name__)

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's limit on request bodies
# (verb, resource) of an API request, for the stats.
KUBE_REQUEST: web.RequestKey[tuple[str, str]] = web.RequestKey("kube_request", tuple)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_NAMESPACED = "/namespaces/{namespace}/{plural}"
RESOURCE_ROUTES = (
    # a namespace's subresources first: /api/v1/namespaces/x/status is not a collection
    "/api/{version:v1}/{plural:namespaces}/{name}/{subresource:status|finalize}",
    "/api/{version:v1}/{plural}",
    "/api/{version:v1}" + _NAMESPACED,
    "/api/{version:v1}" + _NAMESPACED + "/{name}",
    "/api/{version:v1}" + _NAMESPACED + "/{name}/{subresource}",
    "/apis/{group}/{version}/{plural}",
    "/apis/{group}/{version}" + _NAMESPACED,
    "/apis/{group}/{version}" + _NAMESPACED + "/{name}",
    "/apis/{group}/{version}" + _NAMESPACED + "/{name}/{subresource}",
    # cluster-scoped objects (Namespace), after the namespaced paths they overlap
    "/api/{version:v1}/{plural}/{name}",
    "/api/{version:v1}/{plural}/{name}/{subresource}",
    "/apis/{group}/{version}/{plural}/{name}",
    "/apis/{group}/{version}/{plural}/{name}/{subresource}",
)
_SUBRESOURCE_VERBS = ("get", "update", "patch")
_ALL_NAMESPACES_VERBS = ("list", "watch", "deletecollection")


def _error_response(error: ApiError) -> web.Response:
    response = reply(error.status(), status=error.code)
    for name, value in error.headers:
        response.headers[name] = value
    return response


@web.middleware
async def status_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return _error_response(error)
    except web.HTTPException as error:
        match error.status:
            case 404:
                return _error_response(unknown_path())
            case 405:
                return _error_response(method_not_allowed(request.method))
            case 413:
                return _error_response(request_entity_too_large(MAX_BODY))
        return _error_response(ApiError(error.status, error.reason, error.text or error.reason))
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as error:  # a bug in the simulator: answer like the apiserver would
        log.exception("kubesim.handler_failed", path=request.path)
        return _error_response(internal_error(f"{type(error).__name__}: {error}"))


class ApiServer:
    """Builds the web application over one store, fault injector and stats."""

    def __init__(
        self,
        store: Store,
        faults: FaultInjector,
        stats: RequestStats,
        settings: WatchSettings,
        server_address: Callable[[], str],
    ) -> None:
        self.store = store
        self.faults = faults
        self.stats = stats
        self.api = ResourceApi(store)
        self.watches = WatchStreamer(store, faults, settings)
        self.control = Control(store, faults, stats)
        self._server_address = server_address

    def application(self) -> web.Application:
        app = web.Application(
            middlewares=[status_errors, self._inject_faults], client_max_size=MAX_BODY
        )
        app.on_response_prepare.append(self._count)
        app.on_shutdown.append(self._end_watches)
        router = app.router
        # The generated client asks for discovery with a trailing slash (`/version/`).
        for path, handler in (
            ("/version", self._static(discovery.VERSION)),
            ("/api", self._api_versions),
            ("/api/v1", self._core_resources),
            ("/apis", self._groups),
            ("/apis/{group}", self._group),
            ("/apis/{group}/{version}", self._group_resources),
        ):
            router.add_get(path, handler)
            router.add_get(path + "/", handler)
        router.add_get("/openapi/v2", self._openapi_v2)
        router.add_get("/openapi/v3", self._openapi_v3_root)
        router.add_get("/openapi/v3/", self._openapi_v3_root)
        router.add_get("/openapi/v3/{key:.+}", self._openapi_v3)
        for path in RESOURCE_ROUTES:
            router.add_route("*", path, self._resource)
        self.control.add_routes(router)
        return app

    # -- API resources --------------------------------------------------------

    @web.middleware
    async def _inject_faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        match = request.match_info
        if "plural" not in match:
            return await handler(request)
        label = match["plural"] + (f"/{match['subresource']}" if "subresource" in match else "")
        request[KUBE_REQUEST] = ("unknown", label)
        verb = read_verb(request.method, match, request.query)
        request[KUBE_REQUEST] = (verb, label)
        verdict = self.faults.judge(verb, label)
        if verdict.delay > 0:
            await asyncio.sleep(verdict.delay)
        if verdict.error is not None:
            raise verdict.error
        return await handler(request)

    async def _end_watches(self, app: web.Application) -> None:
        """Runs once the listener is closed: open watch streams end so shutdown need not wait."""
        self.store.hub.drop_all("shutdown")

    async def _count(self, request: web.Request, response: web.StreamResponse) -> None:
        if (kube := request.get(KUBE_REQUEST)) is not None:
            self.stats.record(kube[0], kube[1], response.status)

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        target = resolve(self.store.resources, request.match_info)
        verb = request[KUBE_REQUEST][0]
        if target.subresource and verb not in _SUBRESOURCE_VERBS:
            raise method_not_allowed(request.method)
        if target.namespace is None and verb not in _ALL_NAMESPACES_VERBS:
            raise method_not_allowed(request.method)
        match verb:
            case "get":
                return await self.api.get(target, request)
            case "list":
                return await self.api.list(target, request)
            case "watch":
                return await self.watches.watch(target, request)
            case "create":
                return await self.api.create(target, request)
            case "update":
                return await self.api.update(target, request)
            case "patch":
                return await self.api.patch(target, request)
            case "delete":
                return await self.api.delete(target, request)
            case "deletecollection":
                return await self.api.delete_collection(target, request)
        raise method_not_allowed(request.method)

    # -- OpenAPI --------------------------------------------------------------

    async def _openapi_v2(self, request: web.Request) -> web.StreamResponse:
        accept = request.headers.get("Accept", "")
        if openapi.V2_PROTOBUF in accept:
            return web.Response(body=openapi.v2_protobuf(), content_type=openapi.V2_PROTOBUF_TYPE)
        if accept and "json" not in accept and "*/*" not in accept:
            raise ApiError(406, "NotAcceptable", f"only application/json is served, not {accept}")
        return reply(openapi.v2_document(self.store.resources))

    async def _openapi_v3_root(self, request: web.Request) -> web.StreamResponse:
        return reply(openapi.v3_root(self.store.resources))

    async def _openapi_v3(self, request: web.Request) -> web.StreamResponse:
        document = openapi.v3_document(self.store.resources, request.match_info["key"])
        if document is None:
            raise unknown_path()
        response = reply(document)
        if request.query.get("hash"):
            response.headers["Cache-Control"] = "public, immutable"
        return response

    # -- discovery ------------------------------------------------------------

    @staticmethod
    def _static(body: dict[str, str]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return reply(body)

        return handler

    async def _api_versions(self, request: web.Request) -> web.StreamResponse:
        return reply(discovery.api_versions(self._server_address()))

    async def _core_resources(self, request: web.Request) -> web.StreamResponse:
        return reply(discovery.resource_list(self.store.resources, "", "v1"))

    async def _groups(self, request: web.Request) -> web.StreamResponse:
        return reply(discovery.group_list(self.store.resources))

    async def _group(self, request: web.Request) -> web.StreamResponse:
        return reply(discovery.group(self.store.resources, request.match_info["group"]))

    async def _group_resources(self, request: web.Request) -> web.StreamResponse:
        match = request.match_info
        return reply(
            discovery.resource_list(self.store.resources, match["group"], match["version"])
        )
