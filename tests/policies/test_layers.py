"""The ordered change: DNS leaves first and comes back last."""

from __future__ import annotations

from policies import Estate, Health, Kind, Override, Policy, Service, Vip, evaluate
from policies.layers import FirstSeen, layer_intent
from policies.table import Out

T0 = 1_000_000.0
HOLD = 35.0
REGIONS = ("dc1", "dc2", "dc3")


def estate() -> Estate:
    p = Policy.uniform("p", REGIONS, ramp=0.0)
    vips = {
        r: (Vip(Vip.make_id("foo", r, f"10.0.{i}.1", 443), "foo", r, f"10.0.{i}.1", 443),)
        for i, r in enumerate(REGIONS)
    }
    return Estate(REGIONS, (Service("foo", "foo.example.com", p, vips),))


def exit_(at: float) -> Override:
    return Override("x1", Kind.EXIT, "dc2", "alice", "maintenance", at)


def enter(at: float) -> Override:
    return Override("e1", Kind.ENTER, "dc2", "alice", "done", at, expires=at + HOLD, ramp=0.0)


def out_in(overrides: tuple[Override, ...], now: float) -> str | None:
    table = evaluate(estate(), Health(), overrides, None, now).table
    return table.rows["foo"]["dc1"].cells["dc2"].out


def test_exit_reaches_dns_at_once_and_the_mesh_after_the_hold() -> None:
    x = exit_(T0)
    now = layer_intent([x], T0 + 1, HOLD)
    assert now.dns == (x,) and now.mesh == ()
    assert now.mesh_pending == ((x, T0 + HOLD),)
    later = layer_intent([x], T0 + HOLD, HOLD)
    assert later.mesh == (x,) and later.mesh_pending == ()


def test_enter_reaches_the_mesh_at_once_and_dns_after_the_hold() -> None:
    e = enter(T0)
    now = layer_intent([e], T0 + 1, HOLD)
    assert now.mesh == (e,)
    assert out_in(now.mesh, T0 + 1) is None
    assert out_in(now.dns, T0 + 1) == Out.EXIT  # DNS still holds dc2 out
    later = layer_intent([e], T0 + HOLD, HOLD)
    assert out_in(later.dns, T0 + HOLD) is None


def test_rollouts_and_outages_are_not_ordered() -> None:
    r = Override("r1", Kind.ROLLOUT, "dc3", "bob", "deploy", T0)
    li = layer_intent([r], T0 + 1, HOLD)
    assert li.dns == (r,) and li.mesh == (r,)


def test_a_region_that_learns_of_an_exit_late_still_holds_its_mesh() -> None:
    x = exit_(T0)
    learned = T0 + 4.5  # pulled from a peer region
    now = layer_intent([x], learned, HOLD, seen={x.id: learned})
    assert now.dns == (x,) and now.mesh == ()
    assert now.mesh_pending == ((x, learned + HOLD),)
    assert layer_intent([x], learned + HOLD, HOLD, seen={x.id: learned}).mesh == (x,)


def test_an_enter_learned_late_still_keeps_dns_out_for_the_hold() -> None:
    e = enter(T0)
    learned = T0 + 30.0
    li = layer_intent([e], learned + 1, HOLD, seen={e.id: learned})
    assert out_in(li.dns, learned + 1) == Out.EXIT
    assert (
        out_in(layer_intent([e], learned + HOLD, HOLD, seen={e.id: learned}).dns, learned + HOLD)
        is None
    )


def test_first_seen_trusts_creation_at_start_and_the_clock_after() -> None:
    seen = FirstSeen()
    old = exit_(T0)
    assert seen.update([old], T0 + 600) == {old.id: T0}  # a restart does not hold again
    new = Override("x2", Kind.DRAIN, "dc3", "bob", "canary", T0 + 500, services=frozenset({"foo"}))
    assert seen.update([old, new], T0 + 700) == {old.id: T0, new.id: T0 + 700}
    assert seen.update([new], T0 + 701) == {new.id: T0 + 700}


def test_a_standby_adopts_the_leader_s_earlier_sightings_only() -> None:
    seen = FirstSeen()
    assert seen.adopt({"x1": T0}) == {}  # nothing tracked yet: nothing to adopt into
    x = exit_(T0)
    seen.update([], T0)  # seeded empty: the exit appears later
    assert seen.update([x], T0 + 40) == {x.id: T0 + 40}  # this member saw it late
    assert seen.adopt({x.id: T0 + 5, "gone": T0}) == {x.id: T0 + 5}  # the leader saw it first
    assert seen.adopt({x.id: T0 + 30}) == {x.id: T0 + 5}  # a later sighting changes nothing
    assert seen.times() == {x.id: T0 + 5}
    # the mesh hold runs from the leader's sighting, so it ends when the leader's does
    layers = layer_intent([x], T0 + 5 + HOLD, HOLD, seen.times())
    assert layers.mesh == (x,)
