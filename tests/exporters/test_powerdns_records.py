"""What a table asks of each zone: LUA A/AAAA or CNAME per service, SOA/NS, the marker."""

from __future__ import annotations

import dataclasses
import re

import pytest

from gtm.config import Inventory, loads
from gtm.exporters import RenderError, desired
from gtm.what_if import what_if
from policies import Health, Kind, Override, WeightTable


def table(inventory: Inventory, *overrides: Override) -> WeightTable:
    return what_if(inventory, Health(), list(overrides), 1000.0).planned.table


def exit_(region: str) -> Override:
    return Override("x", Kind.EXIT, region, "test", "drill", 999.0)


def answers(record: str) -> set[str]:
    """The answers a LUA record can give (not the client networks it tests)."""
    return set(re.findall(r"\{\d+,'([^']+)'\}", record)) | set(
        re.findall(r"return '([^']+)'", record)
    )


def code_of(record: str) -> str:
    """The Lua code of a LUA record's content (its quoted strings joined)."""
    return "".join(re.findall(r'"([^"]*)"', record))


def records(inventory: Inventory, t: WeightTable) -> dict[str, tuple[str, ...]]:
    (zone,) = desired(inventory, t)
    return {r.name: r.records for r in zone.rrsets}


def test_one_zone_with_soa_ns_a_lua_rrset_per_service_and_the_generation(
    offline_inventory: Inventory,
) -> None:
    (zone,) = desired(offline_inventory, table(offline_inventory))
    assert zone.zone == "example.com."
    assert zone.soa.records == ("ns1.example.com. hostmaster.example.com. 1 10800 3600 604800 30",)
    assert zone.ns.records == ("ns1.example.com.", "ns2.example.com.")
    assert [(r.name, r.type, r.ttl) for r in zone.rrsets] == [
        (f"{s}.example.com.", "LUA", 30) for s in ("cdn", "dual", "edge", "foo", "pay")
    ]
    assert zone.generation.name == "_gtm-generation.example.com."
    assert zone.generation.records == ('"1"',)


def test_ipv4_answers_in_a_lua_a_record_and_ipv6_ones_in_a_lua_aaaa_record(
    offline_inventory: Inventory,
) -> None:
    got = records(offline_inventory, table(offline_inventory))
    (foo,) = got["foo.example.com."]
    assert foo.startswith('A ";--[[gtm]] ')
    a, aaaa = got["dual.example.com."]
    assert a.startswith("A ")
    assert answers(a) == {"127.0.1.8", "127.0.2.8", "127.0.3.8"}
    assert aaaa.startswith("AAAA ")
    # dc3 has no IPv6 VIP: the AAAA pick is the dc1 and dc2 VIPs only.
    assert answers(aaaa) == {"fd00:1::8", "fd00:2::8"}
    assert code_of(aaaa).endswith("return pickwrandom({ {98,'fd00:1::8'}, {1,'fd00:2::8'} })")


def test_host_name_vips_are_answered_with_their_ips_else_a_cname(
    offline_inventory: Inventory,
) -> None:
    got = records(offline_inventory, table(offline_inventory))
    (edge,) = got["edge.example.com."]
    assert edge.startswith("A ")
    assert answers(edge) == {"127.0.1.10", "127.0.2.10", "127.0.3.10"}
    (cdn,) = got["cdn.example.com."]
    assert cdn.startswith('CNAME ";--[[gtm]] ')
    assert answers(cdn) == {f"{r}.cdn.example.net." for r in ("dc1", "dc2", "dc3")}
    assert code_of(cdn).endswith(
        "return pickwrandom({ {98,'dc1.cdn.example.net.'}, {1,'dc2.cdn.example.net.'}, "
        "{1,'dc3.cdn.example.net.'} })"
    )


def test_a_region_exit_takes_the_region_out_of_every_answer(
    offline_inventory: Inventory,
) -> None:
    got = records(offline_inventory, table(offline_inventory, exit_("dc2")))
    for name, contents in got.items():
        for record in contents:
            in_dc2 = {a for a in answers(record) if a.startswith(("127.0.2.", "dc2.", "fd00:2:"))}
            assert not in_dc2, (name, in_dc2)
            assert answers(record), name


MIXED = """
regions:
  - {name: dc1, locality: r1/a, client_cidrs: [127.0.1.0/24]}
  - {name: dc2, locality: r2/a, client_cidrs: [127.0.2.0/24]}
services:
  - name: web
    fqdn: web.example.com
    vips:
      dc1: [{address: 127.0.1.1}]
      dc2: [{address: web.dc2.example.net}]
  - name: api
    fqdn: api.example.com
    vips:
      dc1: [{address: api.dc1.example.net}]
      dc2: [{address: 127.0.2.2}]
  - name: ok
    fqdn: ok.example.com
    vips:
      dc1: [{address: 127.0.1.3}]
      dc2: [{address: ok.dc2.example.net, ips: ["fd00:2::3"]}]
"""


def test_host_names_without_ips_beside_ip_vips_are_all_reported_together() -> None:
    inventory = loads(MIXED)
    with pytest.raises(RenderError) as caught:
        desired(inventory, table(inventory))
    problems = caught.value.problems
    assert len(problems) == 2
    assert any("service web" in p and "web/dc2/web.dc2.example.net:443" in p for p in problems)
    assert any("service api" in p and "make every VIP a host name" in p for p in problems)


def test_a_table_missing_a_service_or_naming_unknown_vips_is_refused(
    offline_inventory: Inventory,
) -> None:
    t = table(offline_inventory)
    missing = dataclasses.replace(t, rows={k: v for k, v in t.rows.items() if k != "foo"})
    with pytest.raises(RenderError, match="service foo: no rows in table generation 1"):
        desired(offline_inventory, missing)
    foo = t.rows["foo"]["dc1"]
    cell = foo.cells["dc1"]._replace(vips={"foo/dc1/192.0.2.9:443": 1})
    odd_row = foo._replace(cells={**foo.cells, "dc1": cell})
    odd = dataclasses.replace(t, rows={**t.rows, "foo": {**t.rows["foo"], "dc1": odd_row}})
    with pytest.raises(RenderError, match="unknown VIPs"):
        desired(offline_inventory, odd)
