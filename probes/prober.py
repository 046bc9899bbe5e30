"""The prober: the transport the scheduler calls to probe one target.

`Prober` is the interface (tests hand in fakes); `NetworkProber` does real
I/O for every kind, enforces the spec's timeout, and turns every failure into
a `ProbeResult` with a short reason instead of an exception.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from typing import Protocol

import dns.exception

from probes.clock import Clock, SystemClock
from probes.dns_probe import DnsChecker
from probes.http_probe import ConnectionClosed, HttpChecker
from probes.httpwire import HttpWireError
from probes.observation import ProbeResult
from probes.spec import DnsProbe, HttpProbe, Target, TcpProbe, TlsProbe
from probes.tls_probe import ProbeSetupError, TlsChecker, TlsContexts, tls_failure_reason

_TIMEOUT = ProbeResult(False, "timeout")
_REFUSED = ProbeResult(False, "refused")
_CONNECTED = ProbeResult(True, "connected")
_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL}


class Prober(Protocol):
    """Probes one target and returns within its spec's timeout; never raises for a failed probe."""

    async def probe(self, target: Target) -> ProbeResult: ...

    def forget(self, target_id: str) -> None:
        """The target is gone or changed: drop anything kept for it (idle connections)."""
        ...


class NetworkProber:
    """HTTP(S), TCP, TLS and DNS probes over the network.

    Use `async with NetworkProber() as prober:` (or call `close()`) so idle
    keepalive connections are closed at the end.
    """

    def __init__(self, *, clock: Clock | None = None, max_body: int = 65536) -> None:
        contexts = TlsContexts()
        self._http = HttpChecker(contexts, max_body=max_body)
        self._tls = TlsChecker(contexts, clock or SystemClock())
        self._dns = DnsChecker()

    async def __aenter__(self) -> NetworkProber:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def forget(self, target_id: str) -> None:
        self._http.forget(target_id)

    async def probe(self, target: Target) -> ProbeResult:
        spec = target.spec
        try:
            async with asyncio.timeout(spec.timeout):
                if isinstance(spec, HttpProbe):
                    return await self._http.probe(target, spec)
                if isinstance(spec, TcpProbe):
                    return await self._tcp(target)
                if isinstance(spec, TlsProbe):
                    return await self._tls.probe(target, spec)
                if isinstance(spec, DnsProbe):
                    return await self._dns.probe(target, spec)
                return ProbeResult(False, f"error: unknown probe kind {type(spec).__name__}")
        except TimeoutError:
            return _TIMEOUT
        except Exception as exc:
            return failure(exc)

    async def _tcp(self, target: Target) -> ProbeResult:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(asyncio.Protocol, target.address, target.port)
        transport.close()
        return _CONNECTED


def failure(exc: BaseException) -> ProbeResult:
    """The result for a probe that raised `exc`: a reason from the fixed vocabulary."""
    return ProbeResult(False, failure_reason(exc))


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, ProbeSetupError):
        return str(exc)
    if isinstance(exc, ssl.SSLError):
        return tls_failure_reason(exc)
    if isinstance(exc, ConnectionClosed):
        return "http: truncated response" if exc.partial else "closed"
    if isinstance(exc, HttpWireError):
        return f"http: {exc}"
    if isinstance(exc, dns.exception.Timeout | TimeoutError):
        return "timeout"
    if isinstance(exc, dns.exception.DNSException):
        return f"dns: {type(exc).__name__}"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "reset"
    if isinstance(exc, socket.gaierror):
        return f"resolve: {exc.strerror or exc}"
    if isinstance(exc, OSError):
        if exc.errno in _UNREACHABLE:
            return "unreachable"
        return f"error: {exc.strerror or exc}"
    return f"error: {type(exc).__name__}: {exc}"
