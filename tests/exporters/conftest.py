"""Fixtures of the exporter tests: a real PowerDNS on loopback, an estate, a flaky proxy.

`pdns_server` starts one `pdns_server` (gsqlite3 backend, API and LUA
records on, ECS processing on, caches off) for the session and stops it at
the end; `pdns` hands it to a test with every zone deleted. A pdns that
cannot start fails the test with its own output: nothing is skipped.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import dns.asyncquery
import dns.edns
import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest
from aiohttp import web

from gtm.config import Inventory, loads
from gtm.exporters import PowerDnsClient, PowerDnsExporter, RetryPolicy

API_KEY = "gtm-test-key"
SCHEMAS = (
    Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"),
    Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql"),
)
FAST_RETRY = RetryPolicy(attempts=3, initial=0.01, maximum=0.05)

ESTATE = """
regions:
  - {{name: dc1, locality: region01/az01, client_cidrs: [127.0.1.0/24, "fd00:1::/48"]}}
  - {{name: dc2, locality: region02/az01, client_cidrs: [127.0.2.0/24, "fd00:2::/48"]}}
  - {{name: dc3, locality: region03/az01, client_cidrs: [127.0.3.0/24, "fd00:3::/48"]}}
policies:
  - {{name: default, total: 100, split: {{local: 98, remote: 1}}}}
  - name: spread
    total: 100
    matrix:
      dc1: {{dc1: 50, dc2: 30, dc3: 20}}
      dc2: {{dc1: 20, dc2: 50, dc3: 30}}
      dc3: {{dc1: 30, dc2: 20, dc3: 50}}
services:
  - name: foo
    fqdn: foo.example.com
    vips:
      dc1: [{{address: 127.0.1.1}}]
      dc2: [{{address: 127.0.2.1}}]
      dc3: [{{address: 127.0.3.1}}]
  - name: pay
    fqdn: pay.example.com
    policy: spread
    vips:
      dc1: [{{address: 127.0.1.5, weight: 2}}, {{address: 127.0.1.6}}]
      dc2: [{{address: 127.0.2.5}}]
      dc3: [{{address: 127.0.3.5}}]
  - name: dual
    fqdn: dual.example.com
    vips:
      dc1: [{{address: 127.0.1.8}}, {{address: "fd00:1::8"}}]
      dc2: [{{address: 127.0.2.8}}, {{address: "fd00:2::8"}}]
      dc3: [{{address: 127.0.3.8}}]
  - name: edge
    fqdn: edge.example.com
    vips:
      dc1: [{{address: edge-dc1.cdn.example.net, ips: [127.0.1.10]}}]
      dc2: [{{address: edge-dc2.cdn.example.net, ips: [127.0.2.10]}}]
      dc3: [{{address: edge-dc3.cdn.example.net, ips: [127.0.3.10]}}]
  - name: cdn
    fqdn: cdn.example.com
    vips:
      dc1: [{{address: dc1.cdn.example.net}}]
      dc2: [{{address: dc2.cdn.example.net}}]
      dc3: [{{address: dc3.cdn.example.net}}]
dns:
  zones: [example.com]
  ttl: 30
  default_region: dc1
  nameservers: [ns1.example.com, ns2.example.com]
  powerdns: {{url: "{url}", api_key: {key}}}
safety:
  max_row_change_share: 0.3
"""


@dataclass(frozen=True)
class PdnsServer:
    api_url: str
    api_key: str
    dns_port: int
    log: Path

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A blocking API call (for test setup and inspection, not the code under test)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.api_url}/api/v1/servers/localhost{path}",
            data=data,
            method=method,
            headers={"X-API-Key": self.api_key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            text = resp.read().decode()
        return json.loads(text) if text.strip() else None

    def rrsets(self, zone: str = "example.com.") -> dict[tuple[str, str], list[str]]:
        doc = self.api("GET", f"/zones/{zone}")
        return {
            (r["name"], r["type"]): sorted(x["content"] for x in r["records"])
            for r in doc["rrsets"]
        }


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def _schema() -> str:
    for path in SCHEMAS:
        if path.exists():
            return path.read_text(encoding="utf-8")
    pytest.fail(f"PowerDNS sqlite schema not found at {SCHEMAS}: run scripts/setup")


def _dns_answers(port: int) -> None:
    """Raise unless PowerDNS answers a DNS query (any rcode) on `port`."""
    query = dns.message.make_query("gtm-ready.invalid.", "SOA")
    dns.query.udp(query, "127.0.0.1", port=port, timeout=0.2)


@pytest.fixture(scope="session")
def pdns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PdnsServer]:
    binary = shutil.which("pdns_server") or (
        "/usr/sbin/pdns_server" if Path("/usr/sbin/pdns_server").exists() else None
    )
    if binary is None:
        pytest.fail("pdns_server is not installed (Debian pdns-server): run scripts/setup")
    work = tmp_path_factory.mktemp("pdns")
    db = work / "pdns.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.executescript(_schema())
    api_port, dns_port = _free_port(), _free_port()
    log = work / "pdns.log"
    args = [
        binary,
        "--no-config",
        "--guardian=no",
        "--daemon=no",
        "--disable-syslog",
        "--write-pid=no",
        f"--socket-dir={work}",
        "--launch=gsqlite3",
        f"--gsqlite3-database={db}",
        "--api=yes",
        f"--api-key={API_KEY}",
        "--webserver=yes",
        "--webserver-address=127.0.0.1",
        f"--webserver-port={api_port}",
        "--webserver-allow-from=127.0.0.0/8",
        "--local-address=127.0.0.1",
        f"--local-port={dns_port}",
        "--enable-lua-records=yes",
        "--edns-subnet-processing=yes",
        "--security-poll-suffix=",  # no secpoll lookup: this machine reaches nothing outside
        "--cache-ttl=0",
        "--query-cache-ttl=0",
        "--negquery-cache-ttl=0",
        "--loglevel=6",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    server = PdnsServer(f"http://127.0.0.1:{api_port}", API_KEY, dns_port, log)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"pdns_server exited with {proc.returncode}:\n{log.read_text(errors='replace')}"
                )
            try:
                server.api("GET", "")
                _dns_answers(dns_port)  # the API answers before the DNS threads are up
                break
            except (urllib.error.URLError, OSError, dns.exception.Timeout):
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"pdns_server API did not answer in 20 s:\n"
                        f"{log.read_text(errors='replace')}"
                    )
                time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def pdns(pdns_server: PdnsServer) -> PdnsServer:
    """The session's PowerDNS with no zone in it."""
    for zone in pdns_server.api("GET", "/zones"):
        pdns_server.api("DELETE", f"/zones/{zone['id']}")
    return pdns_server


def _estate(url: str = "http://127.0.0.1:9", key: str = API_KEY) -> Inventory:
    return loads(ESTATE.format(url=url, key=key), "estate.yaml")


@pytest.fixture
def estate_text() -> Callable[[str], str]:
    """The estate config's YAML text for a PowerDNS URL."""
    return lambda url: ESTATE.format(url=url, key=API_KEY)


@pytest.fixture
def inventory(pdns: PdnsServer) -> Inventory:
    return _estate(pdns.api_url)


@pytest.fixture
def offline_inventory() -> Inventory:
    """The estate, pointing at no server (for the pure tests)."""
    return _estate()


@pytest.fixture
async def exporter(pdns: PdnsServer) -> AsyncIterator[PowerDnsExporter]:
    client = PowerDnsClient(pdns.api_url, api_key=pdns.api_key, retry=FAST_RETRY)
    async with PowerDnsExporter(client) as exp:
        yield exp


# -- a flaky proxy in front of PowerDNS --------------------------------------------------


@dataclass
class FlakyProxy:
    """Forwards to PowerDNS; fails requests on demand; records every request it got."""

    target: str
    url: str = ""
    seen: list[tuple[str, str, Any]] = field(default_factory=list)  # method, path, body
    faults: list[tuple[str | None, int | str]] = field(default_factory=list)

    def fail_next(self, *faults: int | str, method: str | None = None) -> None:
        """Fail the next requests (of `method`, else any) with these, in order.

        A fault is an HTTP status, "drop" (close the connection, PowerDNS never
        sees the request) or "lost" (PowerDNS does it, the reply is dropped).
        """
        self.faults.extend((method, f) for f in faults)

    def take_fault(self, method: str) -> int | str | None:
        if self.faults and self.faults[0][0] in (None, method):
            return self.faults.pop(0)[1]
        return None

    def methods(self) -> list[str]:
        return [m for m, _, _ in self.seen]

    def patches(self) -> list[Any]:
        return [body for m, _, body in self.seen if m == "PATCH"]


@pytest.fixture
async def proxy(pdns: PdnsServer) -> AsyncIterator[FlakyProxy]:
    state = FlakyProxy(pdns.api_url)
    upstream = aiohttp.ClientSession()

    async def handle(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        state.seen.append((request.method, request.path_qs, body))
        fault = state.take_fault(request.method)
        if fault in ("drop", "lost"):
            if fault == "lost":  # PowerDNS does it, but the reply never reaches the client
                async with upstream.request(
                    request.method,
                    state.target + request.path_qs,
                    data=raw or None,
                    headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
                ) as resp:
                    await resp.read()
            assert request.transport is not None
            request.transport.close()  # the client sees the connection end with no reply
            return web.Response(status=500)
        if fault is not None:
            if fault == 422:
                return web.json_response(
                    {"error": "RRset foo.example.com. IN LUA: Conflicts with pre-existing RRset"},
                    status=422,
                )
            return web.Response(status=int(fault), text="injected by the test proxy")
        async with upstream.request(
            request.method,
            state.target + request.path_qs,
            data=raw or None,
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        ) as resp:
            return web.Response(
                status=resp.status,
                body=await resp.read(),
                content_type=resp.content_type,
            )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()
        await upstream.close()


@pytest.fixture
async def via_proxy(proxy: FlakyProxy, pdns: PdnsServer) -> AsyncIterator[PowerDnsExporter]:
    """An exporter whose API calls go through the flaky proxy."""
    client = PowerDnsClient(proxy.url, api_key=pdns.api_key, retry=FAST_RETRY)
    async with PowerDnsExporter(client) as exp:
        yield exp


# -- DNS queries -------------------------------------------------------------------------


@pytest.fixture
def ask(pdns: PdnsServer) -> Callable[..., Any]:
    """`await ask(name, rdtype, subnet=None, source=None)` -> the answer's texts (dnspython)."""

    async def query(
        name: str, rdtype: str = "A", *, subnet: str | None = None, source: str | None = None
    ) -> list[str]:
        options: list[dns.edns.Option] = []
        if subnet is not None:
            address, _, bits = subnet.partition("/")
            options.append(dns.edns.ECSOption(address, int(bits)))
        msg = dns.message.make_query(
            name, dns.rdatatype.from_text(rdtype), use_edns=0, options=options
        )
        reply = await dns.asyncquery.udp(
            msg, "127.0.0.1", port=pdns.dns_port, timeout=2, source=source
        )
        return [rd.to_text() for rrset in reply.answer for rd in rrset]

    return query


@pytest.fixture
def dig(pdns: PdnsServer) -> Callable[..., list[str]]:
    """`dig(*args)`: `dig +short` against the test PowerDNS; the answer lines."""

    def run(*args: str) -> list[str]:
        out = subprocess.run(
            ["dig", "+short", "+tries=1", "+time=2", "@127.0.0.1", "-p", str(pdns.dns_port), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return [line for line in out.stdout.splitlines() if line]

    return run
