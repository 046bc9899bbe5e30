"""Bind the API on an address, with TLS when a certificate is configured.

    async with serve_api(app, "127.0.0.1:0", None) as served:
        print(served.url)          # http://127.0.0.1:41233 (port 0: the kernel picked it)

Leaving the block stops accepting, lets requests in flight finish (up to
`shutdown_timeout`) and closes every connection.

A request aiohttp's HTTP parser refuses (a request line or header over
`MAX_LINE` bytes, a control character in a header, too many headers, bytes
that are not HTTP) never reaches the app's middleware: aiohttp answers it
itself, echoing the offending bytes (the first hundred of a too-long
`Authorization` header: the token) in the body and in a logged traceback.
Our connections answer it with the API's JSON error shape and a generic
reason (431 for too long or too many headers, 400 otherwise), log one
`api.bad_http` event with the status and the error's type, and route
aiohttp's own server log through `ServerLog`, which keeps no argument, text
or traceback of a record.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong

from gtm.api.errors import HttpProblem, problem_response

log = structlog.get_logger("gtm.api")

MAX_LINE = 8190  # bytes of the request line, and of one header field (aiohttp's default)
MAX_HEADERS = 128  # header fields of one request


class ServerLog(logging.Logger):
    """aiohttp's server logger for the API's connections: each record becomes an
    `api.server_log` event with aiohttp's message template and the exception's type;
    the record's arguments, the exception's text and the traceback are dropped, as they
    may hold what the client sent."""

    def __init__(self) -> None:
        super().__init__("gtm.api.server", logging.INFO)

    def handle(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        log.log(
            record.levelno,
            "api.server_log",
            message=str(record.msg),
            error=None if error is None else type(error).__name__,
        )


_CONNECTION: dict[str, Any] = {
    "access_log": None,  # `access_log.py` logs each request, without its headers
    "logger": ServerLog(),
    "max_line_size": MAX_LINE,
    "max_field_size": MAX_LINE,
    "max_headers": MAX_HEADERS,
}


def _refusal(exc: BaseException | None, status: int) -> HttpProblem:
    """What to answer for an error aiohttp handles itself: nothing of the request in it."""
    if isinstance(exc, LineTooLong):
        return HttpProblem(
            431, f"bad HTTP request: the request line or a header is over {MAX_LINE} bytes"
        )
    if isinstance(exc, HttpProcessingError) and "Too many headers" in (exc.message or ""):
        return HttpProblem(431, f"bad HTTP request: more than {MAX_HEADERS} headers")
    if isinstance(exc, HttpProcessingError):
        return HttpProblem(400, "bad HTTP request: malformed (not HTTP/1.1 as this API reads it)")
    if status == HTTPStatus.INTERNAL_SERVER_ERROR:
        return HttpProblem(500, "internal error (see the member's log)")
    try:
        return HttpProblem(status, HTTPStatus(status).phrase)
    except ValueError:
        return HttpProblem(status, "error")


def _origin(exc: BaseException) -> str | None:
    """`file:line` where `exc` was raised: enough to find it, none of its text."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None


class _Connection(web.RequestHandler):
    """aiohttp's HTTP/1 connection; only its answer to what it cannot handle differs."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,  # aiohttp's text: it may quote the request; never used
    ) -> web.StreamResponse:
        problem = _refusal(exc, status)
        error = None if exc is None else type(exc).__name__
        if isinstance(exc, HttpProcessingError):
            # not HTTP at all (a scanner, TLS on the plain port) is noise: debug, as aiohttp
            emit = log.debug if isinstance(exc, BadHttpMethod) else log.info
            emit("api.bad_http", status=problem.status, error=error, remote=request.remote)
        else:
            where = None if exc is None else _origin(exc)
            log.error("api.unhandled", status=problem.status, error=error, where=where)
        if request.writer.output_size > 0:  # an answer was begun: the connection is broken
            raise ConnectionError("an answer was sent already; cannot send the error")
        response = problem_response(problem)
        response.force_close()
        return response


class _Server(web.Server):
    """aiohttp's server, making `_Connection`s."""

    def __init__(
        self, handler: Any, *, request_factory: Any, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__(handler, request_factory=request_factory, loop=loop, **_CONNECTION)
        self._connection_loop = loop

    def __call__(self) -> web.RequestHandler:
        return _Connection(self, loop=self._connection_loop, **_CONNECTION)


class _Runner(web.AppRunner):
    """aiohttp's runner of an app, serving it through `_Server`."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # starts and freezes the app, as aiohttp does
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            loop=asyncio.get_running_loop(),
        )


class CertPair(Protocol):
    """A certificate chain and its key, as PEM files (`gtm.config.model.TlsConfig`)."""

    @property
    def cert(self) -> str: ...

    @property
    def key(self) -> str: ...


class TlsError(ValueError):
    """The certificate or key cannot be loaded; names both files."""


@dataclass(frozen=True, slots=True)
class Served:
    host: str
    port: int  # the bound port (the kernel's pick when asked for 0)
    tls: bool

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


def server_tls(pair: CertPair) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(pair.cert, pair.key)
    except (OSError, ssl.SSLError) as e:
        raise TlsError(f"api.tls: cannot load cert {pair.cert} with key {pair.key}: {e}") from e
    return context


def split_address(listen: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(listen, tuple):
        return listen
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{listen!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


@asynccontextmanager
async def serve_api(
    app: web.Application,
    listen: str | tuple[str, int],
    tls: CertPair | ssl.SSLContext | None = None,
    *,
    shutdown_timeout: float = 5.0,
) -> AsyncIterator[Served]:
    host, port = split_address(listen)
    context = tls if isinstance(tls, ssl.SSLContext) or tls is None else server_tls(tls)
    runner = _Runner(app, handle_signals=False, shutdown_timeout=shutdown_timeout, **_CONNECTION)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=context)
        await site.start()
        bound = runner.addresses[0]
        served = Served(host, int(bound[1]), context is not None)
        log.info("api.start", url=served.url)
        yield served
    finally:
        await runner.cleanup()
        log.info("api.stop", host=host, port=port)
