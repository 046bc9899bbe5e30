"""Probe specs, targets and their YAML form: defaults, and every bad input reported clearly."""

from __future__ import annotations

import pytest

from probes import (
    DnsProbe,
    HttpProbe,
    ProbeConfigError,
    Target,
    TcpProbe,
    TlsProbe,
    parse_duration,
    parse_probe_spec,
)


def test_the_yaml_example_builds_an_http_probe() -> None:
    spec = parse_probe_spec(
        {
            "kind": "http",
            "path": "/healthz",
            "host": "foo.example.com",
            "expect_status": [200],
            "body": "ok",
            "verify_tls": True,
            "sni": "foo.example.com",
            "keepalive": False,
            "interval": "5s",
            "timeout": "2s",
            "rise": 2,
            "fall": 3,
        }
    )
    assert spec == HttpProbe(
        path="/healthz",
        host="foo.example.com",
        expect_status=(200,),
        body="ok",
        sni="foo.example.com",
        interval=5.0,
        timeout=2.0,
    )
    assert not spec.tls and spec.scheme == "http"


def test_each_kind_from_yaml() -> None:
    assert parse_probe_spec({"kind": "https", "path": "/"}) == HttpProbe(tls=True)
    assert parse_probe_spec({"kind": "tcp", "interval": "500ms", "timeout": 0.2}) == TcpProbe(
        interval=0.5, timeout=0.2
    )
    tls = parse_probe_spec({"kind": "tls", "ca_bundle": "/etc/ca.pem", "min_days_to_expiry": 14})
    assert tls == TlsProbe(ca_bundle="/etc/ca.pem", min_days_to_expiry=14)
    dns = parse_probe_spec(
        {"kind": "dns", "qname": "foo.example.com", "qtype": "aaaa", "expect_rcode": "noerror"}
    )
    assert dns == DnsProbe(qname="foo.example.com", qtype="AAAA", expect_rcode="NOERROR")


def test_target_kind_labels() -> None:
    spec = HttpProbe(tls=True)
    t = Target("foo/dc1/10.0.0.1:443", "10.0.0.1", 443, spec, "foo", "dc1")
    assert t.kind == "https" and t.is_ip
    assert Target("x", "vip.example.com", 53, DnsProbe(qname="a"), "foo", "dc1").kind == "dns"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("5s", 5.0), ("500ms", 0.5), ("1m", 60.0), ("1.5h", 5400.0), (3, 3.0), ("2", 2.0)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["5 sec", "-1s", "", True, None, "s"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_all_problems_of_a_spec_are_reported_together() -> None:
    with pytest.raises(ProbeConfigError) as caught:
        HttpProbe(
            interval=1.0,
            timeout=2.0,
            rise=0,
            method="GE T",
            path="healthz",
            expect_status=(200, 999),
            body="(unclosed",
        )
    error = caught.value
    fields = [problem.split(":", 1)[0] for problem in error.problems]
    assert fields == ["timeout", "rise", "method", "path", "expect_status", "body"]
    assert "invalid http probe" in str(error)
    assert "timeout: must not exceed the interval 1.0s (got 2.0)" in error.problems


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: TcpProbe(interval=0), "interval"),
        (lambda: TcpProbe(timeout=-1), "timeout"),
        (lambda: TcpProbe(fall=1.5), "fall"),
        (lambda: TlsProbe(min_days_to_expiry=-3), "min_days_to_expiry"),
        (lambda: TlsProbe(ca_bundle=""), "ca_bundle"),
        (lambda: HttpProbe(host="foo bar"), "host"),
        (lambda: HttpProbe(expect_status=(True,)), "expect_status"),
        (lambda: DnsProbe(), "qname"),
        (lambda: DnsProbe(qname="a", qtype="NOPE"), "qtype"),
        (lambda: DnsProbe(qname="a", expect_rcode="WHAT"), "expect_rcode"),
        (lambda: Target("", "10.0.0.1", 80, TcpProbe(), "foo", "dc1"), "id"),
        (lambda: Target("x", "10.0.0.1", 0, TcpProbe(), "foo", "dc1"), "port"),
        (lambda: Target("x", "10.0.0.1", 80, {"kind": "tcp"}, "foo", "dc1"), "spec"),
        (lambda: Target("x", "10.0.0.1", 80, TcpProbe(), "", "dc1"), "service"),
    ],
)
def test_bad_values_name_their_field(build: object, field: str) -> None:
    with pytest.raises(ProbeConfigError) as caught:
        build()  # type: ignore[operator]
    assert caught.value.problems[0].startswith(f"{field}:")


def test_bad_yaml_mappings() -> None:
    with pytest.raises(ProbeConfigError, match="kind: must be one of dns, http, https, tcp, tls"):
        parse_probe_spec({"kind": "icmp"})
    with pytest.raises(ProbeConfigError) as caught:
        parse_probe_spec({"kind": "tcp", "path": "/", "interval": "soon", "tls": True})
    fields = [problem.split(":", 1)[0] for problem in caught.value.problems]
    assert fields == ["path", "interval", "tls"]
    with pytest.raises(ProbeConfigError, match="must be a mapping"):
        parse_probe_spec(["kind", "tcp"])  # type: ignore[arg-type]
    with pytest.raises(ProbeConfigError, match="qname"):
        parse_probe_spec({"kind": "dns"})


def test_specs_are_frozen_and_hashable() -> None:
    spec = HttpProbe(expect_status=[200, 204])  # type: ignore[arg-type]
    assert spec.expect_status == (200, 204)
    assert hash(spec) == hash(HttpProbe(expect_status=(200, 204)))
    with pytest.raises(AttributeError):
        spec.path = "/other"  # type: ignore[misc]
