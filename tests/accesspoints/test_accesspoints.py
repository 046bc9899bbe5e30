"""AccessPoints, pure: the model, the overrides, the render, the weights and the plan."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accesspoints import (
    AccessPointError,
    Cluster,
    UpstreamVip,
    merge_patch,
    parse_accesspoint,
    plan_cluster,
    render,
    split_weights,
    upstream_host,
)

DC2 = Cluster("dc2-k8s", "dc2", "region02/az01")


def ap(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "scope": {"clusters": ["dc1-k8s", "dc2-k8s", "dc3-k8s"]},
        "trafficTemplate": {
            "service": {"spec": {"type": "LoadBalancer", "loadBalancerClass": "gtm.io/ipvs"}},
            "gateway": {"spec": {"servers": [{"hosts": ["pay.example.com"]}]}},
            "virtualService": {
                "spec": {"http": [{"route": [{"destination": {"host": "upstream:pay-app"}}]}]}
            },
        },
        "upstreams": [{"accessPoint": "pay-app", "port": {"number": 443, "name": "tls"}}],
    }
    base.update(spec)
    return {
        "apiVersion": "gtm.io/v1alpha1",
        "kind": "AccessPoint",
        "metadata": {"name": "pay-gw", "namespace": "pay"},
        "spec": base,
    }


def vips(*where: tuple[str, str, str]) -> dict[str, list[UpstreamVip]]:
    return {
        "pay-app": [UpstreamVip(c, r, f"region0{r[-1]}/az01", ip) for c, r, ip in where],
    }


THREE = vips(
    ("dc1-k8s", "dc1", "10.1.0.1"), ("dc2-k8s", "dc2", "10.2.0.1"), ("dc3-k8s", "dc3", "10.3.0.1")
)


def by_kind(objects: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


# -- the model ---------------------------------------------------------------------------


def test_every_problem_is_named_with_its_field_path() -> None:
    doc = ap(
        overrides=[{"clusters": ["dc9-k8s"], "jsonPatch": [{"op": "frob", "path": "/x"}]}],
        upstreams=[{"accessPoint": "Bad_Name", "port": {"number": 70000, "name": "x"}}],
    )
    with pytest.raises(AccessPointError) as e:
        parse_accesspoint(doc)
    paths = {".".join(map(str, p)) for p, _ in e.value.problems}
    assert "spec.upstreams.0.accessPoint" in paths and "spec.upstreams.0.port.number" in paths
    with pytest.raises(AccessPointError) as e:
        parse_accesspoint(ap(overrides=[{"clusters": ["dc9-k8s"], "jsonPatch": [{"op": "frob"}]}]))
    messages = dict(e.value.problems)
    assert messages[("spec", "overrides", 0, "clusters", 0)] == "'dc9-k8s' is not in spec.scope"
    assert "not an RFC 6902 op" in messages[("spec", "overrides", 0, "jsonPatch", 0, "op")]
    with pytest.raises(AccessPointError, match="cannot be its own upstream"):
        parse_accesspoint(
            ap(upstreams=[{"accessPoint": "pay-gw", "port": {"number": 1, "name": "a"}}])
        )


# -- merge patch (RFC 7386 appendix A) -----------------------------------------------------

RFC7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC7386)
def test_merge_patch_follows_rfc_7386(target: Any, patch: Any, result: Any) -> None:
    before = copy.deepcopy(target)
    assert merge_patch(target, patch) == result
    assert target == before  # a new value


# -- overrides ---------------------------------------------------------------------------


def test_overrides_apply_json_patch_then_merge_patch_in_list_order() -> None:
    doc = ap(
        overrides=[
            {
                "clusters": ["dc2-k8s"],
                "jsonPatch": [
                    {"op": "test", "path": "/gateway/spec/servers/0/hosts/0", "value": "pay.example.com"},
                    {"op": "replace", "path": "/gateway/spec/servers/0/hosts/0", "value": "a.example.com"},
                ],
                "mergePatch": {"service": {"metadata": {"annotations": {"pool": "dc2"}}}},
            },
            {"clusters": ["dc2-k8s", "dc3-k8s"], "mergePatch": {"service": {"metadata": {"annotations": {"pool": "late"}}}}},
            {"clusters": ["dc1-k8s"], "mergePatch": {"gateway": None}},
        ]
    )  # fmt: skip
    out = render(parse_accesspoint(doc), DC2, THREE)
    assert not out.problems
    (gateway,) = by_kind(out.objects, "Gateway")
    assert gateway["spec"]["servers"][0]["hosts"] == ["a.example.com"]
    (service,) = by_kind(out.objects, "Service")
    assert service["metadata"]["annotations"] == {"pool": "late"}  # the later override wins
    dc1 = render(parse_accesspoint(doc), Cluster("dc1-k8s", "dc1", "region01/az01"), THREE)
    assert not by_kind(dc1.objects, "Gateway")  # removed there by merge patch


def test_a_failing_override_refuses_the_cluster_naming_override_and_op() -> None:
    doc = ap(
        overrides=[
            {"clusters": ["dc1-k8s"], "mergePatch": {"service": {"spec": {"x": 1}}}},
            {
                "clusters": ["dc2-k8s"],
                "jsonPatch": [
                    {"op": "replace", "path": "/service/spec/type", "value": "NodePort"},
                    {"op": "test", "path": "/gateway/spec/servers/0/hosts/0", "value": "nope"},
                ],
            },
        ]
    )
    out = render(parse_accesspoint(doc), DC2, THREE)
    assert out.problems and out.problems[0].startswith(
        "spec.overrides[1].jsonPatch[1]: test failed"
    )
    plan = plan_cluster("pay-gw", out, [])
    assert plan.empty and plan.problems == out.problems  # nothing is applied there
    bad_path = ap(
        overrides=[{"clusters": ["dc2-k8s"], "jsonPatch": [{"op": "remove", "path": "/nope/x"}]}]
    )
    out = render(parse_accesspoint(bad_path), DC2, THREE)
    assert out.problems[0].startswith("spec.overrides[0].jsonPatch[0]: remove /nope/x")


# -- the render --------------------------------------------------------------------------


def test_upstream_wles_and_service_entry_as_seen_from_the_cluster_region() -> None:
    out = render(parse_accesspoint(ap()), DC2, THREE, services={"pay-app": "pay-app"})
    wles = by_kind(out.objects, "WorkloadEntry")
    assert [(w["spec"]["address"], w["spec"]["weight"], w["spec"]["locality"]) for w in wles] == [
        ("10.1.0.1", 1, "region01/az01"),
        ("10.2.0.1", 98, "region02/az01"),
        ("10.3.0.1", 1, "region03/az01"),
    ]
    for w in wles:
        assert w["metadata"]["annotations"] == {"proxy.istio.io/health-checks-enabled": "true"}
        assert w["metadata"]["labels"]["gtm.io/managed"] == "true"
        assert w["metadata"]["labels"]["gtm.io/service"] == "pay-app"  # the reconciler's rows
        assert w["spec"]["labels"] == {"gtm.io/accesspoint": "pay-gw", "gtm.io/upstream": "pay-app"}
        assert w["spec"]["ports"] == {"tls": 443}
        assert "status" not in w  # Healthy is written through /status by the controller
    (se,) = by_kind(out.objects, "ServiceEntry")
    assert (
        se["spec"]["hosts"] == [upstream_host("pay-app", "pay")] == ["pay-app.pay.ap.gtm.internal"]
    )
    assert (se["spec"]["location"], se["spec"]["resolution"]) == ("MESH_INTERNAL", "STATIC")
    assert se["spec"]["workloadSelector"]["labels"] == wles[0]["spec"]["labels"]
    (vs,) = by_kind(out.objects, "VirtualService")
    assert vs["spec"]["http"][0]["route"][0]["destination"]["host"] == "pay-app.pay.ap.gtm.internal"
    for o in out.objects:
        assert o["metadata"]["labels"]["gtm.io/accesspoint"] == "pay-gw"
        assert o["metadata"]["namespace"] == "pay"
    dc1 = render(parse_accesspoint(ap()), Cluster("dc1-k8s", "dc1", "region01/az01"), THREE)
    assert [w["spec"]["weight"] for w in by_kind(dc1.objects, "WorkloadEntry")] == [98, 1, 1]


def test_revision_is_stable_and_follows_the_inputs() -> None:
    a = render(parse_accesspoint(ap()), DC2, THREE)
    assert a.revision == render(parse_accesspoint(ap()), DC2, THREE).revision
    fewer = vips(("dc1-k8s", "dc1", "10.1.0.1"), ("dc2-k8s", "dc2", "10.2.0.1"))
    assert render(parse_accesspoint(ap()), DC2, fewer).revision != a.revision


def test_a_route_to_an_unknown_upstream_is_a_problem_and_no_vip_is_unresolved() -> None:
    doc = ap()
    doc["spec"]["trafficTemplate"]["virtualService"]["spec"]["http"][0]["route"][0]["destination"][
        "host"
    ] = "upstream:nope"
    out = render(parse_accesspoint(doc), DC2, THREE)
    assert "'upstream:nope' names no upstream of pay-gw" in out.problems[0]
    empty = render(parse_accesspoint(ap()), DC2, {})
    assert empty.unresolved == ("pay-app",) and len(by_kind(empty.objects, "ServiceEntry")) == 1


# -- weights -----------------------------------------------------------------------------


def test_weights_split_each_region_share_among_its_vips_exactly() -> None:
    assert split_weights({"dc1": 1, "dc2": 1, "dc3": 1}, "dc1", 98, 1) == {
        "dc1": 98,
        "dc2": 1,
        "dc3": 1,
    }
    assert split_weights({"dc1": 2, "dc2": 1, "dc3": 3}, "dc1", 98, 1) == {
        "dc1": 147,
        "dc2": 3,
        "dc3": 1,
    }
    assert split_weights({"dc1": 0, "dc2": 2}, "dc1", 98, 1) == {"dc2": 1}
    with pytest.raises(ValueError):
        split_weights({"dc1": 1}, "dc1", 0, 1)


@given(
    counts=st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(1, 8), min_size=1),
    local=st.integers(1, 1000),
    remote=st.integers(1, 100),
)
def test_weights_are_whole_never_zero_and_keep_the_split(
    counts: dict[str, int], local: int, remote: int
) -> None:
    home = next(iter(counts))
    w = split_weights(counts, home, local, remote)
    assert all(isinstance(v, int) and 1 <= v < 2**32 for v in w.values())
    share = {r: w[r] * n for r, n in counts.items()}  # what each region gets in all
    for r in counts:
        # share[r] / share[home] == (local or remote) / local, in integers
        assert share[r] * local == share[home] * (local if r == home else remote)


# -- the plan ----------------------------------------------------------------------------


def test_plan_creates_updates_deletes_and_never_takes_over_or_touches_the_weight() -> None:
    out = render(parse_accesspoint(ap()), DC2, THREE)
    plan = plan_cluster("pay-gw", out, [])
    assert {c.action for c in plan.changes} == {"create"} and len(plan.changes) == len(out.objects)
    current = copy.deepcopy(list(out.objects))
    wle = next(o for o in current if o["kind"] == "WorkloadEntry")
    wle["spec"]["weight"] = 7  # the reconciler's field: not ours to put back
    wle["status"] = {"conditions": [{"type": "Healthy", "status": "False"}]}
    service = next(o for o in current if o["kind"] == "Service")
    service["spec"]["type"] = "NodePort"  # a hand edit of an owned field: drift
    service["metadata"]["resourceVersion"] = "42"  # not rendered: not compared
    stale = copy.deepcopy(wle)
    stale["metadata"]["name"] = "pay-gw-pay-app-dc9-k8s-10-9-0-1"  # ours, no longer rendered
    foreign = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "other", "namespace": "pay"},
    }
    # named as the AP's by hand, without gtm.io/managed: not gtm's, never deleted
    claimed = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {
            "name": "mine",
            "namespace": "pay",
            "labels": {"gtm.io/accesspoint": "pay-gw"},
        },
    }
    plan = plan_cluster("pay-gw", out, [*current, stale, foreign, claimed])
    assert [c.line() for c in plan.changes] == [
        "update Service pay/pay-gw: spec.type",
        "delete WorkloadEntry pay/pay-gw-pay-app-dc9-k8s-10-9-0-1",
    ]
    squatter = copy.deepcopy(next(o for o in out.objects if o["kind"] == "Gateway"))
    squatter["metadata"]["labels"] = {}
    plan = plan_cluster(
        "pay-gw", out, [*(o for o in out.objects if o["kind"] != "Gateway"), squatter]
    )
    (conflict,) = plan.changes
    assert conflict.action == "conflict" and "not made by gtm" in conflict.fields[0]
    taken = plan_cluster("pay-gw", out, [squatter], overwrite=True)
    assert any(c.action == "update" and c.key[1] == "Gateway" for c in taken.changes)


def test_while_an_upstream_is_not_wholly_discovered_no_delete_is_made() -> None:
    out = render(parse_accesspoint(ap()), DC2, THREE)
    current = copy.deepcopy(list(out.objects))
    stale = copy.deepcopy(next(o for o in current if o["kind"] == "WorkloadEntry"))
    stale["metadata"]["name"] = "pay-gw-pay-app-dc9-k8s-10-9-0-1"  # its cluster unread
    service = next(o for o in current if o["kind"] == "Service")
    service["spec"]["type"] = "NodePort"
    why = "upstream pay-app's VIPs not all known (dc9-k8s: timeout)"
    plan = plan_cluster("pay-gw", out, [*current, stale], hold_deletes=why)
    assert [c.line() for c in plan.changes] == [
        "update Service pay/pay-gw: spec.type",  # the rest of the plan goes on
        f"hold WorkloadEntry pay/pay-gw-pay-app-dc9-k8s-10-9-0-1: {why}",
    ]
    assert plan.of("delete") == [] and plan.lines()[0].endswith(
        "0 delete, 0 conflict, 1 delete held"
    )


def test_a_withdrawn_vips_wle_goes_out_first_and_is_deleted_once_clients_let_go() -> None:
    out = render(parse_accesspoint(ap()), DC2, THREE)
    current = copy.deepcopy(list(out.objects))
    gone = copy.deepcopy(next(o for o in current if o["kind"] == "WorkloadEntry"))
    gone["metadata"]["name"] = "pay-gw-pay-app-dc9-k8s-10-9-0-1"  # its VIP left discovery
    gone["spec"]["address"] = "10.9.0.1"
    name = "WorkloadEntry pay/pay-gw-pay-app-dc9-k8s-10-9-0-1"
    now = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)

    def plan(stamp: str | None, objects: list[dict[str, Any]] | None = None) -> list[str]:
        old = copy.deepcopy(gone)
        if stamp is not None:
            old["metadata"]["annotations"]["gtm.io/withdrawn-at"] = stamp
        have = [*current, old] if objects is None else [*objects, old]
        return [
            c.line() for c in plan_cluster("pay-gw", out, have, withdraw_after=30, now=now).changes
        ]

    assert plan(None) == [
        f"withdraw {name}: VIP 10.9.0.1 no longer discovered: Healthy=False now, deleted after 30s"
    ]
    assert plan("2026-12-07T11:59:50Z") == [f"wait {name}: VIP 10.9.0.1 withdrawn; deleted in 20s"]
    assert plan("2026-12-07T11:59:30Z") == [f"delete {name}"]
    assert plan("not a time") == [  # a stamp gtm cannot read is written again, not trusted
        f"withdraw {name}: VIP 10.9.0.1 no longer discovered: Healthy=False now, deleted after 30s"
    ]
    # without withdraw_after (or when held), as before: deleted at once, or held
    assert [c.action for c in plan_cluster("pay-gw", out, [*current, gone]).changes] == ["delete"]
    held = plan_cluster("pay-gw", out, [*current, gone], hold_deletes="x", withdraw_after=30)
    assert [c.action for c in held.changes] == ["hold"]
    # an upstream no longer named takes its ServiceEntry along: its WLEs go at once
    template = ap()["spec"]["trafficTemplate"]
    template.pop("virtualService")
    alone = render(parse_accesspoint(ap(upstreams=[], trafficTemplate=template)), DC2, THREE)
    assert not alone.problems
    lines = [
        c.line()
        for c in plan_cluster("pay-gw", alone, current, withdraw_after=30, now=now).changes
        if c.key[1] == "WorkloadEntry"
    ]
    assert lines and all(line.startswith("delete ") for line in lines)


def test_a_vip_discovered_again_is_restored() -> None:
    out = render(parse_accesspoint(ap()), DC2, THREE)
    current = copy.deepcopy(list(out.objects))
    back = next(o for o in current if o["kind"] == "WorkloadEntry")
    back["metadata"]["annotations"]["gtm.io/withdrawn-at"] = "2026-12-07T11:59:50Z"
    plan = plan_cluster("pay-gw", out, current, withdraw_after=30)
    (change,) = plan.changes
    assert change.action == "restore" and change.line().endswith(": discovered again")
    assert "1 restore" in plan.lines()[0]
