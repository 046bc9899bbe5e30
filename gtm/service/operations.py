"""Operator actions: plan them, check them, and store them as durable intent.

An action is planned the same way whether it is a dry run or not, as an
`ActionPlan` (`gtm.service.action_plan`): the override it would add, the
table once it is in force (one evaluation), the DNS rows that change and the
share of traffic they move, the WorkloadEntry patches the mesh will make
once DNS has had its hold, and the guardrails and blast-radius limits it
meets. A plan that `raise_if_unsafe` refuses raises `Refused` with the plan
(audited, unless a dry run); a dry run that passes returns it. Only then, on
the leader, is it written to the intent store under the leader's epoch; the
controller picks it up at its next evaluation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

import structlog

from failover import MeshPlan
from gtm.config import Inventory
from gtm.ha import Holder, NotLeader
from gtm.service.action_plan import ActionPlan, settle, settle_enter
from gtm.service.actions import (
    Action,
    ActionResult,
    BadAction,
    Drain,
    Enter,
    Exit,
    Refused,
    Remove,
    Rollout,
)
from intent import AuditEntry, AuditLog, IntentConflict, IntentState, IntentStore
from policies import Health, Kind, Override, Refusal, UnsafePlan, WeightTable

log = structlog.get_logger("gtm.operations")

ENTER_PROPAGATION = 60.0  # seconds: many peer intent pulls (gtm.service.peers)


@dataclass(frozen=True)
class LeaderView:
    """How operations learn who may write: the elector's view."""

    epoch: Callable[[], int | None]  # the epoch while leading, else None
    holder: Callable[[], Holder | None]  # who holds the lease, as last read


class Operations:
    def __init__(
        self,
        *,
        inventory: Callable[[], Inventory],
        health: Callable[[], Health],
        served: Callable[[], WeightTable | None],
        store: IntentStore,
        audit: AuditLog | None,
        leader_view: LeaderView,
        mesh_plans: Callable[[WeightTable], Awaitable[Sequence[MeshPlan]]],
        hold: Callable[[], float],
        on_change: Callable[[IntentState], None],  # the intent as stored
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inventory = inventory
        self._health = health
        self._served = served
        self._store = store
        self._audit = audit
        self._leader_view = leader_view
        self._mesh_plans = mesh_plans
        self._hold = hold
        self._on_change = on_change
        self._clock = clock

    async def act(self, action: Action, *, who: str, dry_run: bool) -> ActionResult:
        """Plan `action`; unless it is a dry run, store it (the leader only).

        Raises `Refused` (with the plan) when a check refuses it — audited unless a
        dry run — `NotLeader` on a standby, `BadAction` for unknown names."""
        inventory = self._inventory()
        now = self._clock()
        self._check_names(action, inventory)
        state = await self._store.load()
        if isinstance(action, Remove):
            return await self._remove(action, state, who=who, dry_run=dry_run, now=now)
        change = self._change(action, who, now)
        planned = change(state)
        new = [o for oid, o in planned.overrides.items() if oid not in state.overrides]
        override = new[-1] if new else _override(action, who, now)
        leaving = override.kind is not Kind.ENTER
        ends = _ended(state, planned)
        if isinstance(action, Enter) and not ends:
            raise BadAction(_nothing_to_enter(action, state), region=action.region)
        force = leaving and getattr(action, "force", False)
        served = self._served()
        hold = self._hold()
        after = planned.active(now)
        settled = await (settle if leaving else settle_enter)(
            inventory.estate, self._health(), after, served, now, hold
        )
        safety = inventory.config.safety
        plan = ActionPlan.of(
            _describe(action),
            [o.id for o in new],
            settled,
            served,
            await self._mesh_plans(settled.table),
            leaving=leaving,
            max_traffic_share=safety.max_traffic_share,
            max_unhealthy_share=safety.max_unhealthy_share,
        )
        plan = replace(plan, ends=tuple(f"{o.id}: {o.describe()}" for o in ends))
        if isinstance(action, Enter):
            plan = replace(plan, ramp=(now + hold, now + hold + _ramp(action, inventory)))
        result = ActionResult(plan, accepted=True, dry_run=dry_run, intent_version=state.version)
        try:
            plan.raise_if_unsafe(force)
        except UnsafePlan as e:
            await self._refuse(override, e, now, dry_run)
            raise Refused(str(e), replace(result, accepted=False)) from None
        if dry_run:
            return result
        epoch = self._epoch()
        try:
            stored = await self._store.update(change, epoch)
        except (IntentConflict, ValueError) as e:
            raise BadAction(str(e)) from e
        self._on_change(stored)
        log.info(
            "operator.accepted",
            action=plan.action,
            who=who,
            overrides=list(plan.override_ids),
            moved_share=round(plan.moved_share, 4),
        )
        return replace(result, intent_version=stored.version)

    def _change(self, action: Action, who: str, now: float) -> Callable[[IntentState], IntentState]:
        """The intent change an action makes, applied again on a fresh state on conflict."""
        if isinstance(action, Enter):
            # The enter stays in force past its hold long enough for every peer
            # region to pull it: one that only ever saw the exit end would lose
            # the ramp and the mesh-first order.
            hold = self._hold() + ENTER_PROPAGATION
            return lambda s: s.enter(
                action.region,
                action.services,
                action.ramp,
                who,
                action.reason,
                now,
                ticket=action.ticket,
                lasts=hold,
            )
        override = _override(action, who, now)
        return lambda s: s.add(override)

    async def _remove(
        self, action: Remove, state: IntentState, *, who: str, dry_run: bool, now: float
    ) -> ActionResult:
        if action.override_id not in state.overrides:
            raise BadAction(
                f"no override {action.override_id!r} in force", known=sorted(state.overrides)
            )
        removed = state.overrides[action.override_id]

        def change(s: IntentState) -> IntentState:
            return s.remove(action.override_id, who, action.reason, now)

        inventory, served, hold = self._inventory(), self._served(), self._hold()
        after = change(state).active(now)
        settled = await settle_enter(inventory.estate, self._health(), after, served, now, hold)
        safety = inventory.config.safety
        plan = ActionPlan.of(
            f"remove {action.override_id}",
            (action.override_id,),
            settled,
            served,
            await self._mesh_plans(settled.table),
            leaving=False,
            max_traffic_share=safety.max_traffic_share,
            max_unhealthy_share=safety.max_unhealthy_share,
        )
        plan = replace(plan, ends=(f"{removed.id}: {removed.describe()}",))
        result = ActionResult(plan, accepted=True, dry_run=dry_run, intent_version=state.version)
        if dry_run:
            return result
        stored = await self._store.update(change, self._epoch())
        self._on_change(stored)
        log.info("operator.removed", override=action.override_id, who=who)
        return replace(result, intent_version=stored.version)

    def _epoch(self) -> int:
        epoch = self._leader_view.epoch()
        if epoch is None:
            raise NotLeader(self._leader_view.holder(), "this member is not the leader")
        return epoch

    def _check_names(self, action: Action, inventory: Inventory) -> None:
        region = getattr(action, "region", None)
        if region is not None and region not in inventory.regions:
            raise BadAction(f"no region named {region!r}", regions=list(inventory.regions))
        services = getattr(action, "services", None) or ()
        unknown = sorted(set(services) - set(inventory.services))
        if unknown:
            raise BadAction(
                f"no service named {', '.join(unknown)}", services=sorted(inventory.services)
            )

    async def _refuse(self, o: Override, refused: UnsafePlan, now: float, dry_run: bool) -> None:
        """Log a refusal, and audit it (once, under its first rule) unless only planning."""
        log.warning("operator.refused", override=o.describe(), rule=refused.rule, why=str(refused))
        if not dry_run and self._audit is not None:
            refusal = Refusal(o.id, refused.rule, str(refused))
            await self._audit.append([AuditEntry.refused(o, refusal, now)])


def _override(action: Exit | Drain | Rollout | Enter, who: str, now: float) -> Override:
    ramp: float | None = None
    force = False
    if isinstance(action, Exit | Drain):
        kind = Kind.EXIT if isinstance(action, Exit) else Kind.DRAIN
        expires, force = _expiry(now, action.expires_in), action.force
    elif isinstance(action, Rollout):
        kind, expires = Kind.ROLLOUT, now + action.window
    else:
        kind, expires, ramp = Kind.ENTER, now + 1.0, action.ramp
    oid = f"{kind.value}-{uuid.uuid4().hex[:10]}"
    return Override(
        oid,
        kind,
        action.region,
        who,
        action.reason,
        now,
        action.services,
        action.ticket,
        expires,
        ramp=ramp,
        force=force,
    )


def _ended(before: IntentState, after: IntentState) -> list[Override]:
    """The overrides in force `before` that `after` ends (an enter closes exits and drains)."""
    return [o for oid, o in sorted(before.overrides.items()) if oid in after.tombstones]


def _nothing_to_enter(action: Enter, state: IntentState) -> str:
    scope = "all services" if action.services is None else ", ".join(sorted(action.services))
    what = "exit" if action.services is None else "exit or drain"
    message = f"nothing to enter: no {what} of {action.region} ({scope}) is in force"
    drains = [
        o for o in state.overrides.values() if o.region == action.region and o.kind is Kind.DRAIN
    ]
    if drains and action.services is None:
        named = "; ".join(f"{o.id} ({', '.join(sorted(o.services or ()))})" for o in drains)
        message += (
            f"; drains stay until named: {named} (gtm region enter {action.region} -s SERVICE,"
            " or gtm override remove ID)"
        )
    return message


def _ramp(action: Enter, inventory: Inventory) -> float:
    """How long DNS ramps back: the enter's own ramp, else the longest of its services'."""
    if action.ramp is not None:
        return action.ramp
    names = action.services if action.services is not None else inventory.services
    return max((inventory.estate.service(n).policy.ramp for n in names), default=0.0)


def _expiry(now: float, expires_in: float | None) -> float | None:
    return None if expires_in is None else now + expires_in


def _describe(action: Action) -> str:
    if isinstance(action, Remove):
        return f"remove {action.override_id}"
    scope = getattr(action, "services", None)
    what = "all services" if scope is None else ", ".join(sorted(scope))
    return f"{type(action).__name__.lower()} {action.region} ({what})"
