"""The staged rollout, pure: which clusters may take a template revision, and when it
pauses, aborts, resumes and completes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from accesspoints import AccessPointError, parse_accesspoint
from accesspoints.rollout import Resume, order_of, progress, template_revision

NOW = datetime(2026, 12, 8, 3, 0, 0, tzinfo=UTC)


def _ap(rollout: Mapping[str, Any] | None = None, **spec: Any) -> Any:
    doc = {
        "apiVersion": "gtm.io/v1alpha1",
        "kind": "AccessPoint",
        "metadata": {"name": "orders", "namespace": "orders"},
        "spec": {
            "scope": {"clusters": ["dc1", "dc2", "dc3"]},
            "trafficTemplate": {"service": {"spec": {"type": "LoadBalancer"}}},
            **({"policy": {"rollout": rollout}} if rollout is not None else {}),
            **spec,
        },
    }
    return parse_accesspoint(doc)


def _entry(template: str, since: datetime = NOW, applied: bool = True) -> dict[str, Any]:
    return {
        "template": template,
        "templateSince": f"{since:%Y-%m-%dT%H:%M:%SZ}",
        "applied": applied,
    }


def _run(
    ap: Any,
    entries: Mapping[str, Mapping[str, Any]],
    failing: Mapping[str, Sequence[str]] = {},
    *,
    last: Mapping[str, Any] | None = None,
    resume: Resume | None = None,
    now: datetime = NOW,
) -> Any:
    rev = template_revision(ap)
    return progress(
        ap, rev, entries, lambda c: list(failing.get(c, ())), last=last, resume=resume, now=now
    )


def test_the_order_puts_the_named_clusters_first_and_the_rest_of_the_scope_after() -> None:
    assert order_of(_ap({"order": ["dc3"]})) == ["dc3", "dc1", "dc2"]
    assert order_of(_ap(None)) == ["dc1", "dc2", "dc3"]


def test_one_cluster_at_a_time_each_after_the_previous_gate_held() -> None:
    ap = _ap({"order": ["dc2", "dc1", "dc3"]})
    rev = template_revision(ap)
    p = _run(ap, {})
    assert (p.phase, p.step, p.cluster, p.may_start) == ("Progressing", 1, "dc2", {"dc2"})
    # dc2 took it; its gate does not hold yet: nothing else starts
    p = _run(ap, {"dc2": _entry(rev)}, {"dc2": ["L4Ready (no VIP)"]})
    assert (p.phase, p.cluster, p.may_start) == ("Progressing", "dc2", set())
    assert "L4Ready" in p.message
    p = _run(ap, {"dc2": _entry(rev)})
    assert (p.step, p.cluster, p.may_start) == (2, "dc1", {"dc1"})
    p = _run(ap, {c: _entry(rev) for c in ("dc1", "dc2", "dc3")})
    assert (p.phase, p.step, p.cluster, p.may_start) == ("Complete", 3, None, set())


def test_max_in_flight_starts_that_many_together() -> None:
    ap = _ap({"maxInFlight": 2})
    rev = template_revision(ap)
    assert _run(ap, {}).may_start == {"dc1", "dc2"}
    p = _run(ap, {"dc1": _entry(rev), "dc2": _entry(rev)}, {"dc2": ["Applied"]})
    assert p.may_start == {"dc3"} and p.cluster == "dc2"


def test_a_pause_waits_for_a_resume_of_that_revision() -> None:
    ap = _ap({"pauseAfter": ["dc1"]})
    rev = template_revision(ap)
    entries = {"dc1": _entry(rev)}
    p = _run(ap, entries)
    assert (p.phase, p.step, p.cluster, p.may_start) == ("Paused", 1, "dc1", set())
    assert "gtm accesspoint resume orders -n orders" in p.message
    assert _run(ap, entries, resume=Resume("other", "dc1", NOW)).phase == "Paused"
    p = _run(ap, entries, resume=Resume(rev, "dc1", NOW))
    assert (p.phase, p.may_start) == ("Progressing", {"dc2"})


def test_a_gate_not_held_in_time_aborts_and_stays_aborted_until_resumed() -> None:
    ap = _ap({"gate": {"conditions": ["Applied", "L4Ready"], "timeout": "1m"}})
    rev = template_revision(ap)
    entries = {"dc1": _entry(rev, NOW - timedelta(seconds=61), applied=False)}
    fails = {"dc1": ["Applied (refused: override 0 op 0)"]}
    p = _run(ap, entries, fails)
    assert (p.phase, p.step, p.cluster, p.may_start) == ("Aborted", 1, "dc1", set())
    assert "within 60s" in p.message and "override 0" in p.message
    # aborted stays aborted even once the gate holds, the clusters after it untouched
    later = NOW + timedelta(seconds=5)
    held = _run(ap, {"dc1": _entry(rev)}, last=p.status(), now=later)
    assert (held.phase, held.may_start, held.since) == ("Aborted", set(), p.since)
    # an older resume does not count; a newer one gives the gate a new clock
    old = Resume(rev, "dc1", NOW - timedelta(seconds=10))
    assert _run(ap, entries, fails, last=p.status(), resume=old, now=later).phase == "Aborted"
    again = _run(ap, entries, fails, last=p.status(), resume=Resume(rev, "dc1", later), now=later)
    assert (again.phase, again.cluster) == ("Progressing", "dc1")
    # a new revision is a new rollout
    changed = _ap(
        {"gate": {"conditions": ["Applied", "L4Ready"], "timeout": "1m"}},
        trafficTemplate={"service": {"spec": {"type": "LoadBalancer", "ports": []}}},
    )
    assert _run(changed, entries, last=p.status()).may_start == {"dc1"}


def test_the_template_revision_is_what_shapes_the_objects_only() -> None:
    base = _ap(None)
    assert template_revision(base) == template_revision(_ap({"order": ["dc3"]}))
    assert template_revision(base) == template_revision(_ap(None, gtm={"fqdn": "o.example.com"}))
    other = _ap(None, trafficTemplate={"service": {"spec": {"type": "ClusterIP"}}})
    assert template_revision(base) != template_revision(other)


def test_the_resume_annotation_round_trips_and_garbage_is_none() -> None:
    r = Resume("abc", "dc1", NOW)
    doc = {"metadata": {"annotations": {"gtm.io/rollout-resume": r.annotation()}}}
    assert Resume.of(doc) == r
    for bad in ("{", "[]", '{"revision": "a"}', '{"revision":"a","after":"b","at":"x"}'):
        assert Resume.of({"metadata": {"annotations": {"gtm.io/rollout-resume": bad}}}) is None


@pytest.mark.parametrize(
    ("gate", "problem"),
    [
        ({"conditions": ["Ready"]}, "'Ready' is not a gate condition"),
        ({"timeout": "5 minutes"}, "is not a duration"),
        ({"timeout": "0s"}, "greater than 0"),
        ({"timeout": float("nan")}, "finite"),
    ],
)
def test_a_bad_gate_is_refused_with_its_field(gate: dict[str, Any], problem: str) -> None:
    with pytest.raises(AccessPointError) as e:
        _ap({"gate": gate})
    assert any(p[:4] == ("spec", "policy", "rollout", "gate") for p, _ in e.value.problems)
    assert problem in str(e.value)


def test_go_durations_are_read_as_seconds() -> None:
    assert _ap({"gate": {"timeout": "1m30s"}}).spec.policy.rollout.gate.timeout == 90
    assert _ap({"gate": {"timeout": 45}}).spec.policy.rollout.gate.timeout == 45
