"""The AccessPoint steps and checks: each check holds on synthetic samples and fails when
violated; the documents are checked when the drill loads; the driver and the observer
against a simulated estate (clusters and L4 controllers, no members)."""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from drill_testing import FACTS, VIP, drill, record, sample, step

from accesspoints import parse_accesspoint
from chaos.drills.apchecks import value_at
from chaos.drills.aps import ApDoc, ApDriver, ApObserver, kube_object, move_ports
from chaos.drills.assertions import evaluate
from chaos.drills.checks import status_path
from chaos.drills.effects import effect_of
from chaos.drills.layout import DrillPorts, find_free_base
from chaos.drills.model import DrillError, load_drill
from chaos.drills.samples import (
    ApState,
    KubeObject,
    Sample,
    ServiceFacts,
    dump_record,
    load_record,
)
from chaos.drills.steps import AccesspointApply, AccesspointDelete, L4Withdraw
from chaos.drills.verdict import Verdict
from chaos.estate import SimulatedEstate
from chaos.estate.clusters import client_configuration
from gtm.config import load
from kube import Client

ROOT = Path(__file__).resolve().parents[3]
FAST = ROOT / "chaos" / "drills" / "estates" / "fast.yaml"
TWO_TIER = ROOT / "chaos" / "drills" / "accesspoints" / "two-tier.yaml"
REGIONS = ("dc1", "dc2", "dc3")
NS = "gtm-mesh"
IP = {r: VIP[r].split("/")[2].split(":")[0] for r in REGIONS}  # 127.0.N.1


def ap_doc(name: str, *, gtm: bool = False, upstream: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scope": {"clusters": list(REGIONS)},
        "trafficTemplate": {
            "service": {
                "spec": {
                    "type": "LoadBalancer",
                    "loadBalancerClass": "gtm.io/ipvs",
                    "ports": [{"name": "tls", "port": 443, "protocol": "TCP"}],
                }
            }
        },
    }
    if gtm:
        spec["gtm"] = {"fqdn": f"{name}.example.com", "policy": "default"}
    if upstream:
        spec["upstreams"] = [{"accessPoint": upstream, "port": {"number": 443, "name": "tls"}}]
    return {
        "apiVersion": "gtm.io/v1alpha1",
        "kind": "AccessPoint",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


# `foo` (the synthetic estate's service, one VIP per region) as an AP with spec.gtm, and a
# gateway AP with it as upstream
DOCS = (ap_doc("foo", gtm=True), ap_doc("foo-gw", upstream="foo"))
APPLY = [{"id": "apply", "at": "1s", "do": "accesspoint_apply", "accesspoints": list(DOCS)}]


def service(ap: str, region: str, ingress: bool = True) -> KubeObject:
    return KubeObject(
        "Service", NS, ap, f"uid-{ap}-{region}", ap, True, None,
        (IP[region],) if ingress and ap == "foo" else (f"127.1.9.{REGIONS.index(region)}",)
        if ingress else (), 443,
    )  # fmt: skip


def wle(
    target: str, healthy: bool | None = True, message: str | None = None, owner: str = "foo-gw"
) -> KubeObject:
    return KubeObject(
        "WorkloadEntry", NS, f"{owner}-foo-{target}", f"uid-wle-{target}", owner, True, "foo",
        (), None, IP[target], healthy, message,
    )  # fmt: skip


SEED = KubeObject("WorkloadEntry", NS, "bar-dc1", "uid-seed", None, True)  # the seed's: no owner


def objects(
    *,
    ingress: bool = True,
    wles: dict[str, bool | None] | None = None,
    gone: tuple[str, ...] = (),
    gw: bool = True,
    message: str | None = None,
) -> dict[str, tuple[KubeObject, ...]]:
    """Every cluster: foo's and foo-gw's Services, foo-gw's WLEs for foo (Healthy as `wles`
    says, `gone` targets deleted), and a seed WLE labelled managed but as no AP's."""
    health = wles if wles is not None else dict.fromkeys(REGIONS, True)
    out = {}
    for c in REGIONS:
        items = [service("foo", c, ingress), SEED]
        if gw:
            items.append(service("foo-gw", c, ingress))
            items += [wle(t, health.get(t), message) for t in REGIONS if t not in gone]
        out[c] = tuple(items)
    return out


def with_aps(
    s: Sample,
    objs: dict[str, tuple[KubeObject, ...]] | None,
    status: dict[str, dict[str, Any]] | None = None,
) -> Sample:
    states = {
        f"{NS}/{name}": ApState(NS, name, 1, st)
        for name, st in (status if status is not None else {"foo": {}, "foo-gw": {}}).items()
    }
    return replace(s, objects=objs or {}, accesspoints=states)


def rec(samples: list[Sample], steps: list[Any]) -> Any:
    return replace(record(samples, steps), accesspoints={"apply": DOCS})


def verdict(verdicts: list[Verdict], kind: str) -> Verdict:
    return next(v for v in verdicts if v.kind == kind)


# --- accesspoint_ready --------------------------------------------------------------------------


def ready_samples(wles_at: float, healthy_at: float, dns: dict[str, Any] | None = None) -> list:
    out = []
    for i in range(20):
        t = i * 0.5
        if t < 2.0:  # nothing rendered yet: no VIP, no WLE, DNS not answering foo
            s = sample(t, dns={"foo": {r: ("rcode:NXDOMAIN",) for r in REGIONS}})
            out.append(with_aps(s, objects(ingress=False, gw=False)))
            continue
        s = sample(t, dns=dns)
        health = dict.fromkeys(REGIONS, t >= healthy_at)
        objs = objects(wles=health, gone=() if t >= wles_at else REGIONS)
        out.append(with_aps(s, objs))
    return out


def test_ready_times_dns_and_the_gateways_wles() -> None:
    check = {"check": "accesspoint_ready", "step": "apply", "dns_within": "3s", "wles_within": "4s"}
    r = rec(ready_samples(wles_at=3.0, healthy_at=4.0), [step("apply", "accesspoint_apply", 1.0)])
    v = verdict(evaluate(drill(APPLY, [check]), r), "accesspoint_ready")
    assert v.state == "passed", v
    assert v.values["dns_max"] == 1.0 and v.values["wles_max"] == 3.0


def test_ready_fails_while_a_wle_is_not_healthy_or_dns_answers_elsewhere() -> None:
    check = {"check": "accesspoint_ready", "step": "apply", "dns_within": "3s", "wles_within": "4s"}
    r = rec(ready_samples(wles_at=3.0, healthy_at=99.0), [step("apply", "accesspoint_apply", 1.0)])
    v = verdict(evaluate(drill(APPLY, [check]), r), "accesspoint_ready")
    assert v.state == "failed" and "wles never" in v.measured
    assert "Healthy=False" in v.details[0], v.details
    stray = {"foo": {r: ("addr:10.9.9.9",) for r in REGIONS}}
    r = rec(ready_samples(3.0, 3.0, dns=stray), [step("apply", "accesspoint_apply", 1.0)])
    v = verdict(evaluate(drill(APPLY, [check]), r), "accesspoint_ready")
    assert v.state == "failed" and "answered" in v.details[0] and "addr:10.9.9.9" in v.details[0]


# --- withdrawn ----------------------------------------------------------------------------------

WITHDRAW = [*APPLY, {"id": "wd", "at": "2s", "do": "l4_withdraw", "cluster": "dc2",
                     "accesspoint": "foo"}]  # fmt: skip
WITHDRAWN = {"check": "withdrawn", "step": "wd", "within": "2s", "deleted_within": "6s"}


def withdraw_samples(out_at: float, gone_at: float, back_at: float | None = None) -> list:
    out = []
    for i in range(24):
        t = i * 0.5
        healthy = not (out_at <= t < (back_at or 99.0))
        objs = objects(
            wles={"dc1": True, "dc2": healthy, "dc3": True},
            gone=("dc2",) if t >= gone_at else (),
            message=None if healthy else "VIP Withdrawn",
        )
        out.append(with_aps(sample(t), objs))
    return out


def withdraw_verdict(samples: list) -> Verdict:
    steps = [step("apply", "accesspoint_apply", 1.0), step("wd", "l4_withdraw", 2.0)]
    return verdict(evaluate(drill(WITHDRAW, [WITHDRAWN]), rec(samples, steps)), "withdrawn")


def test_withdrawn_out_first_then_deleted_after_the_hold() -> None:
    v = withdraw_verdict(withdraw_samples(out_at=3.0, gone_at=6.5))
    assert v.state == "passed", v
    assert "3 WLE(s) of VIP 127.0.2.1" in v.measured and "VIP Withdrawn" in v.measured
    assert v.values["out_max"] == 1.0 and v.values["kept_min"] == 3.5


def test_withdrawn_fails_when_deleted_before_the_hold_or_without_going_out() -> None:
    v = withdraw_verdict(withdraw_samples(out_at=3.0, gone_at=4.5))
    assert v.state == "failed" and any("before the hold (3s)" in d for d in v.details), v
    v = withdraw_verdict(withdraw_samples(out_at=99.0, gone_at=4.5))
    assert v.state == "failed"
    assert any("without going Healthy=False first" in d for d in v.details), v.details


def test_withdrawn_fails_when_a_wle_goes_back_to_healthy() -> None:
    v = withdraw_verdict(withdraw_samples(out_at=3.0, gone_at=8.0, back_at=4.0))
    assert v.state == "failed" and any("Healthy=True again" in d for d in v.details), v.details


def test_withdrawn_fails_when_never_deleted() -> None:
    v = withdraw_verdict(withdraw_samples(out_at=3.0, gone_at=99.0))
    assert v.state == "failed" and any("not deleted within 6s" in d for d in v.details), v


# --- swept --------------------------------------------------------------------------------------

DELETE = [*APPLY, {"id": "del", "at": "2s", "do": "accesspoint_delete", "accesspoint": "foo-gw"}]


def delete_samples(swept_at: float, lose_seed_at: float = 99.0, home_until: float = 0.0) -> list:
    out = []
    for i in range(20):
        t = i * 0.5
        objs = objects(gw=t < swept_at)
        if t >= lose_seed_at:
            objs = {c: tuple(o for o in items if o is not SEED) for c, items in objs.items()}
        status = {"foo": {}} if t >= max(2.0, home_until) else {"foo": {}, "foo-gw": {}}
        out.append(with_aps(sample(t), objs, status))
    return out


def swept_verdict(samples: list) -> Verdict:
    steps = [step("apply", "accesspoint_apply", 1.0), step("del", "accesspoint_delete", 2.0)]
    check = {"check": "swept", "step": "del", "within": "3s"}
    return verdict(evaluate(drill(DELETE, [check]), rec(samples, steps)), "swept")


def test_swept_when_nothing_of_the_ap_is_left_and_nothing_else_moved() -> None:
    v = swept_verdict(delete_samples(swept_at=3.5))
    assert v.state == "passed", v
    assert v.values["seconds"] == 1.5
    assert "12 object(s) of foo-gw in 3 clusters" in v.measured and "6/6 other" in v.measured


def test_swept_fails_when_another_object_goes_or_the_ap_stays() -> None:
    v = swept_verdict(delete_samples(swept_at=3.5, lose_seed_at=4.0))
    assert v.state == "failed"
    assert any("WorkloadEntry gtm-mesh/bar-dc1 is gone" in d for d in v.details), v.details
    v = swept_verdict(delete_samples(swept_at=99.0))
    assert v.state == "failed" and "not swept (12 left" in v.measured
    v = swept_verdict(delete_samples(swept_at=3.0, home_until=99.0))
    assert v.state == "failed" and "still in the home cluster" in v.details[0]


# --- accesspoint_status -------------------------------------------------------------------------


def test_status_values_by_path() -> None:
    status = {
        "conditions": [
            {"type": "Applied", "status": "True"},
            {"type": "Degraded", "status": "False"},
        ],
        "clusters": [{"name": "dc1", "applied": True}],
        "rollout": {"phase": "Aborted", "step": 2},
    }
    assert value_at(status, status_path("conditions[type=Degraded].status")) == "False"
    assert value_at(status, status_path("clusters[name=dc1].applied")) is True
    assert value_at(status, status_path("conditions[1].type")) == "Degraded"
    assert value_at(status, status_path("rollout.step")) == 2
    for missing in ("rollout.cluster", "conditions[type=Nope].status", "conditions[5]", "x.y"):
        assert value_at(status, status_path(missing)) is not status


def test_status_check_waits_for_the_value() -> None:
    phases = ["Progressing"] * 6 + ["Aborted"] * 14
    samples = [
        with_aps(sample(i * 0.5), objects(), {"foo": {"rollout": {"phase": p}}})
        for i, p in enumerate(phases)
    ]
    steps = [step("apply", "accesspoint_apply", 1.0)]
    check = {"check": "accesspoint_status", "step": "apply", "accesspoint": "foo",
             "path": "rollout.phase", "equals": "aborted", "within": "3s"}  # fmt: skip
    v = verdict(evaluate(drill(APPLY, [check]), rec(samples, steps)), "accesspoint_status")
    assert v.state == "passed" and v.values["seconds"] == 2.0, v
    v = verdict(
        evaluate(drill(APPLY, [{**check, "within": "1s"}]), rec(samples, steps)),
        "accesspoint_status",
    )
    assert v.state == "failed"
    never = {**check, "equals": "Complete"}
    v = verdict(evaluate(drill(APPLY, [never]), rec(samples, steps)), "accesspoint_status")
    assert v.state == "failed" and "'Aborted' at the last look" in v.measured
    boolean = {**check, "path": "conditions[type=Degraded].status", "equals": False}
    degraded = {"conditions": [{"type": "Degraded", "status": "False"}]}
    samples = [with_aps(sample(i * 0.5), objects(), {"foo": degraded}) for i in range(6)]
    v = verdict(evaluate(drill(APPLY, [boolean]), rec(samples, steps)), "accesspoint_status")
    assert v.state == "passed", v


# --- what every drill checks, with an onboarded service -----------------------------------------


def test_answers_count_an_onboarded_service_once_a_member_answers_it() -> None:
    facts = replace(
        FACTS,
        services={
            "foo": replace(FACTS.services["foo"], accesspoint=f"{NS}/foo"),
        },
    )
    early = {"foo": {r: ("rcode:NXDOMAIN",) for r in REGIONS}}
    samples = [sample(i * 0.5, dns=early if i < 4 else None) for i in range(10)]
    r = replace(record(samples, [step("apply", "accesspoint_apply", 1.0)]), estate=facts)
    assert verdict(evaluate(drill(APPLY), r), "answers").state == "passed"
    late = [sample(i * 0.5, dns=early if i in (0, 6) else None) for i in range(10)]
    r = replace(record(late, [step("apply", "accesspoint_apply", 1.0)]), estate=facts)
    v = verdict(evaluate(drill(APPLY), r), "answers")
    assert v.state == "failed" and all("t=3.0s" in d for d in v.details), v.details


def test_a_withdraw_takes_out_the_aps_vips_in_its_cluster() -> None:
    withdraw = L4Withdraw.model_validate(WITHDRAW[1])
    effect = effect_of(withdraw, FACTS)
    assert effect is not None and effect.direction == "out"
    assert effect.vips == {"foo": (VIP["dc2"],)}
    other = L4Withdraw.model_validate({**WITHDRAW[1], "accesspoint": "not-seen"})
    assert effect_of(other, FACTS) == replace(effect, vips={})


def test_the_record_keeps_objects_and_accesspoints() -> None:
    s = with_aps(sample(1.0), objects(), {"foo": {"conditions": [{"type": "L4Ready"}]}})
    r = rec([s], [step("apply", "accesspoint_apply", 1.0)])
    again = load_record(dump_record(r))
    assert again.samples[0].objects == s.objects
    assert again.samples[0].accesspoints == s.accesspoints
    assert again.accesspoints["apply"][1]["metadata"]["name"] == "foo-gw"


# --- documents and observation ------------------------------------------------------------------


def test_ports_move_into_the_drills_block() -> None:
    doc = ap_doc("foo")
    moved = move_ports(doc, 1000)
    assert moved["spec"]["trafficTemplate"]["service"]["spec"]["ports"][0]["port"] == 1443
    assert doc["spec"]["trafficTemplate"]["service"]["spec"]["ports"][0]["port"] == 443


def test_objects_as_a_sample_keeps_them() -> None:
    svc = {
        "kind": "Service",
        "metadata": {"name": "a", "namespace": NS, "uid": "u1",
                     "labels": {"gtm.io/accesspoint": "a", "gtm.io/managed": "true"}},
        "spec": {"ports": [{"port": 8443}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "127.1.1.1", "ipMode": "VIP"}]}},
    }  # fmt: skip
    o = kube_object(svc)
    assert (o.ingress, o.port, o.owned_by("a"), o.owned_by("b")) == (
        ("127.1.1.1",),
        8443,
        True,
        False,
    )
    entry = {
        "kind": "WorkloadEntry",
        "metadata": {"name": "w", "namespace": NS, "labels": {"gtm.io/accesspoint": "gw"}},
        "spec": {"address": "127.1.1.1"},
        "status": {"conditions": [{"type": "Healthy", "status": "False", "message": "VIP Down"}]},
    }
    o = kube_object(entry)
    assert (o.address, o.healthy, o.message, o.managed) == ("127.1.1.1", False, "VIP Down", False)
    assert not o.owned_by("gw")  # labelled with the AP's name, not as gtm's: not its own


def test_the_observer_adds_an_aps_vips_to_the_facts_and_keeps_them() -> None:
    file = load_drill(ROOT / "chaos" / "drills" / "library" / "accesspoint.yaml")
    observer = ApObserver(file.accesspoints, file.inventory, {r: "" for r in REGIONS})
    facts = replace(FACTS, services={})

    def shop(region: str, ips: tuple[str, ...]) -> KubeObject:
        return KubeObject("Service", NS, "shop-app", "u", "shop-app", True, None, ips, 26099)

    seen = observer.facts(facts, {"dc1": (shop("dc1", ("127.1.1.1",)),), "dc2": ()})
    known = seen.services["shop-app"]
    assert known == ServiceFacts(
        "shop-app.example.com",
        known.policy,
        {"shop-app/dc1/127.1.1.1:26099": "dc1"},
        {"127.1.1.1": "shop-app/dc1/127.1.1.1:26099"},
        f"{NS}/shop-app",
    )
    assert known.policy.split["dc1"]["dc1"] == 98
    later = observer.facts(seen, {"dc1": (shop("dc1", ()),), "dc2": (shop("dc2", ("127.1.2.1",)),)})
    assert set(later.services["shop-app"].vips) == {
        "shop-app/dc1/127.1.1.1:26099",
        "shop-app/dc2/127.1.2.1:26099",
    }
    assert observer.facts(later, {"dc1": ()}) is later  # nothing new: the same facts


def _drill_text(timeline: str, overrides: str = "{accesspoints: {namespaces: [gtm-mesh]}}") -> str:
    return f"""name: ap
title: AccessPoints
estate: {{path: {FAST}, members_per_region: 1, overrides: {overrides}}}
duration: 20s
timeline:
{timeline}
"""


def test_a_problem_in_an_accesspoint_file_names_that_file_and_line(tmp_path: Path) -> None:
    data = yaml.safe_load(TWO_TIER.read_text())
    data["items"][1]["spec"]["scope"]["clusters"] = ["dc1", "dc7"]
    data["items"][0]["spec"]["gtm"]["policy"] = "nope"
    aps = tmp_path / "aps.yaml"
    aps.write_text(yaml.safe_dump(data, sort_keys=False))
    path = tmp_path / "ap.yaml"
    path.write_text(
        _drill_text(f"  - {{id: apply, at: 1s, do: accesspoint_apply, file: {aps.name}}}")
    )
    with pytest.raises(DrillError) as caught:
        load_drill(path)
    shown = [str(p) for p in caught.value.problems]
    assert any(
        s.startswith(f"{path}:6 timeline[0].file: {aps}:")
        and "items[1].spec.scope.clusters[1]: 'dc7' is not a cluster of the estate" in s
        for s in shown
    ), shown
    data["items"][1]["spec"]["scope"]["clusters"] = ["dc1"]
    aps.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(DrillError) as caught:
        load_drill(path)
    shown = [str(p) for p in caught.value.problems]
    assert any(
        "AccessPoint gtm-mesh/shop-app: spec.gtm.policy 'nope' is not a policy of the estate" in s
        for s in shown
    ), shown


def test_an_action_may_name_the_service_an_ap_onboards(tmp_path: Path) -> None:
    path = tmp_path / "ap.yaml"
    timeline = f"""  - {{id: apply, at: 1s, do: accesspoint_apply, file: {TWO_TIER}}}
  - {{id: exit, at: 2s, do: region_exit, region: dc2, services: [shop-app]}}"""
    path.write_text(_drill_text(timeline))
    loaded = load_drill(path)
    assert [d.key for d in loaded.accesspoints["apply"]] == [f"{NS}/shop-app", f"{NS}/shop-gw"]
    path.write_text(_drill_text(timeline.replace("[shop-app]", "[shop-gw]")))  # no spec.gtm
    with pytest.raises(DrillError) as caught:
        load_drill(path)
    assert any("no service 'shop-gw'" in str(p) for p in caught.value.problems)


def test_steps_must_come_after_the_apply_and_name_a_cluster_in_scope(tmp_path: Path) -> None:
    path = tmp_path / "ap.yaml"
    path.write_text(
        _drill_text(
            f"""  - {{id: apply, at: 5s, do: accesspoint_apply, file: {TWO_TIER}}}
  - {{id: early, at: 2s, do: accesspoint_delete, accesspoint: shop-gw}}
  - {{id: scope, at: 6s, do: l4_withdraw, cluster: dc2, accesspoint: shop-app, namespace: other}}"""
        )
    )
    with pytest.raises(DrillError) as caught:
        load_drill(path)
    shown = [str(p) for p in caught.value.problems]
    assert any(
        "timeline[1].accesspoint: no AccessPoint 'shop-gw' is applied by an earlier step" in s
        for s in shown
    ), shown
    assert any("timeline[2].accesspoint: no AccessPoint 'shop-app' in namespace 'other'" in s
               for s in shown), shown  # fmt: skip


# --- the driver and the observer, against simulated clusters ----------------------------------


async def _until(check: Any, within: float = 10.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        got = await check()
        if got:
            return got
        assert loop.time() < deadline, "not within the deadline"
        await asyncio.sleep(0.2)


async def test_apply_replace_withdraw_restore_delete_in_a_simulated_estate(tmp_path: Path) -> None:
    data = yaml.safe_load(FAST.read_text())
    data["accesspoints"] = {"namespaces": [NS], "resync": "2s"}
    source = tmp_path / "estate.yaml"
    source.write_text(yaml.safe_dump(data, sort_keys=False))
    ports = DrillPorts(find_free_base(random.randrange(30000, 32000, 100)))
    docs = {"apply": (ApDoc(ap_doc("foo", gtm=True), parse_accesspoint(ap_doc("foo", gtm=True))),)}
    offset = ports.vip_offset(load(source))
    async with SimulatedEstate(
        source, tmp_path / "work", base_port=ports.base, vip_port_offset=offset, pair=("a",)
    ) as est:
        driver = ApDriver(est, docs, port_offset=offset)
        observer = ApObserver(docs, est.inventory, est.cluster_urls)
        async with aiohttp.ClientSession() as session:

            async def get(url: str) -> Any:
                async with session.get(url) as r:
                    return await r.json()

            try:
                apply = AccesspointApply.model_validate(APPLY[0])
                assert "gtm-mesh/foo created" in await driver.apply(apply)
                _, aps = await observer.look(get)
                assert aps[f"{NS}/foo"].generation == 1
                port = docs["apply"][0].doc["spec"]["trafficTemplate"]["service"]["spec"]["ports"]
                assert port[0]["port"] == 443  # the document as written is not changed
                assert "replaced" in await driver.apply(apply)  # the same again: kept as is
                # foo's Service as a leader would render it, with the port moved
                home = load(est.member_configs["dc1-a"]).config.accesspoints.cluster
                assert home == "dc1"
                config = await client_configuration(est.kubeconfig, "dc2")
                body = move_ports(ap_doc("foo"), offset)["spec"]["trafficTemplate"]["service"]
                body = {"apiVersion": "v1", "kind": "Service", **body,
                        "metadata": {"name": "foo", "namespace": NS,
                                     "labels": {"gtm.io/accesspoint": "foo", "gtm.io/managed": "true"}}}  # fmt: skip
                async with Client(config) as client:
                    await client.request(
                        "create", partial(client.core.create_namespaced_service, NS, body)
                    )

                async def vip() -> tuple[str, ...]:
                    objs, _ = await observer.look(get)
                    return next(o.ingress for o in objs["dc2"] if o.kind == "Service")

                ip = (await _until(vip))[0]
                assert ip.startswith("127.1.2.")
                objs, _ = await observer.look(get)
                facts = observer.facts(replace(FACTS, services={}), objs)
                assert list(facts.services["foo"].vips) == [f"foo/dc2/{ip}:{443 + offset}"]
                withdraw = L4Withdraw.model_validate(
                    {"id": "wd", "at": "1s", "do": "l4_withdraw", "cluster": "dc2",
                     "accesspoint": "foo", "restore_after": "1s"}
                )  # fmt: skip
                detail, restore = await driver.withdraw(withdraw)
                assert detail == f"VIP {ip} of Service {NS}/foo withdrawn in dc2"
                assert await _until(lambda: _not(vip))
                assert restore is not None and "back in dc2" in await restore()
                assert await _until(vip) == (ip,)
                delete = AccesspointDelete.model_validate(
                    {"id": "del", "at": "1s", "do": "accesspoint_delete", "accesspoint": "foo"}
                )
                assert "deleted from dc1" in await driver.delete(delete)
                _, aps = await observer.look(get)
                assert aps == {}
            finally:
                await driver.aclose()


async def _not(check: Any) -> bool:
    return not await check()


# --- a staged rollout: what it must not touch ----------------------------------------------------

ROLLOUT = [*APPLY, {"id": "ro", "at": "2s", "do": "accesspoint_apply", "accesspoints": [DOCS[0]]}]


def rollout_samples(dc2_template_at: float = 99.0, dc2_changed_at: float = 99.0) -> list:
    out = []
    for i in range(16):
        t = i * 0.5
        status = {
            "clusters": [
                {"name": "dc1", "template": "new" if t >= 2.5 else "old"},
                {"name": "dc2", "template": "new" if t >= dc2_template_at else "old"},
            ]
        }
        objs = objects()
        if t >= dc2_changed_at:
            changed = replace(objs["dc2"][0], digest="other")
            objs["dc2"] = (changed, *objs["dc2"][1:])
        out.append(with_aps(sample(t), objs, {"foo": status, "foo-gw": {}}))
    return out


def rollout_verdict(samples: list, check: dict[str, Any]) -> Verdict:
    steps = [step("apply", "accesspoint_apply", 1.0), step("ro", "accesspoint_apply", 2.0)]
    r = replace(rec(samples, steps), accesspoints={"apply": DOCS, "ro": DOCS[:1]})
    return verdict(evaluate(drill(ROLLOUT, [check]), r), check["check"])


def test_a_status_field_unchanged_after_a_step() -> None:
    check = {"check": "accesspoint_status", "step": "ro", "path": "clusters[name=dc2].template",
             "unchanged": True}  # fmt: skip
    v = rollout_verdict(rollout_samples(), check)
    assert v.state == "passed" and "'old' at 12 looks" in v.measured, v
    v = rollout_verdict(rollout_samples(dc2_template_at=4.0), check)
    assert v.state == "failed" and "'old' became 'new' after 2.0s" in v.measured, v
    dc1 = {**check, "path": "clusters[name=dc1].template"}
    assert rollout_verdict(rollout_samples(), dc1).state == "failed"


def test_untouched_clusters_keep_the_aps_objects_as_they_were() -> None:
    check = {"check": "untouched", "step": "ro", "clusters": ["dc2", "dc3"]}
    v = rollout_verdict(rollout_samples(), check)
    assert v.state == "passed" and "2 object(s) of foo in dc2, dc3: as they were" in v.measured
    v = rollout_verdict(rollout_samples(dc2_changed_at=5.0), check)
    assert v.state == "failed"
    assert v.details == ("t=5.0s dc2: Service gtm-mesh/foo changed",), v.details


def test_a_status_check_says_one_thing() -> None:
    base = {"check": "accesspoint_status", "step": "apply", "path": "rollout.phase"}
    for wrong, why in (
        ({}, "give `equals` (with `within`) or `unchanged: true`"),
        ({"equals": "Aborted"}, "`equals` needs `within`"),
        ({"equals": "Aborted", "within": "5s", "unchanged": True}, "give `equals`"),
        ({"unchanged": True, "within": "5s"}, "no `within`"),
    ):
        with pytest.raises(ValueError, match=re.escape(why)):
            drill(APPLY, [{**base, **wrong}])
