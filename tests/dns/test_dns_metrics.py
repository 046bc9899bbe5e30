"""Counters: queries by qtype and rcode, answers by service and region, the generation."""

from __future__ import annotations

import dns.asyncquery
import dns.message
from dns_estate import planned, reshaped
from prometheus_client import CollectorRegistry, generate_latest

from gtm.config import Inventory
from gtm.dns import Answers, DnsCollector, DnsServer


async def ask(port: int, name: str, rdtype: str = "A", source: str = "127.0.0.1") -> None:
    q = dns.message.make_query(name, rdtype)
    await dns.asyncquery.udp(q, "127.0.0.1", port=port, source=source, timeout=2)


async def test_counters_survive_swaps_and_export_on_scrape(inventory: Inventory) -> None:
    table = planned(inventory)
    server = DnsServer(inventory.config.dns, Answers.build(inventory, table), ("127.0.0.1", 0))
    registry = CollectorRegistry()
    registry.register(DnsCollector(lambda: {"main": server.metrics.snapshot()}))
    async with server:
        for _ in range(3):
            await ask(server.port, "local.example.com", source="127.0.2.1")
        await ask(server.port, "nope.example.com")
        await ask(server.port, "example.net")
        server.swap(Answers.build(inventory, reshaped(table, 5, lambda v, s: s)))
        await ask(server.port, "local.example.com", "AAAA", source="127.0.3.1")
        await ask(server.port, "foo.example.com", "TXT")
    snap = server.metrics.snapshot()
    assert snap.generation == 5
    assert snap.queries[(1, 0)] == 3  # A, NOERROR (before the swap)
    assert snap.queries[(1, 3)] == 1 and snap.queries[(1, 5)] == 1
    assert snap.queries[(28, 0)] == 1 and snap.queries[(16, 0)] == 1
    assert snap.answers == {("local", "dc2"): 3, ("local", "dc3"): 1}
    text = generate_latest(registry).decode()
    assert 'gtm_dns_queries_total{qtype="A",rcode="NOERROR"} 3.0' in text
    assert 'gtm_dns_queries_total{qtype="A",rcode="NXDOMAIN"} 1.0' in text
    assert 'gtm_dns_answers_total{region="dc2",service="local"} 3.0' in text
    assert 'gtm_dns_generation{instance="main"} 5.0' in text
    assert "gtm_dns_errors_total 0.0" in text
