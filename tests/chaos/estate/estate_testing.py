"""Shared pieces of the simulated-estate tests: a small estate on loopback addresses of its own.

The VIPs live on `127.61.<region>.<n>` and a free port, and the members' and
clusters' ports in a free block, so the tests run beside a running demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import psutil

from chaos.estate.ports import BLOCK

NET = "127.61"


def _free(host: str, port: int, kind: int = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = f"{NET}.1.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_base() -> int:
    """A base port whose whole `PortPlan.from_base` block is free on 127.0.0.1 (TCP and UDP)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 30000)
        ports = range(base, base + BLOCK)
        if all(_free("127.0.0.1", p) and _free("127.0.0.1", p, socket.SOCK_DGRAM) for p in ports):
            return base
    raise RuntimeError("no free block of ports")


def estate_text(port: int) -> str:
    """Three regions; foo (one VIP per region), bar (two weighted VIPs in dc1), static (no dc2)."""

    def vip(region: int, n: int, weight: int = 1) -> str:
        return f"{{address: {NET}.{region}.{n}, port: {port}, weight: {weight}}}"

    return f"""
regions:
  - {{name: dc1, locality: region01/az01, client_cidrs: [{NET}.1.0/24]}}
  - {{name: dc2, locality: region02/az01, client_cidrs: [{NET}.2.0/24]}}
  - {{name: dc3, locality: region03/az01, client_cidrs: [{NET}.3.0/24]}}
policies:
  - name: default
    split: {{local: 98, remote: 1}}
    guardrails: {{min_active_regions: 2, max_concurrent_exits: 1}}
services:
  - name: foo
    fqdn: foo.example.com
    probe: {{kind: http, path: /healthz, interval: 1s, timeout: 500ms}}
    vips:
      dc1: [{vip(1, 1)}]
      dc2: [{vip(2, 1)}]
      dc3: [{vip(3, 1)}]
  - name: bar
    fqdn: bar.example.com
    probe: {{kind: tcp}}
    vips:
      dc1: [{vip(1, 2, 2)}, {vip(1, 3)}]
      dc2: [{vip(2, 2)}]
      dc3: [{vip(3, 2)}]
  - name: static
    fqdn: static.example.com
    vips:
      dc1: [{vip(1, 9)}]
      dc3: [{vip(3, 9)}]
dns:
  zones: [example.com]
  ttl: 5
ha:
  lease: {{duration: 6s, renew_deadline: 4s, retry_period: 1s}}
"""


def write_estate_file(directory: Path, port: int | None = None) -> Path:
    path = directory / "estate.in.yaml"
    path.write_text(estate_text(port if port is not None else free_port()))
    return path


async def get(url: str, *, within: float = 2.0) -> tuple[int, str, dict[str, str]]:
    """One GET on a fresh connection: (status, body, headers)."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=within)) as session,
        session.get(url) as response,
    ):
        return response.status, await response.text(), dict(response.headers)


async def eventually(check: Callable[[], bool], within: float = 10.0) -> bool:
    """Whether `check()` holds within `within` seconds (polled: what it reads has no event)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def pid_gone(pid: int) -> bool:
    """No such process, or only a zombie left for init to reap."""
    with contextlib.suppress(psutil.NoSuchProcess):
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    return True
