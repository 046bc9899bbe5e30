"""Fixtures of the probe tests: real servers on 127.0.0.1 (see probe_servers.py)."""

from probe_servers import (  # noqa: F401
    closed_port,
    dns_port,
    http_server,
    raw_servers,
    tls_material,
    tls_servers,
)
