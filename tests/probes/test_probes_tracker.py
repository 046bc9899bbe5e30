"""HealthTracker with an explicit clock: hysteresis, damping, quorum, staleness, impaired
vantages, region aggregation, reconciliation and the view."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes import (
    DOWN,
    UNKNOWN,
    UP,
    HealthSettings,
    HealthTracker,
    HttpProbe,
    Observation,
    ProbeConfigError,
    Target,
)

T0 = 1_700_000_000.0
NO_DAMPING = HealthSettings(flap_penalty=0.0)


def target(
    name: str = "a",
    *,
    service: str = "foo",
    region: str = "dc1",
    rise: int = 2,
    fall: int = 3,
    interval: float = 5.0,
) -> Target:
    spec = HttpProbe(interval=interval, timeout=1.0, rise=rise, fall=fall)
    return Target(f"{service}/{region}/{name}", "10.0.0.1", 80, spec, service, region)


def obs(target_id: str, vantage: str, ok: bool, at: float, reason: str = "") -> Observation:
    reason = reason or ("http 200" if ok else "http 503")
    return Observation(target_id, vantage, ok, 0.01, at - T0, at, reason)


class Feed:
    """Feeds one vantage's results for one target, one interval apart."""

    def __init__(self, tracker: HealthTracker, target: Target, now: float = T0) -> None:
        self.tracker = tracker
        self.target = target
        self.now = now

    def __call__(self, *results: bool, vantage: str = "dc1", step: float = 5.0) -> list[str]:
        names: list[str] = []
        for ok in results:
            self.now += step
            events = self.tracker.observe(obs(self.target.id, vantage, ok, self.now), self.now)
            names += [event.name for event in events]
        return names

    @property
    def state(self) -> str:
        health = self.tracker.health(self.target.id)
        assert health is not None
        return health.state


def tracked(*targets: Target, health: HealthSettings = NO_DAMPING) -> HealthTracker:
    tracker = HealthTracker(health)
    tracker.set_targets(targets, T0)
    return tracker


def test_unknown_until_rise_then_down_after_fall() -> None:
    a = target(rise=2, fall=3)
    feed = Feed(tracked(a), a)
    assert feed.state == UNKNOWN
    assert feed(True) == [] and feed.state == UNKNOWN
    assert "vip.up" in feed(True) and feed.state == UP
    assert feed(False, False) == [] and feed.state == UP
    assert "vip.down" in feed(False)
    health = feed.tracker.health(a.id)
    assert health is not None
    assert (health.state, health.since, health.reason) == (
        DOWN,
        feed.now,
        "http 503 (1/1 vantages)",
    )


def test_a_contrary_result_resets_the_run() -> None:
    a = target(rise=2, fall=2)
    feed = Feed(tracked(a), a)
    feed(True, True)
    feed(False, True, False, True, False)
    assert feed.state == UP
    feed(False)
    assert feed.state == DOWN
    feed(True, False, True)
    assert feed.state == DOWN


def test_starts_down_after_fall_failures_from_unknown() -> None:
    a = target(fall=2)
    feed = Feed(tracked(a), a)
    feed(False)
    assert feed.state == UNKNOWN
    feed(False)
    assert feed.state == DOWN


@settings(max_examples=200, deadline=None)
@given(
    results=st.lists(st.booleans(), max_size=60),
    rise=st.integers(1, 4),
    fall=st.integers(1, 4),
)
def test_hysteresis_matches_a_reference_model(results: list[bool], rise: int, fall: int) -> None:
    a = target(rise=rise, fall=fall)
    feed = Feed(tracked(a), a)
    expected, run_ok, run_fail = UNKNOWN, 0, 0
    for ok in results:
        run_ok, run_fail = (run_ok + 1, 0) if ok else (0, run_fail + 1)
        if run_ok >= rise:
            expected = UP
        if run_fail >= fall:
            expected = DOWN
        feed(ok)
        assert feed.state == expected


DAMPING = HealthSettings(
    half_life=60.0,
    flap_penalty=1000.0,
    suppress_threshold=2000.0,
    reuse_threshold=750.0,
    max_suppress=600.0,
)


def test_flapping_vip_is_held_down_until_stable() -> None:
    a = target(rise=1, fall=1)
    tracker = tracked(a, health=DAMPING)
    feed = Feed(tracker, a)
    feed(True)
    events: list[str] = []
    for _ in range(3):  # three up->down flaps in 30 s
        events += feed(False, True)
    assert "vip.damped" in events
    health = tracker.health(a.id)
    assert health is not None
    assert health.state == DOWN and health.damped
    assert health.reason.startswith("flapping: held down")
    assert health.damped_until is not None
    released_at = health.damped_until
    # stable and up from now on: still held down until the penalty decays below reuse
    while feed.now < released_at - 5.0:
        assert feed(True) == []
        assert feed.state == DOWN
    feed(True, step=released_at - 1.0 - feed.now)
    assert tracker.advance(released_at - 0.5) == []
    names = [event.name for event in tracker.advance(released_at + 0.5)]
    assert names == ["vip.released", "vip.up", "region.up"]
    health = tracker.health(a.id)
    assert health is not None and not health.damped and health.state == UP


def test_damping_penalty_and_release_time_follow_the_half_life() -> None:
    a = target(rise=1, fall=1)
    tracker = tracked(a, health=DAMPING)
    feed = Feed(tracker, a)
    feed(True)
    feed(False, True, False, True, False, step=0.001)  # 3 flaps at once: ~3000
    feed(True, step=0.001)
    health = tracker.health(a.id)
    assert health is not None and health.damped
    # 3000 -> 750 takes two half-lives
    assert health.damped_until == pytest.approx(feed.now + 120.0, abs=0.1)


def test_damping_never_outlasts_max_suppress() -> None:
    a = target(rise=1, fall=1)
    tracker = tracked(a, health=DAMPING)
    feed = Feed(tracker, a)
    feed(True)
    for _ in range(1000):  # a penalty far above the cap
        feed(False, True, step=0.001)
    last_flap = feed.now
    health = tracker.health(a.id)
    assert health is not None and health.damped_until is not None
    assert health.damped_until == pytest.approx(last_flap + DAMPING.max_suppress, abs=0.01)
    while feed.now < health.damped_until - 5.0:
        feed(True)
        assert feed.state == DOWN
    feed(True)
    assert feed.state == UP


def test_a_single_outage_is_not_damped() -> None:
    a = target(rise=1, fall=1)
    tracker = tracked(a, health=HealthSettings())
    feed = Feed(tracker, a)
    feed(True, False, True)
    health = tracker.health(a.id)
    assert health is not None and health.state == UP and not health.damped


def test_quorum_of_vantages() -> None:
    a = target(rise=1, fall=1)
    tracker = tracked(a)
    feed = Feed(tracker, a)
    for vantage in ("dc1", "dc2", "dc3"):
        feed(True, vantage=vantage, step=0.1)
    feed(False, vantage="dc2", step=0.1)  # one partitioned prober
    assert feed.state == UP
    health = tracker.health(a.id)
    assert health is not None and (health.up_votes, health.down_votes) == (2, 1)
    feed(False, vantage="dc3", step=0.1)  # a majority agrees
    assert feed.state == DOWN
    health = tracker.health(a.id)
    assert health is not None and health.reason == "http 503 (2/3 vantages)"


def test_two_vantages_disagreeing_do_not_move_traffic() -> None:
    a = target(rise=1, fall=1)
    feed = Feed(tracked(a), a)
    feed(True, vantage="dc1", step=0.1)
    feed(True, vantage="dc2", step=0.1)
    feed(False, vantage="dc2", step=0.1)
    assert feed.state == UP


def test_min_down_vantages() -> None:
    a = target(rise=1, fall=1)
    feed = Feed(tracked(a, health=HealthSettings(flap_penalty=0, min_down_vantages=2)), a)
    feed(False, vantage="dc1")
    assert feed.state == UNKNOWN
    feed(False, vantage="dc2", step=0.1)
    assert feed.state == DOWN


def test_stale_vantages_stop_voting() -> None:
    a = target(rise=1, fall=1, interval=5.0)  # stale after 3 * 5 + 1 = 16 s
    tracker = tracked(a)
    feed = Feed(tracker, a)
    feed(False, vantage="dc1", step=0.1)
    feed(False, vantage="dc2", step=0.1)
    feed(True, vantage="dc3", step=0.1)
    assert feed.state == DOWN
    # dc1 (the VIP's own region) falls silent; dc2 and dc3 go on: one of two, not down
    for _ in range(4):
        feed(False, vantage="dc2", step=5.0)
        feed(True, vantage="dc3", step=0.0)
    assert feed.state == UP
    health = tracker.health(a.id)
    assert health is not None and health.reason == "up (1/2 vantages)"
    # and when they fall silent as well, the VIP becomes unknown by time alone
    names = [event.name for event in tracker.advance(feed.now + 16.0)]
    assert names == ["vip.unknown", "region.unknown"]


def test_old_and_out_of_order_observations_are_ignored() -> None:
    a = target(rise=1, fall=1)
    tracker = tracked(a)
    now = T0 + 100
    tracker.observe(obs(a.id, "dc1", True, now), now)
    assert tracker.observe(obs(a.id, "dc1", False, now - 1), now) == []  # older than last
    assert tracker.observe(obs(a.id, "dc2", False, now - 60), now) == []  # stale on arrival
    assert tracker.observe(obs("foo/dc1/unknown", "dc1", False, now), now) == []
    health = tracker.health(a.id)
    assert health is not None and health.state == UP


def impaired_setup(vantages: tuple[str, ...]) -> tuple[HealthTracker, list[Target], float]:
    targets = [target(f"vip{i}", region=f"dc{i % 3 + 1}", rise=1, fall=2) for i in range(10)]
    health = HealthSettings(flap_penalty=0, impaired_min_targets=10)
    tracker = tracked(*targets, health=health)
    now = T0
    for vantage in vantages:
        for t in targets:
            now += 0.01
            tracker.observe(obs(t.id, vantage, True, now), now)
    return tracker, targets, now


def test_impaired_vantage_is_ignored_and_recovers() -> None:
    tracker, targets, now = impaired_setup(("dc1", "dc2"))
    events: list[str] = []
    for t in targets:  # dc1's prober breaks: everything times out
        now += 0.1
        events += [e.name for e in tracker.observe(obs(t.id, "dc1", False, now, "timeout"), now)]
    assert events.count("vantage.impaired") == 1
    assert tracker.view().impaired == frozenset({"dc1"})
    for t in targets:
        now += 0.1
        tracker.observe(obs(t.id, "dc1", False, now, "timeout"), now)
    assert all(vip.state == UP for vip in tracker.view().vips.values())
    assert not [e for e in events if e.startswith("vip.")]
    # dc1 recovers: once no more than half fail, it is back and votes again after rise
    recovered: list[str] = []
    for t in targets:
        now += 0.1
        recovered += [e.name for e in tracker.observe(obs(t.id, "dc1", True, now), now)]
    assert "vantage.recovered" in recovered
    assert tracker.view().impaired == frozenset()


def test_a_lone_impaired_vantage_never_takes_vips_down() -> None:
    tracker, targets, now = impaired_setup(("dc1",))
    for _ in range(3):
        for t in targets:
            now += 0.1
            tracker.observe(obs(t.id, "dc1", False, now, "timeout"), now)
    states = {vip.state for vip in tracker.view().vips.values()}
    assert DOWN not in states
    assert states == {UNKNOWN}


def test_a_real_outage_of_one_region_is_not_an_impairment() -> None:
    tracker, targets, now = impaired_setup(("dc1", "dc2"))
    dc2_targets = [t for t in targets if t.region == "dc2"]
    for _ in range(2):
        for t in dc2_targets:
            for vantage in ("dc1", "dc2"):
                now += 0.1
                tracker.observe(obs(t.id, vantage, False, now), now)
    view = tracker.view()
    assert view.impaired == frozenset()
    assert {view.vips[t.id].state for t in dc2_targets} == {DOWN}
    assert view.regions[("foo", "dc2")].state == DOWN
    assert view.regions[("foo", "dc1")].state == UP


def test_region_needs_its_minimum_up() -> None:
    vips = [target(f"v{i}", rise=1, fall=1) for i in range(3)]
    health = HealthSettings(flap_penalty=0, region_min_up=1, region_min_up_fraction=0.6)
    tracker = tracked(*vips, health=health)
    now = T0
    events: list[str] = []

    def put(i: int, ok: bool) -> None:
        nonlocal now
        now += 1
        events.extend(e.name for e in tracker.observe(obs(vips[i].id, "dc1", ok, now), now))

    put(0, True)
    region = tracker.view().regions[("foo", "dc1")]
    assert (region.state, region.up, region.total, region.needed) == (UNKNOWN, 1, 3, 2)
    put(1, True)
    assert tracker.view().regions[("foo", "dc1")].state == UP
    put(2, False)
    put(1, False)
    region = tracker.view().regions[("foo", "dc1")]
    assert region.state == DOWN and region.reason == "1/3 VIPs up, 2 needed"
    assert events.count("region.up") == 1 and events.count("region.down") == 1


def test_set_targets_adds_removes_and_moves() -> None:
    a, b = target("a", rise=1), target("b", rise=1)
    tracker = tracked(a, b)
    now = T0 + 1
    tracker.observe(obs(a.id, "dc1", True, now), now)
    moved = Target(b.id, b.address, b.port, b.spec, "foo", "dc2")
    c = target("c")
    tracker.set_targets([a, moved, c], now + 1)
    view = tracker.view()
    assert set(view.vips) == {a.id, b.id, c.id}
    assert view.vips[b.id].region == "dc2"
    assert view.regions[("foo", "dc2")].total == 1
    assert view.regions[("foo", "dc1")].total == 2
    assert view.vips[a.id].state == UP  # untouched by the reload
    tracker.set_targets([a], now + 2)
    assert set(tracker.view().vips) == {a.id}
    assert ("foo", "dc2") not in tracker.view().regions


def test_view_is_a_read_only_snapshot() -> None:
    a = target(rise=1)
    tracker = tracked(a)
    before = tracker.view()
    now = T0 + 1
    tracker.observe(obs(a.id, "dc1", True, now), now)
    after = tracker.view()
    assert before.vips[a.id].state == UNKNOWN and after.vips[a.id].state == UP
    assert after.at == now
    with pytest.raises(TypeError):
        after.vips[a.id] = before.vips[a.id]  # type: ignore[index]
    assert after.service_regions("foo")["dc1"].state == UP


def test_bad_health_settings_are_reported_together() -> None:
    with pytest.raises(ProbeConfigError) as caught:
        HealthSettings(quorum=1.5, reuse_threshold=3000, impaired_fraction=0)
    problems = caught.value.problems
    assert any(p.startswith("quorum:") for p in problems)
    assert any(p.startswith("suppress_threshold:") for p in problems)
    assert any(p.startswith("impaired_fraction:") for p in problems)
    with pytest.raises(ProbeConfigError) as caught:
        HealthSettings(half_life="5m", min_down_vantages=1.5)  # type: ignore[arg-type]
    assert [p.split(":")[0] for p in caught.value.problems] == ["min_down_vantages", "half_life"]


def test_ten_thousand_targets_from_three_vantages_is_cheap() -> None:
    targets = [target(f"v{i}", region=f"dc{i % 3}", rise=1, fall=1) for i in range(10_000)]
    tracker = tracked(*targets, health=HealthSettings())
    now = T0
    started = time.perf_counter()
    for vantage in ("dc1", "dc2", "dc3"):
        for t in targets:
            now += 0.0001
            tracker.observe(obs(t.id, vantage, True, now), now)
    tracker.advance(now + 30)
    observe_seconds = time.perf_counter() - started
    started = time.perf_counter()
    view = tracker.view()
    view_seconds = time.perf_counter() - started
    assert len(view.vips) == 10_000 and len(view.regions) == 3
    assert observe_seconds < 3.0  # 30,000 observations: ~20 µs each with room to spare
    assert view_seconds < 0.05
