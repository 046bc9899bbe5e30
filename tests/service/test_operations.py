"""Operator actions: planned, checked by guardrails and blast radius, stored on the leader."""

from __future__ import annotations

from pathlib import Path

import pytest

from gtm.config import Inventory, load
from gtm.ha import Holder, NotLeader
from gtm.service.actions import BadAction, Drain, Enter, Exit, Refused, Remove, Rollout
from gtm.service.operations import LeaderView, Operations
from intent import FileAudit, FileIntentStore
from policies import Health, Kind, State, TargetHealth, evaluate

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0


@pytest.fixture
def inventory() -> Inventory:
    return load(ROOT / "examples" / "estate.yaml")


class Member:
    """The parts of a member operations need: a store, a clock, leadership."""

    def __init__(self, inventory: Inventory, tmp: Path, *, epoch: int | None = 3) -> None:
        self.inventory = inventory
        self.health = Health()
        self.epoch = epoch
        self.now = T0
        self.woken = 0
        self.audit = FileAudit(tmp / "audit.jsonl")
        self.store = FileIntentStore(tmp / "intent.json", audit=self.audit)
        self.served = evaluate(inventory.estate, Health(), [], None, T0).table
        self.ops = Operations(
            inventory=lambda: self.inventory,
            health=lambda: self.health,
            served=lambda: self.served,
            store=self.store,
            audit=self.audit,
            leader_view=LeaderView(
                epoch=lambda: self.epoch,
                holder=lambda: Holder("dc1-b", "http://127.0.0.1:8081", 3, None),
            ),
            mesh_plans=self._no_clusters,
            hold=lambda: 35.0,
            on_change=self._woken,
            clock=lambda: self.now,
        )

    async def _no_clusters(self, table: object) -> list[object]:
        return []

    def _woken(self, stored: object) -> None:
        self.woken += 1


async def test_exit_is_planned_stored_and_idempotent(inventory: Inventory, tmp_path: Path) -> None:
    m = Member(inventory, tmp_path)
    result = await m.ops.act(Exit("dc2", "maintenance", ticket="CHG-1"), who="alice", dry_run=False)
    assert result.accepted and not result.dry_run
    # a third of the traffic of the five services in dc2 (static is not): 5 x 100 / (6 x 300)
    assert result.plan.moved_share == pytest.approx(500 / 1800)
    checks = {c.rule: c for c in result.plan.checks}
    assert checks["max_traffic_share"].passed and checks["min_active_regions"].passed
    assert (checks["max_traffic_share"].changed, checks["max_traffic_share"].total) == (500, 1800)
    foo_dc2 = next(r for r in result.plan.dns if r.service == "foo" and r.source == "dc2")
    assert foo_dc2.old == {"dc1": 1, "dc2": 98, "dc3": 1}
    assert foo_dc2.new == {"dc1": 50, "dc2": 0, "dc3": 50}
    state = await m.store.load()
    (o,) = state.overrides.values()
    assert (o.kind, o.region, o.who, o.ticket) == (Kind.EXIT, "dc2", "alice", "CHG-1")
    assert state.epoch == 3 and m.woken == 1
    history = await m.audit.history(limit=10)
    assert [e.action.value for e in history] == ["accepted"]


async def test_dry_run_changes_nothing(inventory: Inventory, tmp_path: Path) -> None:
    m = Member(inventory, tmp_path)
    result = await m.ops.act(Exit("dc2", "what if"), who="alice", dry_run=True)
    # it would pass: accepted, as a plan
    assert result.dry_run and result.accepted and result.plan.dns
    assert (await m.store.load()).overrides == {}
    assert not await m.audit.history(limit=10) and m.woken == 0


async def test_guardrail_refusal_is_audited_and_changes_nothing(
    inventory: Inventory, tmp_path: Path
) -> None:
    m = Member(inventory, tmp_path)
    with pytest.raises(Refused) as e:
        await m.ops.act(
            Exit("dc3", "maintenance"), who="alice", dry_run=False
        )  # static lives in dc1+dc3
    assert "min_active_regions" in str(e.value) and e.value.status == 409
    assert not e.value.result.accepted  # the plan comes along
    assert [c.rule for c in e.value.result.plan.refusals()] == ["min_active_regions"]
    assert (await m.store.load()).overrides == {}
    (entry,) = await m.audit.history(limit=10)
    assert entry.action.value == "refused" and entry.rule == "min_active_regions"
    # a refused dry run raises too, and is not audited
    with pytest.raises(Refused, match="min_active_regions") as e:
        await m.ops.act(Exit("dc3", "what if"), who="alice", dry_run=True)
    assert e.value.result.dry_run and not e.value.result.accepted
    assert len(await m.audit.history(limit=10)) == 1
    forced = await m.ops.act(Exit("dc3", "dc3 is burning", force=True), who="alice", dry_run=False)
    assert forced.accepted


async def test_second_exit_refused_by_max_concurrent_exits(
    inventory: Inventory, tmp_path: Path
) -> None:
    m = Member(inventory, tmp_path)
    await m.ops.act(Exit("dc2", "first"), who="alice", dry_run=False)
    m.now += 1  # the second comes later (at the same instant, ids would order them)
    with pytest.raises(Refused, match=r"max_concurrent_exits|min_active_regions"):
        await m.ops.act(
            Exit("dc1", "second", services=frozenset({"foo"})), who="bob", dry_run=False
        )


async def test_blast_radius_refuses_moving_too_much_traffic(
    inventory: Inventory, tmp_path: Path
) -> None:
    m = Member(inventory, tmp_path)
    m.inventory = inventory.__class__(
        inventory.file,
        inventory.config.model_copy(
            update={"safety": inventory.config.safety.model_copy(update={"max_traffic_share": 0.2})}
        ),
        inventory.estate,
        inventory.regions,
        inventory.services,
    )
    with pytest.raises(
        Refused, match=r"would move 28% of DNS traffic, more than max_traffic_share 20%"
    ):
        await m.ops.act(Exit("dc2", "maintenance"), who="alice", dry_run=False)
    assert (await m.store.load()).overrides == {}
    assert (await m.ops.act(Exit("dc2", "needed", force=True), who="alice", dry_run=False)).accepted


async def test_standby_refuses_writes_and_names_the_leader(
    inventory: Inventory, tmp_path: Path
) -> None:
    m = Member(inventory, tmp_path, epoch=None)
    with pytest.raises(NotLeader) as e:
        await m.ops.act(Exit("dc2", "maintenance"), who="alice", dry_run=False)
    assert e.value.holder is not None
    assert (e.value.holder.identity, e.value.holder.address) == ("dc1-b", "http://127.0.0.1:8081")
    assert "the leader is dc1-b at http://127.0.0.1:8081" in str(e.value)
    assert (
        await m.ops.act(Exit("dc2", "plan only"), who="alice", dry_run=True)
    ).plan.dns  # plans still work


async def test_unknown_names_are_bad_actions(inventory: Inventory, tmp_path: Path) -> None:
    m = Member(inventory, tmp_path)
    with pytest.raises(BadAction, match="no region named 'dc9'"):
        await m.ops.act(Exit("dc9", "x"), who="alice", dry_run=False)
    with pytest.raises(BadAction, match="no service named nope"):
        await m.ops.act(Drain("dc1", frozenset({"nope"}), "x"), who="alice", dry_run=False)
    with pytest.raises(BadAction, match="no override"):
        await m.ops.act(Remove("exit-123", "x"), who="alice", dry_run=False)


async def test_enter_closes_the_exit_and_drain_and_rollout_store_their_kind(
    inventory: Inventory, tmp_path: Path
) -> None:
    m = Member(inventory, tmp_path)
    await m.ops.act(Exit("dc2", "maintenance"), who="alice", dry_run=False)
    m.now += 60
    entered = await m.ops.act(Enter("dc2", "done", ramp=120.0), who="alice", dry_run=False)
    assert entered.accepted
    state = await m.store.load()
    kinds = sorted(o.kind.value for o in state.overrides.values())
    assert kinds == ["enter"] and len(state.tombstones) == 1
    (enter,) = state.overrides.values()
    assert enter.ramp == 120.0 and enter.expires == m.now + 120.0
    await m.ops.act(Drain("dc1", frozenset({"foo"}), "bad canary"), who="bob", dry_run=False)
    await m.ops.act(Rollout("dc3", 600.0, "deploy"), who="bob", dry_run=False)
    kinds = sorted(o.kind.value for o in (await m.store.load()).overrides.values())
    assert kinds == ["drain", "enter", "rollout"]


async def test_remove_ends_an_override(inventory: Inventory, tmp_path: Path) -> None:
    m = Member(inventory, tmp_path)
    r = await m.ops.act(Drain("dc1", frozenset({"foo"}), "bad canary"), who="bob", dry_run=False)
    (oid,) = r.override_ids
    done = await m.ops.act(Remove(oid, "canary fixed"), who="bob", dry_run=False)
    assert done.accepted
    assert (await m.store.load()).overrides == {}


async def test_health_counts_for_guardrails(inventory: Inventory, tmp_path: Path) -> None:
    m = Member(inventory, tmp_path)
    m.health = Health(regions={("foo", "dc1"): TargetHealth(State.DOWN, T0, "refused")})
    with pytest.raises(Refused, match="would leave 1 active region"):
        await m.ops.act(
            Exit("dc3", "maintenance", services=frozenset({"foo"})), who="alice", dry_run=False
        )
