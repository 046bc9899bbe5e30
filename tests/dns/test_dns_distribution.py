"""The weighted split holds over the wire: region by cell weight, then VIP by share.

Tolerance: each VIP's count X over n queries is Binomial(n, p), p taken from
the table (cell weight / row total x share / region's shares). The test
accepts |X - n p| <= 5 sqrt(n p (1 - p)) for every VIP: a correct server
fails one such check with probability about 6e-7 (normal approximation, two
sided), while a 98/1/1 split served as, say, 97/1.5/1.5 moves the local count
by 60 for n = 6000 — over 5 sigma (5 x 10.8 = 54).
"""

from __future__ import annotations

import math
import socket
from collections import Counter

import dns.message
import pytest
from dns_estate import Running

from gtm.config import Inventory
from policies import WeightTable

N = 6000


def expected(
    inventory: Inventory, table: WeightTable, service: str, source: str
) -> dict[str, float]:
    row = table.row(service, source)
    assert row is not None
    svc = inventory.estate.service(service)
    total = sum(c.weight for c in row.cells.values())
    out: dict[str, float] = {}
    for region, cell in row.cells.items():
        shares = sum(cell.vips.values())
        for vip in svc.vips.get(region, ()):
            share = cell.vips.get(vip.id, 0)
            if cell.weight and share:
                out[vip.address] = cell.weight / total * share / shares
    return out


def sample(port: int, name: str, source: str, n: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(3)
        for start in range(0, n, 100):  # 100 queries in flight at a time
            batch = [dns.message.make_query(name, "A") for _ in range(min(100, n - start))]
            for q in batch:
                s.sendto(q.to_wire(), ("127.0.0.1", port))
            for _ in batch:
                r = dns.message.from_wire(s.recv(4096))
                [rrset] = r.answer
                [rdata] = rrset
                counts[rdata.address] += 1
    return counts


@pytest.mark.parametrize(
    "service, source, client",
    [("foo", "dc2", "127.0.2.1"), ("pay", "dc1", "127.0.1.1"), ("foo", "dc1", "127.0.0.1")],
)
def test_weighted_split_within_five_sigma(
    served: Running,
    inventory: Inventory,
    table: WeightTable,
    service: str,
    source: str,
    client: str,
) -> None:
    p = expected(inventory, table, service, source)
    counts = sample(served.port, f"{service}.example.com", client, N)
    assert sum(counts.values()) == N
    assert set(counts) <= set(p)
    for address, prob in p.items():
        sigma = math.sqrt(N * prob * (1 - prob))
        got = counts.get(address, 0)
        assert abs(got - N * prob) <= 5 * sigma, (address, got, N * prob, sigma)


def test_expected_split_is_98_1_1(inventory: Inventory, table: WeightTable) -> None:
    assert expected(inventory, table, "foo", "dc2") == pytest.approx(
        {"127.0.2.1": 0.98, "127.0.1.1": 0.01, "127.0.3.1": 0.01}
    )
    pay = expected(inventory, table, "pay", "dc1")
    assert pay["127.0.1.5"] == pytest.approx(2 * pay["127.0.1.6"])  # VIP weights 2:1
