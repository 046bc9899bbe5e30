"""Publishing to a real PowerDNS: zone creation, answers by client network, only what changed.

Answers are weighted picks, so row checks ask several times and look at the
most frequent answer (98% local: the chance that 30 queries from a region
see its local VIP less often than another is below 1e-20).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from structlog.testing import capture_logs

from gtm.config import Inventory
from gtm.exporters import PowerDnsExporter, UnsafePlan
from gtm.what_if import what_if
from policies import Health, Kind, Override, State, TargetHealth, WeightTable

if TYPE_CHECKING:
    from conftest import FlakyProxy, PdnsServer

Ask = Callable[..., Any]


def table(inventory: Inventory, *overrides: Override, health: Health | None = None) -> WeightTable:
    return what_if(inventory, health or Health(), list(overrides), 1000.0).planned.table


def exit_(region: str) -> Override:
    return Override("drill", Kind.EXIT, region, "test", "drill", 999.0)


def metric(exporter: PowerDnsExporter, name: str, **labels: str) -> float:
    return exporter.metrics.value(name, **labels)


async def tally(ask: Ask, name: str, n: int, rdtype: str = "A", **where: str) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(n):
        seen.update(await ask(name, rdtype, **where))
    return seen


async def test_a_missing_zone_is_created_and_answers_follow_the_clients_network(
    pdns: PdnsServer, inventory: Inventory, exporter: PowerDnsExporter, ask: Ask
) -> None:
    with capture_logs() as logs:
        published = await exporter.publish(inventory, table(inventory))
    assert published.generation == 1
    assert published.changed and published.zones_created == ("example.com.",)
    assert published.rrsets_changed == 5
    zone = pdns.api("GET", "/zones/example.com.")
    assert zone["kind"] == "Native"
    rrsets = pdns.rrsets()
    assert rrsets[("example.com.", "NS")] == ["ns1.example.com.", "ns2.example.com."]
    assert rrsets[("example.com.", "SOA")][0].startswith("ns1.example.com. hostmaster.example.com.")
    events = [e["event"] for e in logs]
    assert events == ["powerdns.zone.created", "powerdns.published"]
    assert metric(exporter, "gtm_powerdns_generation_published") == 1
    for region, vip in (("dc1", "127.0.1.1"), ("dc2", "127.0.2.1"), ("dc3", "127.0.3.1")):
        seen = await tally(ask, "foo.example.com", 30, subnet=f"127.0.{region[-1]}.0/24")
        assert seen.most_common(1)[0][0] == vip, (region, seen)
    # A client in no region's networks gets the default row (dc1).
    seen = await tally(ask, "foo.example.com", 30, subnet="192.0.2.0/24")
    assert seen.most_common(1)[0][0] == "127.0.1.1"


async def test_answers_follow_the_resolver_address_without_ecs_and_dig_reads_them(
    inventory: Inventory, exporter: PowerDnsExporter, dig: Callable[..., list[str]]
) -> None:
    await exporter.publish(inventory, table(inventory))
    assert dig("TXT", "_gtm-generation.example.com") == ['"1"']
    by_source = Counter(a for _ in range(25) for a in dig("-b", "127.0.3.1", "foo.example.com"))
    assert by_source.most_common(1)[0][0] == "127.0.3.1", by_source
    by_ecs = Counter(
        a
        for _ in range(25)
        for a in dig("+subnet=127.0.2.0/24", "-b", "127.0.3.1", "foo.example.com")
    )
    assert by_ecs.most_common(1)[0][0] == "127.0.2.1", by_ecs


async def test_ipv6_vips_get_a_lua_aaaa_record_and_host_names_a_cname(
    inventory: Inventory, exporter: PowerDnsExporter, ask: Ask, dig: Callable[..., list[str]]
) -> None:
    await exporter.publish(inventory, table(inventory))
    aaaa = await tally(ask, "dual.example.com", 30, "AAAA", subnet="fd00:2::/48")
    assert set(aaaa) <= {"fd00:1::8", "fd00:2::8"}
    assert aaaa.most_common(1)[0][0] == "fd00:2::8"
    a = await tally(ask, "dual.example.com", 30, subnet="127.0.3.0/24")
    assert a.most_common(1)[0][0] == "127.0.3.8"
    edge = await tally(ask, "edge.example.com", 30, subnet="127.0.2.0/24")
    assert edge.most_common(1)[0][0] == "127.0.2.10"
    cname = Counter(
        a for _ in range(20) for a in dig("+subnet=127.0.3.0/24", "cdn.example.com", "CNAME")
    )
    assert cname.most_common(1)[0][0] == "dc3.cdn.example.net."


async def test_a_region_exit_moves_the_answers_away_from_the_region(
    inventory: Inventory, exporter: PowerDnsExporter, ask: Ask, dig: Callable[..., list[str]]
) -> None:
    await exporter.publish(inventory, table(inventory))
    published = await exporter.publish(inventory, table(inventory, exit_("dc2")), force=True)
    assert published.generation == 2 and published.forced
    assert dig("TXT", "_gtm-generation.example.com") == ['"2"']
    for subnet in ("127.0.2.0/24", "127.0.1.0/24", "127.0.3.0/24"):
        seen = await tally(ask, "foo.example.com", 40, subnet=subnet)
        assert "127.0.2.1" not in seen, (subnet, seen)
    dc2_clients = await tally(ask, "foo.example.com", 40, subnet="127.0.2.0/24")
    assert set(dc2_clients) <= {"127.0.1.1", "127.0.3.1"}


async def test_republishing_an_unchanged_table_sends_no_patch_and_keeps_the_generation(
    inventory: Inventory, via_proxy: PowerDnsExporter, proxy: FlakyProxy, pdns: PdnsServer
) -> None:
    await via_proxy.publish(inventory, table(inventory))
    proxy.seen.clear()
    before = metric(via_proxy, "gtm_powerdns_publishes_total", result="unchanged")
    again = await via_proxy.publish(inventory, table(inventory))
    assert not again.changed and again.generation == 1 and again.rrsets_changed == 0
    assert proxy.methods() == ["GET"]
    assert metric(via_proxy, "gtm_powerdns_publishes_total", result="unchanged") == before + 1
    assert pdns.rrsets()[("_gtm-generation.example.com.", "TXT")] == ['"1"']


async def test_only_the_changed_rrsets_are_patched_in_one_request(
    inventory: Inventory, via_proxy: PowerDnsExporter, proxy: FlakyProxy, pdns: PdnsServer
) -> None:
    foo_dc2_down = Health(regions={("foo", "dc2"): TargetHealth(State.DOWN, 990.0, "http 503")})
    await via_proxy.publish(inventory, table(inventory))
    before = pdns.rrsets()
    proxy.seen.clear()
    published = await via_proxy.publish(inventory, table(inventory, health=foo_dc2_down))
    assert published.generation == 2 and published.rrsets_changed == 1
    assert proxy.methods() == ["GET", "PATCH"]
    (patch,) = proxy.patches()
    assert [(r["name"], r["type"], r["changetype"]) for r in patch["rrsets"]] == [
        ("foo.example.com.", "LUA", "REPLACE"),
        ("_gtm-generation.example.com.", "TXT", "REPLACE"),
    ]
    after = pdns.rrsets()
    changed = {key for key in after if after[key] != before.get(key)}
    assert changed == {
        ("foo.example.com.", "LUA"),
        ("_gtm-generation.example.com.", "TXT"),
        ("example.com.", "SOA"),  # the serial, bumped by PowerDNS (soa_edit_api)
    }
    assert "127.0.2.1" not in after[("foo.example.com.", "LUA")][0]


async def test_records_changed_behind_gtms_back_are_put_right(
    inventory: Inventory, exporter: PowerDnsExporter, pdns: PdnsServer
) -> None:
    await exporter.publish(inventory, table(inventory))
    pay = pdns.rrsets()[("pay.example.com.", "LUA")]
    pdns.api(
        "PATCH",
        "/zones/example.com.",
        {
            "rrsets": [
                {
                    "name": "pay.example.com.",
                    "type": "LUA",
                    "ttl": 3600,
                    "changetype": "REPLACE",
                    "records": [{"content": c, "disabled": False} for c in pay],
                }
            ]
        },
    )
    plan = await exporter.plan(inventory, table(inventory))
    assert [(c.action.value, c.rrset.name) for z in plan.zones for c in z.changes] == [
        ("replace", "pay.example.com.")
    ]
    await exporter.apply(plan)
    assert pdns.api("GET", "/zones/example.com.")["rrsets"] is not None
    ttl = {r["name"]: r["ttl"] for r in pdns.api("GET", "/zones/example.com.")["rrsets"]}
    assert ttl["pay.example.com."] == 30


async def test_a_plan_over_the_blast_radius_is_refused_unless_forced(
    inventory: Inventory, via_proxy: PowerDnsExporter, proxy: FlakyProxy, pdns: PdnsServer
) -> None:
    await via_proxy.publish(inventory, table(inventory))
    exited = table(inventory, exit_("dc2"))
    refused_before = metric(via_proxy, "gtm_powerdns_publishes_total", result="refused")
    proxy.seen.clear()
    with capture_logs() as logs, pytest.raises(UnsafePlan) as caught:
        await via_proxy.publish(inventory, exited)
    assert (caught.value.changed, caught.value.total, caught.value.limit) == (5, 5, 0.3)
    assert "changes 5 of 5 existing gtm records (100%)" in str(caught.value)
    assert proxy.methods() == ["GET"]  # read, then nothing written
    assert [e["event"] for e in logs] == ["powerdns.publish.refused"]
    assert metric(via_proxy, "gtm_powerdns_publishes_total", result="refused") == refused_before + 1
    assert pdns.rrsets()[("_gtm-generation.example.com.", "TXT")] == ['"1"']
    forced = await via_proxy.publish(inventory, exited, force=True)
    assert forced.forced and forced.generation == 2 and forced.rrsets_changed == 5
    assert pdns.rrsets()[("_gtm-generation.example.com.", "TXT")] == ['"2"']


async def test_the_weighted_split_holds_over_hundreds_of_queries(
    inventory: Inventory, exporter: PowerDnsExporter, ask: Ask
) -> None:
    """pay, clients in dc1: 50 to dc1 split 2:1 over two VIPs, 30 to dc2, 20 to dc3.

    So 1/3, 1/6, 3/10 and 1/5 of 600 answers. Tolerance: each count within
    5 standard deviations of its binomial expectation (a false alarm about
    once in 3.5 million runs per address).
    """
    await exporter.publish(inventory, table(inventory))
    n = 600
    seen = await tally(ask, "pay.example.com", n, subnet="127.0.1.0/24")
    expected = {"127.0.1.5": 1 / 3, "127.0.1.6": 1 / 6, "127.0.2.5": 3 / 10, "127.0.3.5": 1 / 5}
    assert set(seen) == set(expected)
    assert sum(seen.values()) == n
    for address, p in expected.items():
        sd = math.sqrt(n * p * (1 - p))
        assert abs(seen[address] - n * p) <= 5 * sd, (address, seen[address], n * p, sd)


async def test_every_record_answers_from_every_network_without_lua_errors(
    pdns: PdnsServer, inventory: Inventory, exporter: PowerDnsExporter, ask: Ask
) -> None:
    await exporter.publish(inventory, table(inventory, exit_("dc3")), force=True)
    subnets = ["127.0.1.0/24", "127.0.2.0/24", "127.0.3.0/24", "fd00:2::/48", "198.51.100.0/24"]
    names = {
        "foo": ["A"],
        "pay": ["A"],
        "dual": ["A", "AAAA"],
        "edge": ["A"],
        "cdn": ["A", "CNAME"],
    }
    for service, types in names.items():
        for rdtype in types:
            for subnet in subnets:
                got = await ask(f"{service}.example.com", rdtype, subnet=subnet)
                assert got, (service, rdtype, subnet)
                assert not any(a.startswith(("127.0.3.", "dc3.")) for a in got), (service, got)
    errors = [
        line for line in pdns.log.read_text(errors="replace").splitlines() if "Lua record (" in line
    ]
    assert errors == []
