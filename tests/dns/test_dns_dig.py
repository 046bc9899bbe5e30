"""The server as `dig` (ISC, Debian's dnsutils) sees it."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from dns_estate import Running

pytestmark = pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed")


def dig(port: int, *args: str) -> str:
    out = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), "+time=2", "+tries=1", *args],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return out.stdout


def test_a_from_the_source_address_row(served: Running) -> None:
    out = dig(served.port, "-b", "127.0.2.1", "local.example.com", "A", "+norec")
    assert "status: NOERROR" in out and "flags: qr aa;" in out
    assert "local.example.com.\t30\tIN\tA\t127.0.2.10" in out
    assert dig(served.port, "-b", "127.0.3.1", "local.example.com", "AAAA", "+short").split() == [
        "fd00:3::10"
    ]


def test_ecs_subnet_and_scope(served: Running) -> None:
    out = dig(served.port, "-b", "127.0.1.1", "+subnet=127.0.3.0/24", "local.example.com")
    assert "CLIENT-SUBNET: 127.0.3.0/24/24" in out
    assert "IN\tA\t127.0.3.10" in out


def test_case_is_echoed(served: Running) -> None:
    out = dig(served.port, "LoCaL.ExAmPlE.CoM", "+noedns")
    assert ";LoCaL.ExAmPlE.CoM.\t\tIN\tA" in out


def test_negative_answers(served: Running) -> None:
    out = dig(served.port, "missing.example.com")
    assert (
        "status: NXDOMAIN" in out and "IN\tSOA\tns1.example.com. hostmaster.example.com. 1" in out
    )
    out = dig(served.port, "foo.example.com", "MX")
    assert "status: NOERROR" in out and "ANSWER: 0, AUTHORITY: 1" in out
    assert "status: REFUSED" in dig(served.port, "www.example.net")
    assert "status: NOTIMP" in dig(served.port, "+opcode=notify", "example.com", "SOA")


def test_edns_version_and_no_edns(served: Running) -> None:
    out = dig(served.port, "+edns=1", "+noednsnegotiation", "foo.example.com")
    assert "status: BADVERS" in out
    out = dig(served.port, "+noedns", "foo.example.com")
    assert "OPT PSEUDOSECTION" not in out and "status: NOERROR" in out
    out = dig(served.port, "+bufsize=4096", "foo.example.com")
    assert "EDNS: version: 0, flags:; udp: 1232" in out


def test_truncated_then_tcp(served: Running) -> None:
    out = dig(served.port, "+noedns", "big.example.org", "AAAA")
    assert "Truncated, retrying in TCP mode" in out
    assert "ANSWER: 40," in out
    out = dig(served.port, "+noedns", "+ignore", "big.example.org", "AAAA")
    assert "flags: qr aa tc rd;" in out and "ANSWER: 0," in out


def test_several_queries_on_one_tcp_connection(served: Running) -> None:
    out = dig(served.port, "+tcp", "+keepopen", "+short", "local.example.com", "example.com", "SOA")
    lines = out.split()
    assert lines[0] == "127.0.1.10" and "ns1.example.com." in lines
