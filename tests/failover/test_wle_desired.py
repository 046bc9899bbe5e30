"""Pure parts: a row's targets, locality matching, the diff of one WLE, the blast radius."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wle_fixtures import LOCALITIES, exit_, make_estate, table, wle

from failover.desired import ZERO_WEIGHT, Desired, Target, row_targets
from failover.mesh_plan import diff, planning
from failover.vip_index import Localities, Unidentified, VipIndex
from failover.workload import WorkloadEntry
from policies import Cell, Out, Row, Service, Vip, to_end
from policies.model import Policy

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def service(counts: dict[str, list[int]]) -> Service:
    vips = {
        r: tuple(
            Vip(Vip.make_id("s", r, f"10.0.{i}.{k}", 443), "s", r, f"10.0.{i}.{k}", 443, w)
            for k, w in enumerate(ws)
        )
        for i, (r, ws) in enumerate(counts.items())
    }
    return Service("s", "s.example.com", Policy.uniform("p", tuple(counts)), vips)


def row(svc: Service, cells: dict[str, tuple[int, str | None]], fail_open: bool = False) -> Row:
    return Row(
        "s",
        "dc1",
        100,
        {
            r: Cell(
                w, out, {v.id: (v.weight if out is None or fail_open else 0) for v in svc.vips[r]}
            )
            for r, (w, out) in cells.items()
        },
        fail_open,
    )


def test_out_targets_keep_their_weight_and_say_why() -> None:
    svc = service({"dc1": [1], "dc2": [1], "dc3": [1]})
    t = row_targets(row(svc, {"dc1": (99, None), "dc2": (0, Out.EXIT), "dc3": (1, None)}), svc)
    by_region = {vid.split("/")[1]: x for vid, x in t.items()}
    assert by_region["dc1"].healthy and by_region["dc1"].weight == 99
    assert by_region["dc3"].weight == 1
    assert not by_region["dc2"].healthy
    assert by_region["dc2"].message == "Region Exit" and by_region["dc2"].weight is None


def test_zero_share_vip_is_down_and_zero_weight_cell_is_out() -> None:
    svc = service({"dc1": [1, 1], "dc2": [1]})
    r = row(svc, {"dc1": (100, None), "dc2": (0, None)})
    a, b = svc.vips["dc1"]
    cells = dict(r.cells)
    cells["dc1"] = Cell(100, None, {a.id: 1, b.id: 0})
    t = row_targets(Row("s", "dc1", 100, cells), svc)
    assert t[a.id].healthy and t[a.id].weight == 100
    assert (t[b.id].healthy, t[b.id].message) == (False, Out.DOWN)
    assert (t[svc.vips["dc2"][0].id].healthy, t[svc.vips["dc2"][0].id].message) == (
        False,
        ZERO_WEIGHT,
    )


def test_fail_open_row_keeps_every_weighted_cell_healthy() -> None:
    svc = service({"dc1": [1], "dc2": [1]})
    r = row(svc, {"dc1": (50, Out.DOWN), "dc2": (50, Out.DOWN)}, fail_open=True)
    assert all(x.healthy and x.weight == 50 for x in row_targets(r, svc).values())


@given(
    st.lists(st.lists(st.integers(1, 9), min_size=1, max_size=4), min_size=1, max_size=4),
    st.data(),
)
def test_region_split_is_exact_and_weights_never_zero(
    shares: list[list[int]], data: st.DataObject
) -> None:
    regions = [f"dc{i + 1}" for i in range(len(shares))]
    svc = service(dict(zip(regions, shares, strict=True)))
    weights = data.draw(st.lists(st.integers(1, 100), min_size=len(regions), max_size=len(regions)))
    r = row(svc, {reg: (w, None) for reg, w in zip(regions, weights, strict=True)})
    t = row_targets(r, svc)
    assert all(x.weight and x.weight > 0 for x in t.values())
    per_region = {reg: sum(t[v.id].weight or 0 for v in svc.vips[reg]) for reg in regions}
    total = sum(per_region.values())
    for reg, w in zip(regions, weights, strict=True):
        assert Fraction(per_region[reg], total) == Fraction(w, sum(weights))
        for v in svc.vips[reg]:  # and within a region, by VIP share
            assert Fraction(t[v.id].weight or 0, per_region[reg]) == Fraction(
                v.weight, sum(x.weight for x in svc.vips[reg])
            )


def test_localities_match_by_segment_prefix_longest_first() -> None:
    loc = Localities({"a": "region01", "b": "region01/az02", "c": "region03/az01"})
    assert loc.region_of("region01/az01") == "a"
    assert loc.region_of("region01/az02/rack1") == "b"
    assert loc.region_of("region03/az01") == "c"
    assert loc.region_of("region03") is None  # less specific than configured
    assert loc.region_of("region010/az01") is None
    assert loc.region_of(None) is None


def test_unidentified_entries_say_why() -> None:
    estate = make_estate(1)
    index = VipIndex(estate, LOCALITIES, service_label="gtm.io/service")
    v = estate.service("svc0").vips["dc2"][0]
    assert not isinstance(index.identify(WorkloadEntry.parse(wle(v, weight=1))), Unidentified)
    bad = wle(v, weight=1)
    bad["spec"]["address"] = "192.0.2.1"
    assert "no VIP 192.0.2.1" in index.identify(WorkloadEntry.parse(bad)).reason  # type: ignore[union-attr]
    bad = wle(v, weight=1)
    bad["spec"]["locality"] = "elsewhere/az9"
    assert "matches no region" in index.identify(WorkloadEntry.parse(bad)).reason  # type: ignore[union-attr]
    bad = wle(v, weight=1)
    bad["metadata"]["labels"]["gtm.io/service"] = "nope"
    assert "not in the estate" in index.identify(WorkloadEntry.parse(bad)).reason  # type: ignore[union-attr]


def test_diff_writes_status_first_and_never_a_zero_weight() -> None:
    estate = make_estate(1)
    v = estate.service("svc0").vips["dc2"][0]
    entry = WorkloadEntry.parse({**wle(v, weight=0, healthy=None, annotate=False)})
    target = row_targets(
        table(estate, exit_("dc2")).row("svc0", "dc1"),  # type: ignore[arg-type]
        estate.service("svc0"),
    )[v.id]
    patches = diff("dc1", entry, target, epoch=3, now=NOW, ensure_annotation=True)
    assert [p.status for p in patches] == [True, False]
    status, main = patches
    assert status.document()["metadata"]["resourceVersion"] == entry.resource_version
    assert "spec" not in main.body  # out: keeps its weight (even 0, which gtm never writes)
    assert main.body["metadata"]["annotations"] == {
        "proxy.istio.io/health-checks-enabled": "true",
        "gtm.io/epoch": "3",
    }
    conditions = status.body["status"]["conditions"]
    assert [c["type"] for c in conditions] == ["Healthy", "gtm.io/Epoch"]
    assert conditions[1]["message"] == "3"


def test_blast_radius_counts_only_plans_that_take_wles_out() -> None:
    estate = make_estate(2)
    entries = [
        WorkloadEntry.parse(wle(v, weight=98 if r == "dc1" else 1))
        for s in estate.services
        for r, vs in s.vips.items()
        for v in vs
    ]
    index = VipIndex(estate, LOCALITIES, service_label="gtm.io/service")
    both = table(estate, exit_("dc2", "x1"), exit_("dc3", "x2"))
    p = to_end(
        planning(
            "dc1",
            both.generation,
            entries,
            Desired(both, "dc1", index).target,
            epoch=1,
            now=NOW,
            ensure_annotation=True,
        )
    )
    assert (p.managed, p.unhealthy_after, p.newly_unhealthy) == (7, 4, 4)
    with pytest.raises(Exception, match=r"4 of 7 .* \(57.1%\), more than max_unhealthy_share 50%"):
        p.raise_if_unsafe(0.5)
    p.raise_if_unsafe(0.5, force=True)
    p.raise_if_unsafe(0.6)
    assert str(p).startswith("cluster dc1 (table generation")


def _wle(weight: int, healthy: str | None, annotated: bool = True) -> WorkloadEntry:
    annotations = {"proxy.istio.io/health-checks-enabled": "true"} if annotated else {}
    conditions = (
        []
        if healthy is None
        else [
            {"type": "Healthy", "status": healthy, "reason": "unhealthy", "message": "Region Exit"}
        ]
    )
    return WorkloadEntry.parse(
        {
            "metadata": {
                "name": "pay-dc1",
                "namespace": "gtm-mesh",
                "resourceVersion": "7",
                "annotations": annotations,
            },
            "spec": {"address": "127.0.1.5", "weight": weight},
            "status": {"conditions": conditions},
        }
    )


def test_coming_back_the_weight_is_written_before_the_entry_turns_healthy() -> None:
    now = datetime.now(UTC)
    patches = diff(
        "dc3", _wle(10, "False"), Target(True, None, 2), epoch=1, now=now, ensure_annotation=True
    )
    assert [p.status for p in patches] == [False, True]  # weight 10 -> 2 first, then Healthy=True
    going = diff(
        "dc3",
        _wle(2, "True"),
        Target(False, "Region Exit", 3),
        epoch=1,
        now=now,
        ensure_annotation=True,
    )
    assert [p.status for p in going] == [True, False]  # out: the condition first


def test_true_is_written_before_the_annotation_makes_istio_read_it() -> None:
    now = datetime.now(UTC)
    patches = diff(
        "dc3",
        _wle(10, None, annotated=False),
        Target(True, None, 2),
        epoch=1,
        now=now,
        ensure_annotation=True,
    )
    assert [p.status for p in patches] == [True, False]


def test_a_withdrawn_wle_stays_out_whatever_the_table_says() -> None:
    # the AccessPoint controller stamped it: its VIP left discovery, it waits to be deleted;
    # the table (built before the member saw the VIP go) must not bring it back in
    from accesspoints.plan import WITHDRAWN_AT
    from failover import VIP_WITHDRAWN, WITHDRAWN_ANNOTATION

    assert WITHDRAWN_AT == WITHDRAWN_ANNOTATION  # the plan stamps what the reconciler obeys
    estate = make_estate(1)
    index = VipIndex(estate, LOCALITIES, service_label="gtm.io/service")
    desired = Desired(table(estate), "dc1", index)
    vip = estate.services[0].vips["dc2"][0]
    plain = WorkloadEntry.parse(wle(vip, weight=1))
    assert isinstance(desired.target(plain), Target) and desired.target(plain).healthy
    stamped = WorkloadEntry.parse(
        wle(vip, weight=1, annotations={WITHDRAWN_ANNOTATION: "2026-12-08T01:00:00.5Z"})
    )
    assert desired.target(stamped) == Target(healthy=False, message=VIP_WITHDRAWN)
