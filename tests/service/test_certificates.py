"""Reading an AccessPoint Gateway's certificate from its Secret: what counts as a problem."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from accesspoint_testing import certificate

from gtm.service.certificates import credential_names, not_after


def secret(**data: bytes) -> dict[str, object]:
    return {"data": {k.replace("_", "."): base64.b64encode(v).decode() for k, v in data.items()}}


def test_not_after_reads_the_leaf_of_tls_crt_or_cert(tmp_path: Path) -> None:
    ends = datetime(2027, 3, 1, tzinfo=UTC)
    crt, _ = certificate(tmp_path, "pay.example.com", ends)
    chain = crt.read_bytes() + certificate(tmp_path, "ca", ends + timedelta(days=9))[0].read_bytes()
    assert not_after(secret(tls_crt=chain)) == ends  # the first certificate: the leaf
    assert not_after(secret(cert=crt.read_bytes())) == ends


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ({}, "no tls.crt or cert in the Secret"),
        ({"data": {"tls.crt": "!!not base64!!"}}, "tls.crt is not a PEM certificate"),
        (secret(tls_crt=b"hello"), "tls.crt is not a PEM certificate"),
        (
            secret(tls_crt=b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            "tls.crt is not a PEM certificate",
        ),
    ],
)
def test_a_secret_without_a_readable_certificate_says_why(doc: dict[str, object], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        not_after(doc)


def test_credential_names_of_the_rendered_gateways_once_each() -> None:
    server = {"tls": {"credentialName": "pay-cert"}}
    gateways = [
        {
            "kind": "Gateway",
            "metadata": {"namespace": "pay"},
            "spec": {"servers": [server, server]},
        },
        {"kind": "Gateway", "metadata": {"namespace": "pay"}, "spec": {"servers": [{"tls": {}}]}},
        {"kind": "VirtualService", "metadata": {"namespace": "pay"}, "spec": {"servers": [server]}},
    ]
    assert credential_names(gateways) == [("pay", "pay-cert")]
