"""Table swaps under load: every answer belongs to exactly one generation, none is lost."""

from __future__ import annotations

import asyncio

import dns.asyncquery
import dns.message
from dns_estate import swap_table, swap_vip

from gtm.config import Inventory
from gtm.dns import Answers, DnsServer

SET_A = {swap_vip(r, "a", i) for r in (1, 2, 3) for i in range(1, 5)}
SET_B = {swap_vip(r, "b", i) for r in (1, 2, 3) for i in range(1, 5)}


async def test_answers_never_mix_generations(swap_inventory: Inventory) -> None:
    inv = swap_inventory
    generations = range(2, 42)
    built = {g: Answers.build(inv, swap_table(inv, g)) for g in generations}
    server = DnsServer(inv.config.dns, built[2], ("127.0.0.1", 0))
    seen: dict[str, int] = {"a": 0, "b": 0}
    mixed: list[set[str]] = []
    done = asyncio.Event()

    async def client(source: str) -> int:
        n = 0
        while not done.is_set():
            q = dns.message.make_query("gen.example.com", "A")
            r = await dns.asyncquery.udp(q, "127.0.0.1", port=server.port, source=source, timeout=2)
            got = {x.address for rrset in r.answer for x in rrset}
            assert len(got) == 4  # records_per_answer distinct records
            if got <= SET_A:
                seen["a"] += 1
            elif got <= SET_B:
                seen["b"] += 1
            else:
                mixed.append(got)
            n += 1
        return n

    async with server:
        async with asyncio.TaskGroup() as tasks:
            clients = [tasks.create_task(client(f"127.0.{1 + i % 3}.{10 + i}")) for i in range(24)]
            for g in generations[1:]:
                await asyncio.sleep(0.01)
                server.swap(built[g])
                assert server.generation == g
            await asyncio.sleep(0.01)
            done.set()
    answered = sum(c.result() for c in clients)
    assert not mixed, mixed[:3]
    assert answered > 400 and seen["a"] > 50 and seen["b"] > 50
    # Every query was counted by exactly one generation's tally.
    assert server.metrics.snapshot().total == answered


async def test_swap_changes_the_soa_serial_and_the_answers(swap_inventory: Inventory) -> None:
    inv = swap_inventory
    async with DnsServer(
        inv.config.dns, Answers.build(inv, swap_table(inv, 2)), ("127.0.0.1", 0)
    ) as s:
        for g, expected in ((2, SET_A), (3, SET_B), (4, SET_A)):
            s.swap(Answers.build(inv, swap_table(inv, g)))
            soa = await dns.asyncquery.udp(
                dns.message.make_query("example.com", "SOA"), "127.0.0.1", port=s.port, timeout=2
            )
            assert soa.answer[0][0].serial == g
            r = await dns.asyncquery.udp(
                dns.message.make_query("gen.example.com", "A"), "127.0.0.1", port=s.port, timeout=2
            )
            assert {x.address for x in r.answer[0]} <= expected
