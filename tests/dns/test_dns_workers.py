"""`--workers N`: processes sharing one port answer, and all serve the published generation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dns.asyncquery
import dns.message
from dns_estate import planned, reshaped

from gtm.config import Inventory
from gtm.dns import DnsWorkers


async def soa_serials(port: int, n: int) -> list[int]:
    """SOA serials (= generations) seen by n queries, each from a fresh source port.

    SO_REUSEPORT spreads sources by their address and port, so n fresh
    sockets reach every worker with overwhelming probability.
    """

    async def one() -> int:
        q = dns.message.make_query("example.com", "SOA")
        r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=3)
        return int(r.answer[0][0].serial)

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def test_workers_share_the_port_and_the_generation(
    estate_file: Path, inventory: Inventory
) -> None:
    table = planned(inventory)
    pool = DnsWorkers(2, estate_file, table, listen=("127.0.0.1", 0), use_uvloop=False)
    async with pool:
        assert pool.port > 0 and len(set(pool.pids)) == 2
        assert pool.generation == table.generation
        assert set(await soa_serials(pool.port, 40)) == {table.generation}
        r = await dns.asyncquery.udp(
            dns.message.make_query("local.example.com", "A"),
            "127.0.0.1",
            port=pool.port,
            source="127.0.3.4",
            timeout=3,
        )
        assert r.answer[0][0].address == "127.0.3.10"

        # Publish generation 7 with local's dc3 IPv4 VIP down: every worker serves it.
        newer = reshaped(table, 7, lambda vip, s: 0 if vip == "local/dc3/127.0.3.10:443" else s)
        await pool.publish(newer)
        assert pool.generation == 7
        assert set(await soa_serials(pool.port, 40)) == {7}
        for _ in range(5):
            r = await dns.asyncquery.udp(
                dns.message.make_query("local.example.com", "A"),
                "127.0.0.1",
                port=pool.port,
                source="127.0.3.4",
                timeout=3,
            )
            assert r.answer[0][0].address != "127.0.3.10"

        stats = await pool.stats()
        assert set(stats) == {"worker-0", "worker-1"}
        assert all(s.generation == 7 and s.total > 0 for s in stats.values())
    assert pool.returncodes == [0, 0]


async def test_workers_take_an_inventory_object(inventory: Inventory) -> None:
    table = planned(inventory)
    async with DnsWorkers(1, inventory, table, listen=("127.0.0.1", 0)) as pool:
        assert set(await soa_serials(pool.port, 5)) == {table.generation}
