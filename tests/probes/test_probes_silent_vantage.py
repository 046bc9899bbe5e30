"""A vantage that falls silent (its member's probing stopped, or its peer pulls bring
nothing new) stops voting once its newest result is `stale_intervals` intervals (plus the
timeout) old — by time alone, with no new observation — and silence is never a down vote:
its last results, up or down, stop counting, and nothing it said before comes back."""

from __future__ import annotations

from probes import DOWN, UNKNOWN, UP, HealthSettings, HealthTracker, Observation, Target, TcpProbe

T0 = 1_700_000_000.0
INTERVAL, TIMEOUT = 5.0, 1.0
STALE = 3 * INTERVAL + TIMEOUT  # HealthSettings.stale_intervals = 3


def target(name: str = "a", region: str = "dc1") -> Target:
    spec = TcpProbe(interval=INTERVAL, timeout=TIMEOUT, rise=1, fall=1)
    return Target(f"foo/{region}/{name}", "10.0.0.1", 443, spec, "foo", region)


def obs(t: Target, vantage: str, ok: bool, at: float) -> Observation:
    return Observation(t.id, vantage, ok, 0.01, at - T0, at, "ok" if ok else "refused")


class Estate:
    """One tracker, targets, and vantages that report every interval until they stop."""

    def __init__(self, *targets: Target) -> None:
        self.tracker = HealthTracker(HealthSettings(flap_penalty=0.0))
        self.targets = targets
        self.now = T0
        self.tracker.set_targets(targets, self.now)
        self.events: list[str] = []

    def report(self, results: dict[str, bool], rounds: int = 1) -> None:
        """Every vantage in `results` reports every target once per interval."""
        for _ in range(rounds):
            self.now += INTERVAL
            for vantage, ok in results.items():
                for t in self.targets:
                    found = self.tracker.observe(obs(t, vantage, ok, self.now), self.now)
                    self.events += [e.name for e in found]

    def wait(self, seconds: float) -> None:
        self.now += seconds
        self.events += [e.name for e in self.tracker.advance(self.now)]

    def state(self, t: Target | None = None) -> str:
        h = self.tracker.health((t or self.targets[0]).id)
        assert h is not None
        return h.state

    def stale(self, vantage: str) -> bool:
        votes = {v.vantage: v for v in self.tracker.votes(self.targets[0].id)}
        return votes[vantage].stale


def test_a_silent_vantage_stops_voting_after_three_intervals_by_time_alone() -> None:
    e = Estate(target())
    e.report({"dc1": False}, rounds=2)
    assert e.state() == DOWN
    last = e.now
    e.wait(STALE - 0.5)
    assert e.state() == DOWN and not e.stale("dc1")  # still fresh: one result may be late
    e.wait(0.5)
    assert e.now - last == STALE
    assert e.stale("dc1")
    h = e.tracker.health(e.targets[0].id)
    assert h is not None and h.state == UNKNOWN and h.down_votes == 0
    assert "1 stale" in h.reason
    assert e.events[-2:] == ["vip.unknown", "region.unknown"]


def test_silence_is_not_a_down_vote_the_others_decide() -> None:
    e = Estate(target("a"), target("b"))
    e.report({"dc1": True, "dc2": True, "dc3": True}, rounds=2)
    e.events.clear()
    e.report({"dc2": True, "dc3": True}, rounds=10)  # dc1's member stopped probing
    assert e.stale("dc1")
    assert all(e.state(t) == UP for t in e.targets)
    assert e.events == []  # nothing moved: not a VIP, not a region
    h = e.tracker.health(e.targets[0].id)
    assert h is not None and (h.up_votes, h.down_votes) == (2, 0)


def test_a_silent_vantage_s_last_down_results_stop_counting() -> None:
    e = Estate(target())
    # dc1 and dc2 see the VIP down, dc3 up: two of three, down
    e.report({"dc1": False, "dc2": False, "dc3": True}, rounds=2)
    assert e.state() == DOWN
    # dc1's probing stops while it said down: its down vote must not outlive it
    e.report({"dc2": False, "dc3": True}, rounds=3)
    assert e.state() == DOWN  # within three intervals dc1's result still counts
    e.report({"dc2": False, "dc3": True}, rounds=1)
    assert e.stale("dc1")
    h = e.tracker.health(e.targets[0].id)
    assert h is not None and h.state == UP and (h.up_votes, h.down_votes) == (1, 1)


def test_every_vantage_silent_is_unknown_never_down() -> None:
    e = Estate(target("a"), target("b", region="dc2"))
    e.report({"dc1": False, "dc2": False, "dc3": False}, rounds=2)
    assert all(e.state(t) == DOWN for t in e.targets)
    e.wait(STALE)
    view = e.tracker.view()
    assert {h.state for h in view.vips.values()} == {UNKNOWN}
    assert {h.state for h in view.regions.values()} == {UNKNOWN}


def test_old_results_delivered_again_do_not_bring_a_silent_vantage_back() -> None:
    e = Estate(target())
    t = e.targets[0]
    e.report({"dc1": False, "dc2": True, "dc3": True}, rounds=2)
    said = [obs(t, "dc1", False, e.now - INTERVAL), obs(t, "dc1", False, e.now)]
    e.report({"dc2": True, "dc3": True}, rounds=4)
    assert e.stale("dc1")
    # a peer's pull starts over (cursor reset, the region's other member): the same rows again
    for o in said:
        assert e.tracker.observe(o, e.now) == []
    assert e.stale("dc1")
    h = e.tracker.health(t.id)
    assert h is not None and h.down_votes == 0


def test_a_vantage_that_speaks_again_votes_again_at_once() -> None:
    e = Estate(target())
    e.report({"dc1": False}, rounds=2)
    e.wait(STALE)
    assert e.state() == UNKNOWN
    e.report({"dc1": False})
    assert e.state() == DOWN and not e.stale("dc1")


def test_an_up_voter_falling_silent_does_not_tip_a_vip_down() -> None:
    """Two vantages split: one down, one up. The up-voter's silence leaves one down vote of
    one voter, more than half; it still counts among the vantages, so the VIP is not down."""
    e = Estate(target(region="dc3"))
    e.report({"dc1": True, "dc2": False}, rounds=2)
    assert e.state() == UP
    e.events.clear()
    e.report({"dc2": False}, rounds=5)  # dc1's member stopped probing
    assert e.stale("dc1")
    assert e.state() != DOWN and "vip.down" not in e.events
    h = e.tracker.health(e.targets[0].id)
    assert h is not None and "1 counted" in h.reason


def test_four_vantages_split_two_two_stay_up_when_an_up_voter_falls_silent() -> None:
    e = Estate(target(region="dc5"))
    e.report({"dc1": True, "dc2": True, "dc3": False, "dc4": False}, rounds=2)
    assert e.state() == UP
    e.report({"dc2": True, "dc3": False, "dc4": False}, rounds=5)
    assert e.stale("dc1") and e.state() == UP
    h = e.tracker.health(e.targets[0].id)
    assert h is not None and "not more than 0.5 of 4 with the silent" in h.reason
    e.report({"dc2": False, "dc3": False, "dc4": False}, rounds=2)  # three of four: down
    assert e.state() == DOWN


def test_a_region_that_dies_whole_is_still_taken_down_in_a_two_region_estate() -> None:
    """dc2's member and its VIP go together: dc2's silence is no witness for its own VIP,
    and dc1's view decides."""
    mine, theirs = target("a", region="dc1"), target("b", region="dc2")
    e = Estate(mine, theirs)
    e.report({"dc1": True, "dc2": True}, rounds=2)
    e.events.clear()
    for _ in range(5):  # dc2 is gone: its prober with it, and dc1 sees its VIP refuse
        e.now += INTERVAL
        for t, ok in ((mine, True), (theirs, False)):
            e.events += [x.name for x in e.tracker.observe(obs(t, "dc1", ok, e.now), e.now)]
    assert e.state(theirs) == DOWN and e.state(mine) == UP
