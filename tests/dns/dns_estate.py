"""The DNS tests' estate, its tables, and a server running in a thread.

Imported by name (`from dns_estate import …`); the fixtures built on these
live in conftest.py.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dns.message
import dns.query

from gtm.config import Inventory, loads
from gtm.dns import Answers, DnsServer
from gtm.what_if import what_if
from policies import Cell, Health, Row, WeightTable

ESTATE = """
regions:
  - {name: dc1, locality: r1/az1, client_cidrs: [127.0.1.0/24, "fd00:1::/48"]}
  - {name: dc2, locality: r2/az1, client_cidrs: [127.0.2.0/24, "fd00:2::/48", 10.2.0.0/16]}
  - {name: dc3, locality: r3/az1, client_cidrs: [127.0.3.0/24, "fd00:3::/48", 10.2.3.0/24]}
policies:
  - {name: default}                                   # 98 local / 1 per remote region
  - {name: pinned, split: {local: 100, remote: 0}}    # always the client's own region
services:
  - name: foo
    fqdn: foo.example.com
    vips:
      dc1: [{address: 127.0.1.1}]
      dc2: [{address: 127.0.2.1}]
      dc3: [{address: 127.0.3.1}]
  - name: pay
    fqdn: pay.example.com
    vips:
      dc1: [{address: 127.0.1.5, weight: 2}, {address: 127.0.1.6, weight: 1}]
      dc2: [{address: 127.0.2.5}]
      dc3: [{address: 127.0.3.5}]
  - name: local
    fqdn: local.example.com
    policy: pinned
    vips:
      dc1: [{address: 127.0.1.10}, {address: "fd00:1::10"}]
      dc2: [{address: 127.0.2.10}, {address: "fd00:2::10"}]
      dc3: [{address: 127.0.3.10}, {address: "fd00:3::10"}]
  - name: alias
    fqdn: alias.example.com
    policy: pinned
    vips:
      dc1: [{address: lb1.cdn.example.net}]
      dc2: [{address: lb2.cdn.example.net}]
      dc3: [{address: lb3.cdn.example.net, ips: [127.0.3.30, "fd00:3::30"]}]
  - name: deep
    fqdn: www.deep.example.com
    vips:
      dc1: [{address: 127.0.1.40}]
  - name: big
    fqdn: big.example.org
    vips:
      dc1: [{address: big.lb.example.net, ips: [BIG_IPS]}]
dns:
  listen: 127.0.0.1:5353
  zones: [example.com, example.org]
  ttl: 30
  default_region: dc1
"""

# 40 AAAA records (40 x 28 octets): more than fits in 512 octets, less than 1232+.
BIG_IPS = ", ".join(f'"fd00:1::{i:x}"' for i in range(1, 41))

# Four records per answer, two disjoint VIP sets per region: a table generation
# serves set "a" (even) or set "b" (odd), so a mixed answer would show.
SWAP_ESTATE = """
regions:
  - {name: dc1, locality: r1/az1, client_cidrs: [127.0.1.0/24]}
  - {name: dc2, locality: r2/az1, client_cidrs: [127.0.2.0/24]}
  - {name: dc3, locality: r3/az1, client_cidrs: [127.0.3.0/24]}
services:
  - name: gen
    fqdn: gen.example.com
    vips:
VIPS
dns: {zones: [example.com], records_per_answer: 4, default_region: dc1}
"""


def swap_vip(region: int, side: str, i: int) -> str:
    return f"10.{region}.{0 if side == 'a' else 1}.{i}"


def swap_text() -> str:
    lines = []
    for r in (1, 2, 3):
        vips = ", ".join(f"{{address: {swap_vip(r, s, i)}}}" for s in "ab" for i in range(1, 5))
        lines.append(f"      dc{r}: [{vips}]")
    return SWAP_ESTATE.replace("VIPS", "\n".join(lines))


def planned(inventory: Inventory) -> WeightTable:
    """The all-healthy table `gtm plan` prints (generation 1)."""
    return what_if(inventory, Health(), [], 0.0).planned.table


def reshaped(table: WeightTable, generation: int, share: Callable[[str, int], int]) -> WeightTable:
    """`table` as generation `generation`, each VIP's share replaced by share(vip_id, old)."""
    rows = {
        service: {
            source: row._replace(
                cells={
                    t: c._replace(vips={v: share(v, s) for v, s in c.vips.items()})
                    for t, c in row.cells.items()
                },
            )
            for source, row in by_source.items()
        }
        for service, by_source in table.rows.items()
    }
    return WeightTable(generation, table.computed_at, rows)


def swap_table(inventory: Inventory, generation: int) -> WeightTable:
    """Generation `generation` of the swap estate: set a when even, set b when odd."""
    third = "0" if generation % 2 == 0 else "1"  # the third octet of the side's VIPs

    def share(vip: str, s: int) -> int:
        return s if vip.split("/")[2].split(".")[2] == third else 0

    return reshaped(planned(inventory), generation, share)


def cells(table: WeightTable, service: str, source: str) -> dict[str, Cell]:
    row: Row | None = table.row(service, source)
    assert row is not None
    return dict(row.cells)


class Running:
    """A DnsServer on its own loop in a thread; blocking clients talk to it."""

    def __init__(self, server: DnsServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop

    @property
    def port(self) -> int:
        return self.server.port

    def swap(self, answers: Answers) -> None:
        asyncio.run_coroutine_threadsafe(_call(self.server.swap, answers), self.loop).result(5)

    def query(
        self, q: dns.message.Message, source: str = "127.0.0.1", **kw: Any
    ) -> dns.message.Message:
        return dns.query.udp(q, "127.0.0.1", port=self.port, source=source, timeout=3, **kw)

    def tcp(self, q: dns.message.Message, source: str = "127.0.0.1") -> dns.message.Message:
        return dns.query.tcp(q, "127.0.0.1", port=self.port, source=source, timeout=3)

    def raw(self, data: bytes, source: str = "127.0.0.1", timeout: float = 1.0) -> bytes | None:
        """Send raw bytes over UDP; the reply's bytes, or None when none comes."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((source, 0))
            s.settimeout(timeout)
            s.sendto(data, ("127.0.0.1", self.port))
            try:
                return s.recv(65535)
            except TimeoutError:
                return None


async def _call(f: Callable[..., Any], *args: Any) -> Any:
    return f(*args)


@contextmanager
def running(inventory: Inventory, table: WeightTable, **kw: Any) -> Iterator[Running]:
    loop = asyncio.new_event_loop()
    started: list[Running] = []
    ready = threading.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        stop = asyncio.Event()
        stopper.append(stop)
        try:
            server = DnsServer(
                inventory.config.dns, Answers.build(inventory, table), ("127.0.0.1", 0), **kw
            )
            async with server:
                started.append(Running(server, loop))
                ready.set()
                await stop.wait()
        except BaseException as e:
            failure.append(e)
            ready.set()
            raise

    stopper: list[asyncio.Event] = []
    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    ready.wait(10)
    if failure:
        thread.join(10)
        loop.close()
        raise failure[0]
    try:
        yield started[0]
    finally:
        loop.call_soon_threadsafe(stopper[0].set)
        thread.join(10)
        loop.close()


def estate() -> Inventory:
    return loads(ESTATE.replace("BIG_IPS", BIG_IPS), "test-estate.yaml")
