"""The API over TLS, with a certificate from a test CA (trustme)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme
from api_members import VIEWER, Members

from gtm.api import TlsError, TokenBook, make_app, serve_api
from gtm.member import MemberRuntime


@dataclass(frozen=True)
class Pair:
    cert: str
    key: str


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def member(tmp_path: Path) -> MemberRuntime:
    """A real member, not started: its API answers status from its config."""
    return MemberRuntime(str(Members(tmp_path / "m").write_config("dc1-a", "http://127.0.0.1:9")))


@pytest.fixture
def pair(ca: trustme.CA, tmp_path: Path) -> Pair:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "api.crt", tmp_path / "api.key"
    cert.private_key_pem.write_to_path(str(key_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(str(cert_path), append=True)
    return Pair(str(cert_path), str(key_path))


async def test_tls_with_a_trusted_ca(
    ca: trustme.CA, pair: Pair, member: MemberRuntime, tokens: TokenBook
) -> None:
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with serve_api(make_app(member, tokens), "127.0.0.1:0", pair) as served:
        assert served.tls and served.url.startswith("https://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            async with session.get(
                served.url + "/v1/status",
                headers={"Authorization": f"Bearer {VIEWER}"},
                ssl=client_ctx,
            ) as r:
                assert r.status == 200
                assert (await r.json())["identity"] == "dc1-a"
            # a client that does not trust the CA is refused by its own TLS check
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with session.get(served.url + "/healthz"):
                    pass
            # plain HTTP to the TLS port gets no HTTP answer
            with pytest.raises(aiohttp.ClientError):
                async with session.get(served.url.replace("https", "http") + "/healthz"):
                    pass


async def test_a_bad_key_names_both_files(
    tmp_path: Path, pair: Pair, member: MemberRuntime, tokens: TokenBook
) -> None:
    bad = Pair(pair.cert, str(tmp_path / "missing.key"))
    with pytest.raises(TlsError, match=r"cannot load cert .*api\.crt with key .*missing\.key"):
        async with serve_api(make_app(member, tokens), "127.0.0.1:0", bad):
            pass
