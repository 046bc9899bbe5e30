"""Real servers on 127.0.0.1 for the probe tests: HTTP(S) with aiohttp, raw misbehaving
TCP servers, TLS with a test CA (good, expired and soon-expiring certificates), a
closed port, and a small DNS responder."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest
import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class HttpState:
    """What the test HTTP server saw, and what it answers on /switch."""

    switch_status: int = 200
    peers: list[tuple[str, int]] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)


def _app(state: HttpState) -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        state.peers.append(request.transport.get_extra_info("peername")[:2])
        state.hosts.append(request.headers.get("Host", ""))
        return web.Response(text="ok")

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=503, text="unavailable")

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late")

    async def body(request: web.Request) -> web.Response:
        return web.Response(text="status: healthy\nversion: 1.2.3\n")

    async def host(request: web.Request) -> web.Response:
        return web.Response(text=f"host={request.headers.get('Host', '')}")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"sta", b"tus: ", b"healthy"):
            await response.write(part)
        await response.write_eof()
        return response

    async def switch(request: web.Request) -> web.Response:
        return web.Response(status=state.switch_status, text="switch")

    app = web.Application()
    app.add_routes(
        [
            web.get("/ok", ok),
            web.get("/fail", fail),
            web.get("/hang", hang),
            web.get("/body", body),
            web.get("/host", host),
            web.get("/chunked", chunked),
            web.get("/switch", switch),
        ]
    )
    return app


@dataclass
class HttpServer:
    port: int
    state: HttpState


async def _start_http(
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, HttpServer]:
    state = HttpState()
    runner = web.AppRunner(
        _app(state), shutdown_timeout=0.1, access_log=None, keepalive_timeout=0.3
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    return runner, HttpServer(port, state)


@pytest.fixture
async def http_server() -> AsyncIterator[HttpServer]:
    runner, server = await _start_http()
    yield server
    await runner.cleanup()


@dataclass
class TlsMaterial:
    ca_bundle: Path
    good: ssl.SSLContext
    expired: ssl.SSLContext
    expiring: ssl.SSLContext


def _leaf(ca: trustme.CA, directory: Path, name: str, valid: tuple[int, int]) -> ssl.SSLContext:
    """A certificate for 127.0.0.1/localhost signed by the test CA, valid from/to days from now."""
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=valid[0]))
        .not_valid_after(now + datetime.timedelta(days=valid[1]))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    bundle = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return TlsMaterial(
        ca_bundle=bundle,
        good=_leaf(ca, directory, "good", (-1, 365)),
        expired=_leaf(ca, directory, "expired", (-30, -1)),
        expiring=_leaf(ca, directory, "expiring", (-1, 5)),
    )


@dataclass
class TlsServers:
    ca_bundle: str
    good: int
    expired: int
    expiring: int


@pytest.fixture
async def tls_servers(tls_material: TlsMaterial) -> AsyncIterator[TlsServers]:
    started = [
        await _start_http(context)
        for context in (tls_material.good, tls_material.expired, tls_material.expiring)
    ]
    yield TlsServers(str(tls_material.ca_bundle), *(server.port for _, server in started))
    for runner, _ in started:
        await runner.cleanup()


class _RawServer(asyncio.Protocol):
    def __init__(self, on_data: Callable[[asyncio.Transport, bytes], None]) -> None:
        self.on_data = on_data

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.on_data(self.transport, data)  # type: ignore[arg-type]


@dataclass
class RawServers:
    close: int
    garbage: int
    truncated: int


@pytest.fixture
async def raw_servers() -> AsyncIterator[RawServers]:
    """Servers that close without answering, answer garbage, or cut the body short."""
    loop = asyncio.get_running_loop()

    def close(transport: asyncio.Transport, data: bytes) -> None:
        transport.close()

    def garbage(transport: asyncio.Transport, data: bytes) -> None:
        transport.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        transport.close()

    def truncated(transport: asyncio.Transport, data: bytes) -> None:
        transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part")
        transport.close()

    servers = [
        await loop.create_server(lambda h=handler: _RawServer(h), "127.0.0.1", 0)
        for handler in (close, garbage, truncated)
    ]
    yield RawServers(*(server.sockets[0].getsockname()[1] for server in servers))
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _DnsResponder(asyncio.DatagramProtocol):
    """ok.example. A 10.0.0.1; fail.example. SERVFAIL; hang.example. no answer; else NXDOMAIN."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        name = query.question[0].name.to_text()
        if name == "hang.example.":
            return
        response = dns.message.make_response(query)
        if name == "ok.example.":
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "10.0.0.1"))
        elif name == "fail.example.":
            response.set_rcode(dns.rcode.SERVFAIL)
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(response.to_wire(), addr)  # type: ignore[attr-defined]


@pytest.fixture
async def dns_port() -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_DnsResponder, local_addr=("127.0.0.1", 0))
    yield transport.get_extra_info("sockname")[1]
    transport.close()
