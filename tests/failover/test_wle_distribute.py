"""DestinationRule `distribute` conflicts: the pure finder, and the reconciler reporting them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, CustomObjectsApi
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs
from wle_fixtures import (
    GROUP,
    LOCALITIES,
    NS,
    converged,
    held,
    make_estate,
    reconciler,
    seed_baseline,
    sim_fixture,  # noqa: F401
    table,
)

from chaos.kubesim import DEFAULT_RESOURCES, Faults, KubeSim
from failover import Reconciler
from failover.distribute import (
    DistributeConflict,
    distribute_conflicts,
    host_matches,
    locality_matches,
    resolve_host,
)

DR = "destinationrules"
SERVICES = {"svc0": "svc0.example.com", "svc1": "svc1.example.com", "kube": "api.mesh.svc.local"}
TO_DC2 = [{"from": "region01/*", "to": {"region02/*": 100}}]
PIN = (
    "mesh/pin (host svc0.example.com): distribute from region01/* sends 100% to region02/*,"
    " dc1 and dc3 get nothing: gtm's weights for svc0 (svc0.example.com) are ignored"
)


def lb(distribute: Any = TO_DC2, **setting: Any) -> dict[str, Any]:
    return {"localityLbSetting": {"distribute": distribute, **setting}}


def rule(
    name: str,
    host: str,
    *,
    namespace: str = NS,
    load_balancer: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"host": host, **spec}
    if load_balancer is not None:
        body.setdefault("trafficPolicy", {})["loadBalancer"] = load_balancer
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def found(*rules: dict[str, Any], services: dict[str, str] = SERVICES) -> list[str]:
    return [str(c) for c in distribute_conflicts(rules, services, LOCALITIES, domain="local")]


# -- the pure finder --------------------------------------------------------------------


def test_no_rule_no_conflict() -> None:
    assert distribute_conflicts([], SERVICES) == ()


def test_a_rule_without_distribute_is_no_conflict() -> None:
    failover = {"localityLbSetting": {"enabled": True, "failover": [{"from": "a", "to": "b"}]}}
    assert (
        found(
            rule("plain", "svc0.example.com"),
            rule("simple", "svc0.example.com", load_balancer={"simple": "LEAST_REQUEST"}),
            rule("failover", "svc1.example.com", load_balancer=failover),
            rule("empty", "svc1.example.com", load_balancer=lb([])),
        )
        == []
    )


def test_distribute_on_the_host_names_rule_host_service_and_effect() -> None:
    (conflict,) = distribute_conflicts(
        [rule("pin", "svc0.example.com", load_balancer=lb())], SERVICES, LOCALITIES
    )
    assert conflict == DistributeConflict(
        rule="mesh/pin",
        host="svc0.example.com",
        service="svc0",
        fqdn="svc0.example.com",
        where="",
        selector="",
        what="from region01/* sends 100% to region02/*, dc1 and dc3 get nothing",
    )
    assert str(conflict) == PIN


def test_every_from_is_described_with_the_regions_it_leaves_out() -> None:
    split = [
        {"from": "region01/az01/*", "to": {"region01/az01/*": 80, "region02/*": 20}},
        {"from": "*", "to": {"*": 100}},
    ]
    (conflict,) = distribute_conflicts(
        [rule("split", "svc1.example.com", load_balancer=lb(split))], SERVICES, LOCALITIES
    )
    assert conflict.what == (
        "from region01/az01/* sends 80% to region01/az01/*, 20% to region02/*, dc3 gets nothing;"
        " from * sends 100% to *"
    )


def test_distribute_on_a_port_and_on_a_subset() -> None:
    policy = {"portLevelSettings": [{"port": {"number": 443}, "loadBalancer": lb()}]}
    subsets = [
        {"name": "v1", "trafficPolicy": {"loadBalancer": lb()}},
        {"name": "v2", "trafficPolicy": policy},
        {"name": "v3"},
    ]
    conflicts = distribute_conflicts(
        [rule("ports", "svc0.example.com", trafficPolicy=policy, subsets=subsets)], SERVICES
    )
    assert [c.where for c in conflicts] == ["port 443", "subset v1", "subset v2 port 443"]
    assert "(host svc0.example.com, port 443): distribute" in str(conflicts[0])


def test_wildcard_host_covers_every_managed_service_under_it() -> None:
    assert [
        (c.service, c.host)
        for c in distribute_conflicts([rule("all", "*.example.com", load_balancer=lb())], SERVICES)
    ] == [("svc0", "*.example.com"), ("svc1", "*.example.com")]
    assert {
        c.service
        for c in distribute_conflicts([rule("mesh-wide", "*", load_balancer=lb())], SERVICES)
    } == set(SERVICES)
    deeper = distribute_conflicts([rule("deep", "*.com", load_balancer=lb())], SERVICES)
    assert [c.service for c in deeper] == ["svc0", "svc1"]  # several labels match too
    assert found(rule("sub", "*.svc0.example.com", load_balancer=lb())) == []


def test_a_host_gtm_does_not_manage_is_no_conflict() -> None:
    assert (
        found(
            rule("other", "svc9.example.com", load_balancer=lb()),
            rule("elsewhere", "*.example.org", load_balancer=lb()),
            rule("prefix", "xsvc0.example.com", load_balancer=lb()),
        )
        == []
    )


def test_short_names_are_services_of_the_rule_namespace() -> None:
    assert resolve_host("svc0", "mesh") == "svc0.mesh.svc.cluster.local"
    assert resolve_host("SVC0.Example.com.", "mesh") == "svc0.example.com"
    assert resolve_host("10.0.0.1", "mesh") == "10.0.0.1"
    assert resolve_host("fd00::1", "mesh") == "fd00::1"
    # `svc0` in `mesh` is svc0.mesh.svc.local, not the ServiceEntry host svc0.example.com
    assert found(rule("short", "svc0", load_balancer=lb())) == []
    (conflict,) = distribute_conflicts(
        [rule("api", "api", load_balancer=lb())], SERVICES, domain="local"
    )
    assert (conflict.service, conflict.host) == ("kube", "api")
    assert host_matches("svc0.example.com", "svc0.example.com")
    assert not host_matches("*.svc0.example.com", "svc0.example.com")


def test_the_most_specific_host_of_a_namespace_wins() -> None:
    exact_without = rule("exact", "svc0.example.com", load_balancer={"simple": "RANDOM"})
    wild = rule("wild", "*.example.com", load_balancer=lb())
    assert [c.service for c in distribute_conflicts([exact_without, wild], SERVICES)] == ["svc1"]
    longer = rule("longer", "*.example.com", load_balancer={"simple": "RANDOM"})
    shorter = rule("shorter", "*.com", load_balancer=lb())
    assert found(longer, shorter) == []
    # another namespace's rules are judged on their own
    elsewhere = rule("wild", "*.example.com", namespace="team-a", load_balancer=lb())
    assert {c.rule for c in distribute_conflicts([exact_without, elsewhere], SERVICES)} == {
        "team-a/wild"
    }
    # same host twice: istiod merges them (oldest policy wins); each distribute is reported
    twice = [
        rule("a", "svc0.example.com", load_balancer=lb()),
        rule("b", "svc0.example.com", load_balancer=lb()),
    ]
    assert [c.rule for c in distribute_conflicts(twice, SERVICES)] == ["mesh/a", "mesh/b"]


def test_a_rule_with_a_workload_selector_is_reported_for_its_workloads() -> None:
    exact = rule("exact", "svc0.example.com")
    scoped = rule(
        "scoped",
        "*.example.com",
        load_balancer=lb(),
        workloadSelector={"matchLabels": {"app": "web", "tier": "edge"}},
    )
    conflicts = distribute_conflicts([exact, scoped], {"svc0": "svc0.example.com"})
    assert [c.selector for c in conflicts] == ["app=web,tier=edge"]
    assert "(host *.example.com, workloads app=web,tier=edge)" in str(conflicts[0])


def test_a_disabled_locality_setting_is_no_conflict() -> None:
    assert found(rule("off", "svc0.example.com", load_balancer=lb(enabled=False))) == []
    assert len(found(rule("on", "svc0.example.com", load_balancer=lb(enabled=True)))) == 1


def test_odd_rules_do_not_break_the_finder() -> None:
    odd = [
        {"metadata": {"name": "nospec", "namespace": NS}},
        rule("weird", "svc0.example.com", trafficPolicy=[], subsets="v1"),
        rule("junk", "svc0.example.com", load_balancer=lb(["x", {"from": 1, "to": [1]}])),
        rule("types", "svc1.example.com", load_balancer=lb([{"to": {"a/*": True, "b/*": "50"}}])),
    ]
    conflicts = distribute_conflicts(odd, SERVICES)
    assert [c.rule for c in conflicts] == ["mesh/junk", "mesh/types"]
    assert conflicts[1].what == "from  sends nothing anywhere"


@pytest.mark.parametrize(
    ("locality", "pattern", "matches"),
    [
        ("region01/az01", "region01/*", True),
        ("region01/az01", "region01", True),
        ("region01/az01", "*", True),
        ("region01/az01", "region01/az01/*", True),
        ("region01/az01/rack7", "region01/az01/rack7", True),
        ("region01/az01", "region01/az02", False),
        ("region01/az01", "region02/*", False),
        ("region01", "region01/az01", False),
    ],
)
def test_locality_matches_like_istio(locality: str, pattern: str, matches: bool) -> None:
    assert locality_matches(locality, pattern) is matches


# -- the reconciler reports them ---------------------------------------------------------


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - the state is in the reconciler, no event to await
            await asyncio.sleep(0.02)


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


@pytest.fixture
async def api(sim: KubeSim) -> AsyncIterator[CustomObjectsApi]:
    async with ApiClient(sim.configuration()) as client:
        yield CustomObjectsApi(client)


async def running_with_table(r: Reconciler, estate: Any) -> None:
    base = table(estate)
    r.set_table(base, epoch=1, may_write=held)
    await converged(r, base.generation)


async def test_reconciler_reports_a_conflict_then_its_clearing_without_writing_it(
    sim: KubeSim, api: CustomObjectsApi
) -> None:
    estate = make_estate(2)
    seed_baseline(sim, estate)
    registry = CollectorRegistry()
    gauge = {"cluster": "dc1"}
    with capture_logs() as logs:
        async with (
            reconciler(sim, estate, registry=registry, rules_resync=0.05) as r,
            r.running(),
        ):
            await running_with_table(r, estate)
            assert r.progress().conflicts == ()
            created = await api.create_namespaced_custom_object(
                GROUP, "v1", NS, DR, rule("pin", "svc0.example.com", load_balancer=lb())
            )
            await eventually(lambda: r.progress().conflicts != ())
            assert r.progress().conflicts == (PIN,)
            assert r.progress().converged  # the WLEs hold their targets; the rule is reported
            assert f"conflict: {PIN}" in str(r.progress())
            assert registry.get_sample_value("gtm_mesh_distribute_conflicts", gauge) == 1
            await asyncio.sleep(0.3)  # several more scans: still one warning
            now = await api.get_namespaced_custom_object(GROUP, "v1", NS, DR, "pin")
            assert now["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
            await api.delete_namespaced_custom_object(GROUP, "v1", NS, DR, "pin")
            await eventually(lambda: r.progress().conflicts == ())
            assert registry.get_sample_value("gtm_mesh_distribute_conflicts", gauge) == 0
    (raised,) = events(logs, "mesh.distribute_conflict")
    assert raised["log_level"] == "warning"
    assert (raised["rule"], raised["service"], raised["conflict"]) == ("mesh/pin", "svc0", PIN)
    (cleared,) = events(logs, "mesh.distribute_conflict_cleared")
    assert cleared["conflict"] == PIN
    writes = {
        (row["verb"], row["count"])
        for row in sim.stats()["requests"]
        if row["resource"].startswith(DR) and row["verb"] not in ("get", "list", "watch")
    }
    assert writes == {("create", 1), ("delete", 1)}  # the test's own: gtm never writes a rule


async def test_destinationrules_not_served_is_reported_once_and_harmless() -> None:
    estate = make_estate(2)
    served = tuple(r for r in DEFAULT_RESOURCES if r.plural != DR)
    async with KubeSim(host="127.0.0.1", port=0, resources=served, seed=1) as sim:
        seed_baseline(sim, estate)
        with capture_logs() as logs:
            async with reconciler(sim, estate, rules_resync=0.05) as r, r.running():
                await running_with_table(r, estate)
                await eventually(lambda: sim.stats()["by_code"].get("404", 0) >= 3)
                assert r.progress().conflicts == () and r.progress().converged
    (unread,) = events(logs, "mesh.destinationrules_unreadable")
    assert unread["why"] == "destinationrules not served"
    assert unread["log_level"] == "warning"


async def test_forbidden_destinationrules_are_reported_once_then_read_when_allowed(
    sim: KubeSim, api: CustomObjectsApi
) -> None:
    estate = make_estate(2)
    seed_baseline(sim, estate)
    sim.faults.set(Faults(forbidden=(DR,)))
    sim.seed(rule("wild", "*.example.com", load_balancer=lb()))  # straight into the store
    with capture_logs() as logs:
        async with reconciler(sim, estate, rules_resync=0.05) as r, r.running():
            await running_with_table(r, estate)
            await eventually(lambda: sim.faults.injected.get("forbidden", 0) >= 3)
            assert r.progress().conflicts == ()  # cannot be seen, and the WLEs are fine
            sim.faults.clear()  # RBAC fixed
            await eventually(lambda: len(r.progress().conflicts) == 2)
    (unread,) = events(logs, "mesh.destinationrules_unreadable")
    assert unread["why"] == "destinationrules forbidden"
    assert 'User "system:anonymous" cannot list' in unread["detail"]
    assert len(events(logs, "mesh.destinationrules_readable")) == 1
    assert len(events(logs, "mesh.distribute_conflict")) == 2
