"""Bind the API on an address, with TLS when a certificate is configured.

    async with serve_api(app, "127.0.0.1:0", None) as served:
        print(served.url)          # http://127.0.0.1:41233 (port 0: the kernel picked it)

Leaving the block stops accepting, lets requests in flight finish (up to
`shutdown_timeout`) and closes every connection.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import structlog
from aiohttp import web

log = structlog.get_logger("gtm.api")


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
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout
    )
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
