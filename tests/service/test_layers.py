"""The ordered change: DNS leaves first and comes back last."""

from __future__ import annotations

from gtm.service.layers import layer_intent
from policies import Estate, Health, Kind, Override, Policy, Service, Vip, evaluate
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
