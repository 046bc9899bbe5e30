"""The HTTP API of a member: JSON under `/v1`, `/metrics`, `/healthz`, `/readyz`.

    tokens = await TokenBook.from_config(config.api, inventory, region)   # file or Secret
    app = make_app(member, tokens, registry=member.registry)
    async with serve_api(app, config.api.listen, config.api.tls) as served:
        ...                                            # served.port, served.url

Reads need a viewer token, writes an operator token; the kubelet's and
Prometheus' routes need none. The API depends only on `gtm.api.member.Member`.

The runbook CLI's client lives in `gtm.client` and reads tokens with
`tokens.read_token` on its own, so names here load their module on first
use: a CLI command does not pay for the server's imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gtm.lazy import lazy_names

if TYPE_CHECKING:
    from gtm.api.app import ROUTES, make_app
    from gtm.api.serve import CertPair, Served, TlsError, serve_api, server_tls
    from gtm.api.token_sources import load_tokens, read_token_secret
    from gtm.api.tokens import Grant, Role, TokenBook, TokenFileError, read_token

_HOME = {
    "ROUTES": "gtm.api.app",
    "make_app": "gtm.api.app",
    "load_tokens": "gtm.api.token_sources",
    "read_token_secret": "gtm.api.token_sources",
    "CertPair": "gtm.api.serve",
    "Served": "gtm.api.serve",
    "TlsError": "gtm.api.serve",
    "serve_api": "gtm.api.serve",
    "server_tls": "gtm.api.serve",
    "Grant": "gtm.api.tokens",
    "Role": "gtm.api.tokens",
    "TokenBook": "gtm.api.tokens",
    "TokenFileError": "gtm.api.tokens",
    "read_token": "gtm.api.tokens",
}

__all__ = [
    "ROUTES",
    "CertPair",
    "Grant",
    "Role",
    "Served",
    "TlsError",
    "TokenBook",
    "TokenFileError",
    "load_tokens",
    "make_app",
    "read_token",
    "read_token_secret",
    "serve_api",
    "server_tls",
]


__getattr__, __dir__ = lazy_names(__name__, _HOME)
