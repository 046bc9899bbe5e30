"""The plan: only what differs, gtm's records only, and the blast-radius rule."""

from __future__ import annotations

import dataclasses

import pytest

from gtm.config import Inventory
from gtm.exporters import (
    Action,
    RRset,
    UnsafePlan,
    ZoneRecords,
    ZoneState,
    desired,
    make_plan,
    plan_zone,
)
from gtm.what_if import what_if
from policies import Health

ZONE = "example.com."


@pytest.fixture
def want(offline_inventory: Inventory) -> ZoneRecords:
    table = what_if(offline_inventory, Health(), [], 1000.0).planned.table
    (zone,) = desired(offline_inventory, table)
    return zone


def state(*rrsets: RRset) -> ZoneState:
    return ZoneState(ZONE, {(r.name, r.type): r for r in rrsets})


def served(want: ZoneRecords, *extra: RRset) -> ZoneState:
    """The zone as PowerDNS holds it once `want` was published (plus `extra`)."""
    return state(want.soa, want.ns, *want.rrsets, want.generation, *extra)


def test_a_missing_zone_is_created_with_every_rrset(want: ZoneRecords) -> None:
    zp = plan_zone(want, None)
    assert zp.create is want
    assert [c.action for c in zp.changes] == [Action.CREATE] * len(want.rrsets)
    assert zp.marker is not None and zp.marker.new == want.generation
    assert zp.existing == 0 and zp.published is None


def test_a_zone_that_serves_the_table_needs_nothing(want: ZoneRecords) -> None:
    plan = make_plan("pdns", 1, [want], {ZONE: served(want)}, 0.3)
    assert not plan.changed
    assert plan.published == 1
    assert plan.rrsets_changed == 0
    assert "up to date (5 gtm rrset(s))" in str(plan)


def test_only_the_rrsets_that_differ_are_replaced(want: ZoneRecords) -> None:
    foo = next(r for r in want.rrsets if r.name == "foo.example.com.")
    pay = next(r for r in want.rrsets if r.name == "pay.example.com.")
    old_foo = dataclasses.replace(foo, records=("A \";--[[gtm]] return '127.0.9.9'\"",))
    old_pay = dataclasses.replace(pay, ttl=300)
    zp = plan_zone(want, served(want, old_foo, old_pay))
    assert [(c.action, c.rrset.name) for c in zp.changes] == [
        (Action.REPLACE, "foo.example.com."),
        (Action.REPLACE, "pay.example.com."),
    ]
    assert zp.changes[0].old == old_foo and zp.changes[0].new == foo
    assert zp.marker is None  # the generation is the same
    lines = "\n".join(zp.lines())
    assert "~ replace pay.example.com. LUA ttl 30 (was 300)" in lines
    assert "- A \";--[[gtm]] return '127.0.9.9'\"" in lines


def test_a_disabled_record_is_not_served_so_it_is_replaced(want: ZoneRecords) -> None:
    foo = next(r for r in want.rrsets if r.name == "foo.example.com.")
    zp = plan_zone(want, served(want, dataclasses.replace(foo, disabled=1)))
    assert [(c.action, c.rrset.name) for c in zp.changes] == [(Action.REPLACE, "foo.example.com.")]


def test_gtm_deletes_its_stale_records_and_plain_ones_at_service_names_only(
    want: ZoneRecords,
) -> None:
    stale = RRset.of("old.example.com", "LUA", 30, ["A \";--[[gtm]] return '127.0.1.1'\""])
    theirs = RRset.of("theirs.example.com", "LUA", 30, ["A \"return '192.0.2.1'\""])
    plain = RRset.of("foo.example.com", "A", 30, ["192.0.2.7"])
    www = RRset.of("www.example.com", "A", 30, ["192.0.2.8"])
    zp = plan_zone(want, served(want, stale, theirs, plain, www))
    assert [(c.action, c.rrset.name, c.rrset.type) for c in zp.changes] == [
        (Action.DELETE, "foo.example.com.", "A"),
        (Action.DELETE, "old.example.com.", "LUA"),
    ]
    assert zp.changes[0].to_api() == {
        "name": "foo.example.com.",
        "type": "A",
        "changetype": "DELETE",
    }
    assert zp.existing == 7  # five services, the stale one, the plain A


def test_a_new_generation_rewrites_the_marker(want: ZoneRecords) -> None:
    old = dataclasses.replace(want.generation, records=('"41"',))
    zp = plan_zone(want, served(want, old))
    assert zp.changes == ()
    assert zp.marker is not None and zp.marker.action is Action.REPLACE
    assert zp.published == 41
    assert zp.marker.to_api() == {
        "name": "_gtm-generation.example.com.",
        "type": "TXT",
        "changetype": "REPLACE",
        "ttl": 30,
        "records": [{"content": '"1"', "disabled": False}],
    }


def test_a_plan_changing_more_than_the_limit_is_refused_with_its_numbers(
    want: ZoneRecords,
) -> None:
    drifted = [dataclasses.replace(r, ttl=1) for r in want.rrsets[:2]]  # 2 of 5
    plan = make_plan("pdns", 1, [want], {ZONE: served(want, *drifted)}, 0.3)
    assert plan.safety.unsafe
    assert (plan.safety.changed, plan.safety.existing) == (2, 5)
    with pytest.raises(UnsafePlan) as caught:
        plan.raise_if_unsafe()
    assert "changes 2 of 5 existing gtm records (40%)" in str(caught.value)
    assert "max_row_change_share 30%" in str(caught.value)
    plan.raise_if_unsafe(force=True)
    assert "blast radius: 2 of 5 existing gtm rrset(s) change (40%), limit 30%: REFUSED" in str(
        plan
    )
    within = make_plan("pdns", 1, [want], {ZONE: served(want, *drifted[:1])}, 0.3)
    assert not within.safety.unsafe
    within.raise_if_unsafe()


def test_creations_do_not_count_against_the_limit(want: ZoneRecords) -> None:
    only_one = state(want.soa, want.ns, want.rrsets[0], want.generation)
    plan = make_plan("pdns", 1, [want], {ZONE: only_one}, 0.3)
    assert plan.zones[0].count(Action.CREATE) == 4
    assert not plan.safety.unsafe
