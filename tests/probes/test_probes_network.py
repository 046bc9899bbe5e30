"""NetworkProber against real servers on 127.0.0.1: every kind, success and each way to fail."""

from __future__ import annotations

import asyncio
import time

import pytest
from probe_servers import HttpServer, RawServers, TlsServers

from probes import DnsProbe, HttpProbe, NetworkProber, ProbeResult, Target, TcpProbe, TlsProbe
from probes.spec import ProbeSpec

pytestmark = pytest.mark.filterwarnings("error")


def target(port: int, spec: ProbeSpec, address: str = "127.0.0.1") -> Target:
    return Target(f"foo/dc1/{address}:{port}", address, port, spec, "foo", "dc1")


async def probe(port: int, spec: ProbeSpec) -> ProbeResult:
    async with NetworkProber() as prober:
        return await prober.probe(target(port, spec))


async def test_http_ok(http_server: HttpServer) -> None:
    assert await probe(http_server.port, HttpProbe(path="/ok")) == ProbeResult(True, "http 200")


async def test_http_503_fails_with_status(http_server: HttpServer) -> None:
    assert await probe(http_server.port, HttpProbe(path="/fail")) == ProbeResult(False, "http 503")


async def test_http_expected_status_list(http_server: HttpServer) -> None:
    result = await probe(http_server.port, HttpProbe(path="/fail", expect_status=(503,)))
    assert result.ok
    result = await probe(http_server.port, HttpProbe(path="/ok", expect_status=(204,)))
    assert result == ProbeResult(False, "http 200")


async def test_http_body_pattern(http_server: HttpServer) -> None:
    assert (await probe(http_server.port, HttpProbe(path="/body", body=r"status: healthy"))).ok
    result = await probe(http_server.port, HttpProbe(path="/body", body=r"version: 2\."))
    assert result == ProbeResult(False, "body mismatch")


async def test_http_chunked_body(http_server: HttpServer) -> None:
    assert (await probe(http_server.port, HttpProbe(path="/chunked", body="status: healthy"))).ok


async def test_http_host_header(http_server: HttpServer) -> None:
    spec = HttpProbe(path="/host", host="foo.example.com", body="^host=foo.example.com$")
    assert (await probe(http_server.port, spec)).ok
    default = HttpProbe(path="/host", body=f"^host=127.0.0.1:{http_server.port}$")
    assert (await probe(http_server.port, default)).ok


async def test_http_hang_times_out(http_server: HttpServer) -> None:
    started = time.monotonic()
    result = await probe(http_server.port, HttpProbe(path="/hang", timeout=0.3))
    assert result == ProbeResult(False, "timeout")
    assert time.monotonic() - started < 1.5


async def test_http_server_closing_without_answer(raw_servers: RawServers) -> None:
    assert await probe(raw_servers.close, HttpProbe()) == ProbeResult(False, "closed")


async def test_http_garbage_and_truncated(raw_servers: RawServers) -> None:
    result = await probe(raw_servers.garbage, HttpProbe())
    assert not result.ok and result.reason.startswith("http: ")
    result = await probe(raw_servers.truncated, HttpProbe(body="part"))
    assert result == ProbeResult(False, "http: truncated response")


async def test_http_refused(closed_port: int) -> None:
    assert await probe(closed_port, HttpProbe()) == ProbeResult(False, "refused")


async def test_http_new_connection_per_probe(http_server: HttpServer) -> None:
    async with NetworkProber() as prober:
        t = target(http_server.port, HttpProbe(path="/ok"))
        for _ in range(3):
            assert (await prober.probe(t)).ok
    assert len(set(http_server.state.peers)) == 3


async def test_http_keepalive_reuses_and_survives_server_idle_close(
    http_server: HttpServer,
) -> None:
    async with NetworkProber() as prober:
        t = target(http_server.port, HttpProbe(path="/ok", keepalive=True))
        for _ in range(3):
            assert (await prober.probe(t)).ok
        assert len(set(http_server.state.peers)) == 1
        await asyncio.sleep(0.5)  # past the server's keep-alive timeout: it closes the idle one
        assert (await prober.probe(t)).ok
        assert len(set(http_server.state.peers)) == 2


async def test_https_verified_against_ca_bundle(tls_servers: TlsServers) -> None:
    spec = HttpProbe(path="/ok", tls=True, ca_bundle=tls_servers.ca_bundle)
    assert await probe(tls_servers.good, spec) == ProbeResult(True, "http 200")
    sni = HttpProbe(path="/ok", tls=True, ca_bundle=tls_servers.ca_bundle, sni="localhost")
    assert (await probe(tls_servers.good, sni)).ok


async def test_https_failures(tls_servers: TlsServers) -> None:
    bundle = tls_servers.ca_bundle
    expired = await probe(tls_servers.expired, HttpProbe(tls=True, ca_bundle=bundle))
    assert expired == ProbeResult(False, "tls: certificate expired")
    wrong_name = HttpProbe(tls=True, ca_bundle=bundle, sni="bar.example.com")
    assert await probe(tls_servers.good, wrong_name) == ProbeResult(False, "tls: hostname mismatch")
    untrusted = await probe(tls_servers.good, HttpProbe(tls=True))
    assert not untrusted.ok and untrusted.reason.startswith("tls: ")
    unverified = HttpProbe(path="/ok", tls=True, verify_tls=False)
    assert (await probe(tls_servers.expired, unverified)).ok


async def test_https_to_plain_http_port(http_server: HttpServer) -> None:
    result = await probe(http_server.port, HttpProbe(tls=True, verify_tls=False, timeout=1.0))
    assert not result.ok and result.reason.startswith("tls: ")


async def test_tls_probe_records_days_to_expiry(tls_servers: TlsServers) -> None:
    result = await probe(tls_servers.good, TlsProbe(ca_bundle=tls_servers.ca_bundle))
    assert result.ok and result.reason == "tls ok"
    assert result.days_to_expiry is not None and 363 < result.days_to_expiry < 366


async def test_tls_probe_minimum_days(tls_servers: TlsServers) -> None:
    spec = TlsProbe(ca_bundle=tls_servers.ca_bundle, min_days_to_expiry=30)
    result = await probe(tls_servers.expiring, spec)
    assert not result.ok
    assert result.reason.startswith("tls: certificate expires in ")
    assert result.reason.endswith("days (minimum 30)")
    assert result.days_to_expiry is not None and 4 < result.days_to_expiry <= 5
    assert (await probe(tls_servers.good, spec)).ok


async def test_tls_probe_expired_and_bad_bundle(tls_servers: TlsServers, tmp_path: object) -> None:
    expired = await probe(tls_servers.expired, TlsProbe(ca_bundle=tls_servers.ca_bundle))
    assert expired == ProbeResult(False, "tls: certificate expired")
    missing = await probe(tls_servers.good, TlsProbe(ca_bundle="/nonexistent/ca.pem"))
    assert not missing.ok
    assert missing.reason.startswith("tls: cannot load ca_bundle /nonexistent/ca.pem")


async def test_tcp_probe(http_server: HttpServer, closed_port: int) -> None:
    assert await probe(http_server.port, TcpProbe()) == ProbeResult(True, "connected")
    assert await probe(closed_port, TcpProbe()) == ProbeResult(False, "refused")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (DnsProbe(qname="ok.example"), ProbeResult(True, "dns NOERROR")),
        (DnsProbe(qname="ok.example", expect_answer="10.0.0.1"), ProbeResult(True, "dns NOERROR")),
        (
            DnsProbe(qname="ok.example", expect_answer="10.9.9.9"),
            ProbeResult(False, "dns answer mismatch"),
        ),
        (DnsProbe(qname="nope.example"), ProbeResult(False, "dns NXDOMAIN")),
        (
            DnsProbe(qname="nope.example", expect_rcode="nxdomain"),
            ProbeResult(True, "dns NXDOMAIN"),
        ),
        (DnsProbe(qname="fail.example"), ProbeResult(False, "dns SERVFAIL")),
        (DnsProbe(qname="hang.example", timeout=0.2), ProbeResult(False, "timeout")),
    ],
)
async def test_dns_probe(dns_port: int, spec: DnsProbe, expected: ProbeResult) -> None:
    assert await probe(dns_port, spec) == expected


async def test_dns_probe_closed_port(closed_port: int) -> None:
    result = await probe(closed_port, DnsProbe(qname="ok.example", timeout=0.3))
    assert result.reason in ("refused", "timeout")
