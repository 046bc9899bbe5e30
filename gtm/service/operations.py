"""Operator actions: plan them, check them, and store them as durable intent.

An action is planned the same way whether it is a dry run or not: the
override it would add, the guardrails (`policies.admit`), the DNS rows it
changes and the share of traffic it moves (refused above
`safety.max_traffic_share` unless forced), and the WorkloadEntry patches the
mesh will make once DNS has had its hold. Only then, on the leader, is it
written to the intent store under the leader's epoch; the controller picks it
up at its next evaluation. Refusals go to the audit too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn

import structlog

from failover import MeshPlan
from failover.intent import AuditEntry, AuditLog, IntentConflict, IntentState, IntentStore
from gtm.config import Inventory
from gtm.service.actions import (
    Action,
    ActionResult,
    BadAction,
    Drain,
    Enter,
    Exit,
    NotLeader,
    Refused,
    Remove,
    Rollout,
)
from gtm.service.layers import layer_intent
from policies import Health, Kind, Override, Refusal, WeightTable, admit, evaluate

log = structlog.get_logger("gtm.operations")

MAX_ROWS_SHOWN = 200
ENTER_PROPAGATION = 60.0  # seconds: many peer intent pulls (gtm.service.peers)


@dataclass(frozen=True)
class Leadership:
    """How operations learn who may write: the elector's view."""

    epoch: Callable[[], int | None]  # the epoch while leading, else None
    leader: Callable[[], tuple[str | None, str | None]]  # (identity, address) of the holder


class Operations:
    def __init__(
        self,
        *,
        inventory: Callable[[], Inventory],
        health: Callable[[], Health],
        served: Callable[[], WeightTable | None],
        store: IntentStore,
        audit: AuditLog | None,
        leadership: Leadership,
        mesh_plans: Callable[[WeightTable], Awaitable[Sequence[MeshPlan]]],
        hold: Callable[[], float],
        on_change: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inventory = inventory
        self._health = health
        self._served = served
        self._store = store
        self._audit = audit
        self._leadership = leadership
        self._mesh_plans = mesh_plans
        self._hold = hold
        self._on_change = on_change
        self._clock = clock

    async def act(self, action: Action, *, who: str, dry_run: bool) -> ActionResult:
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
        health = self._health()
        before, after = state.active(now), planned.active(now)
        leaving = override.kind is not Kind.ENTER
        force = leaving and getattr(action, "force", False)

        if leaving:
            # the new override is judged after every one already in force
            admission = admit(inventory.estate, health, [*before, override])
            for r in admission.refusals:
                if r.override_id == override.id:
                    await self._refuse(override, r, now, dry_run)
        dns, moved = self._dns_change(inventory, health, before, after, now)
        limit = inventory.config.safety.max_traffic_share
        if leaving and moved > limit and not force:
            message = (
                f"{_describe(action)} would move {moved:.0%} of DNS traffic, more than "
                f"max_traffic_share {limit:.0%}; use --force with a reason to override"
            )
            await self._refuse(
                override, Refusal(override.id, "max_traffic_share", message), now, dry_run
            )
        mesh_table = evaluate(inventory.estate, health, after, self._served(), now).table
        mesh: dict[str, tuple[str, ...]] = {}
        for plan in await self._mesh_plans(mesh_table):
            unsafe = plan.unsafe(inventory.config.safety.max_unhealthy_share)
            if unsafe is not None and not force:
                refusal = Refusal(override.id, "max_unhealthy_share", str(unsafe))
                await self._refuse(override, refusal, now, dry_run)
            mesh[plan.cluster] = tuple(plan.lines())

        result = ActionResult(
            accepted=False,
            dry_run=dry_run,
            override_ids=tuple(o.id for o in new),
            dns=tuple(dns),
            mesh=mesh,
            moved_share=moved,
            message=_describe(action),
            intent_version=state.version,
        )
        if dry_run:
            return result
        epoch = self._epoch()
        try:
            stored = await self._store.update(change, epoch)
        except (IntentConflict, ValueError) as e:
            raise BadAction(str(e)) from e
        self._on_change()
        log.info(
            "operator.accepted",
            action=_describe(action),
            who=who,
            overrides=list(result.override_ids),
            moved_share=round(moved, 4),
        )
        return replace(result, accepted=True, intent_version=stored.version)

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
        result = ActionResult(
            accepted=False,
            dry_run=dry_run,
            override_ids=(action.override_id,),
            message=f"remove {action.override_id}",
            intent_version=state.version,
        )
        if dry_run:
            return result
        stored = await self._store.update(
            lambda s: s.remove(action.override_id, who, action.reason, now), self._epoch()
        )
        self._on_change()
        log.info("operator.removed", override=action.override_id, who=who)
        return replace(result, accepted=True, intent_version=stored.version)

    def _epoch(self) -> int:
        epoch = self._leadership.epoch()
        if epoch is None:
            identity, address = self._leadership.leader()
            raise NotLeader(
                f"this member is not the leader; the leader is {identity or 'unknown'}",
                leader=identity,
                address=address,
            )
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

    def _dns_change(
        self,
        inventory: Inventory,
        health: Health,
        before: Sequence[Override],
        after: Sequence[Override],
        now: float,
    ) -> tuple[list[Mapping[str, Any]], float]:
        """The DNS rows that change once the action is in force, and the traffic share moved."""
        hold = self._hold()
        prev = self._served()
        old = evaluate(
            inventory.estate, health, layer_intent(before, now, hold).dns, prev, now
        ).table
        # DNS as it settles: exits at once, re-entries after the hold
        new = evaluate(
            inventory.estate, health, layer_intent(after, now + hold, hold).dns, prev, now
        ).table
        rows: list[Mapping[str, Any]] = []
        moved = total = 0
        for row in new:
            was = old.row(row.service, row.source)
            w_new = row.weights()
            w_old = was.weights() if was is not None else dict.fromkeys(w_new, 0)
            total += row.total
            delta = sum(abs(w_new[t] - w_old.get(t, 0)) for t in w_new) // 2
            if delta:
                moved += delta
                if len(rows) < MAX_ROWS_SHOWN:
                    rows.append(
                        {"service": row.service, "source": row.source, "old": w_old, "new": w_new}
                    )
        return rows, (moved / total if total else 0.0)

    async def _refuse(self, o: Override, refusal: Refusal, now: float, dry_run: bool) -> NoReturn:
        """Record a refusal (unless only planning) and raise it: nothing changes."""
        log.warning(
            "operator.refused", override=o.describe(), rule=refusal.rule, why=refusal.message
        )
        if not dry_run and self._audit is not None:
            await self._audit.append([AuditEntry.refused(o, refusal, now)])
        raise Refused(refusal.message, refusals=[_refusal(refusal)])


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


def _expiry(now: float, expires_in: float | None) -> float | None:
    return None if expires_in is None else now + expires_in


def _describe(action: Action) -> str:
    if isinstance(action, Remove):
        return f"remove {action.override_id}"
    scope = getattr(action, "services", None)
    what = "all services" if scope is None else ", ".join(sorted(scope))
    return f"{type(action).__name__.lower()} {action.region} ({what})"


def _refusal(r: Refusal) -> dict[str, Any]:
    return {
        "override_id": r.override_id,
        "rule": r.rule,
        "message": r.message,
        "services": list(r.services),
    }
