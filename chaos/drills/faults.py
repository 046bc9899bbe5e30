"""Fault injectors: each timeline step mapped onto the estate, the launcher, the links or the API.

    injector = Injector(drill, estate=estate, links=links, runbook=runbook, sampler=sampler, ...)
    outcome = await injector.apply(step)        # what happened, and what to do later
    if outcome.later: ...                       # the runner schedules a resume or a restart

| step | injected through |
|---|---|
| `vip_fault`, `vip_clear`, `region_down`, `region_up` | the VIP farm's control API (`Fault`) |
| `vantage_impaired`, `vantage_clear` | a source fault naming the region's member processes (`chaos.estate.sources`) |
| `partition`, `heal` | the peer-link relays (`chaos.drills.links`) |
| `api_brownout`, `api_clear` | the simulated API server's faults (`chaos.kubesim.Faults`) |
| `kill_leader`, `pause_leader` | the leader as its region's members report it over the API, then SIGKILL / SIGSTOP (SIGCONT later) |
| operator actions | `chaos.drills.runbook` (the API, as the runbook CLI) |
| `measure_split` | the sampler's DNS bursts |
| `bad_reload`, `state_full`, `state_clear`, `intent_delete` | the member's config file and SIGHUP, mounts over the region's state directory, its files (`chaos.drills.hostile`) |
| `accesspoint_apply`, `accesspoint_delete`, `l4_withdraw` | the home cluster's API, the region's simulated L4 controller (`chaos.drills.aps.ApDriver`) |

Without an estate (a practice run against a deployment) only operator
actions and `measure_split` apply; every other step is skipped and says so.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chaos.drills import hostile
from chaos.drills.aps import ApDriver
from chaos.drills.effects import vip_refs
from chaos.drills.facts import MemberEndpoint
from chaos.drills.links import PeerLinks
from chaos.drills.observe import Sampler
from chaos.drills.runbook import Runbook
from chaos.drills.samples import EstateFacts, SplitCount, StepRecord
from chaos.drills.steps import (
    ACTIONS,
    AccesspointApply,
    AccesspointDelete,
    Action,
    ApiBrownout,
    ApiClear,
    BadReload,
    Heal,
    IntentDelete,
    KillLeader,
    L4Withdraw,
    MeasureSplit,
    Partition,
    PauseLeader,
    RegionDown,
    RegionUp,
    RemoveAction,
    StateClear,
    StateFull,
    Step,
    VantageClear,
    VantageImpaired,
    VipClear,
    VipFault,
)
from chaos.estate import Fault, SimulatedEstate
from chaos.kubesim import Faults


@dataclass(frozen=True)
class Later:
    """Something a step leaves to do after `delay` seconds (a resume, a restart)."""

    delay: float
    title: str
    run: Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str
    status: int | None = None
    override_ids: tuple[str, ...] = ()
    rule: str | None = None
    reason: str | None = None
    member: str | None = None
    later: Later | None = None
    splits: tuple[SplitCount, ...] = field(default_factory=tuple)


def reason_of(drill: str, step: Step) -> str:
    """The reason an action's override carries: names the drill and the step (`nothing_lost`)."""
    said = getattr(step, "reason", None)
    tag = f"drill {drill}, step {step.id}"
    return f"{said} ({tag})" if said else tag


class Injector:
    def __init__(
        self,
        drill: str,
        facts: EstateFacts,
        members: Sequence[MemberEndpoint],
        *,
        runbook: Runbook,
        sampler: Sampler,
        estate: SimulatedEstate | None = None,
        links: PeerLinks | None = None,
        argv_for: Callable[[str, Path], list[str]] | None = None,
        records: Callable[[], Sequence[StepRecord]] = tuple,
        accesspoints: ApDriver | None = None,
    ) -> None:
        self.accesspoints = accesspoints
        self.drill = drill
        self.facts = facts
        self.members = list(members)
        self.runbook = runbook
        self.sampler = sampler
        self.estate = estate
        self.links = links
        self.argv_for = argv_for
        self._records = records
        self._full: dict[str, hostile.FullDisk] = {}
        self._filled: dict[str, float] = {}  # region -> when its state directory filled up

    def release(self) -> list[str]:
        """Undo what must not outlive the drill (a state directory still full); what was done."""
        done = []
        for region, disk in list(self._full.items()):
            if disk.mounted():
                disk.clear()
                done.append(f"the state directory of {region} unmounted")
            del self._full[region]
        return done

    async def apply(self, step: Step) -> Outcome:
        if isinstance(step, ACTIONS):
            return await self._action(step)
        if isinstance(step, MeasureSplit):
            return await self._split(step)
        if self.estate is None:
            return Outcome(True, "skipped: not a practice run's operator action")
        return await self._fault(step, self.estate)

    # -- operator actions --------------------------------------------------------------

    async def _action(self, step: Action) -> Outcome:
        reason = reason_of(self.drill, step)
        override_id = None
        if isinstance(step, RemoveAction):
            earlier = next((r for r in self._records() if r.id == step.override_of), None)
            if earlier is None or not earlier.override_ids:
                return Outcome(False, f"step {step.override_of} stored no override", reason=reason)
            override_id = earlier.override_ids[0]
        got = await self.runbook.act(step, reason, override_id=override_id)
        if got.status == 200 and got.accepted:
            detail = f"accepted by {got.server}: {', '.join(got.override_ids) or 'no override'}"
        elif got.status == 0:
            detail = f"no member answered: {got.message}"
        else:
            detail = f"HTTP {got.status} from {got.server}: {got.message}"
        refused = got.status == 409
        ok = (
            (step.expect == "accepted" and got.accepted)
            or (
                step.expect == "refused"
                and refused
                and (step.rule is None or step.rule == got.rule)
            )
            or (
                step.expect == "unavailable"
                and got.status == 503
                and (step.cause is None or step.cause in got.message)
            )
        )
        if step.expect == "refused" and refused and not ok:
            detail += f" (refused by {got.rule}, not {step.rule})"
        return Outcome(ok, detail, got.status, got.override_ids, got.rule, reason)

    async def _split(self, step: MeasureSplit) -> Outcome:
        names = step.members or _first_per_region(self.members, self.facts.regions)
        services = step.services or list(self.facts.services)
        counts: list[SplitCount] = []
        for m in self.members:
            if m.name in names:
                counts += await self.sampler.split(step.id, m, services, step.queries)
        asked = sum(c.n for c in counts)
        return Outcome(bool(counts), f"{asked} queries to {', '.join(names)}", splits=tuple(counts))

    # -- faults ------------------------------------------------------------------------

    async def _fault(self, step: Step, estate: SimulatedEstate) -> Outcome:
        if isinstance(step, VipFault):
            fault = Fault(step.mode, step.latency, step.status, step.period)
            ids = self.vip_ids(step.vips)
            for vip in ids:
                await estate.set_vip_fault(vip, fault)
            return Outcome(True, f"{step.mode} on {len(ids)} VIP(s): {', '.join(ids)}")
        if isinstance(step, VipClear):
            ids = self.vip_ids(step.vips) if step.vips else self.all_vips()
            for vip in ids:
                await estate.set_vip_fault(vip, Fault())
            return Outcome(True, f"{len(ids)} VIP(s) healthy again")
        if isinstance(step, RegionDown):
            states = await estate.set_region_fault(step.region, Fault(step.mode))
            return Outcome(True, f"{step.mode} on the {len(states['vips'])} VIPs of {step.region}")
        if isinstance(step, RegionUp):
            await estate.set_region_fault(step.region, Fault())
            return Outcome(True, f"the VIPs of {step.region} healthy again")
        if isinstance(step, VantageImpaired):
            entry = await estate.set_vantage_fault(
                step.region, Fault(step.mode, status=step.status)
            )
            groups = entry.get("groups", [])
            return Outcome(bool(groups), f"{step.mode} for the processes {groups} of {step.region}")
        if isinstance(step, VantageClear):
            await estate.set_vantage_fault(step.region, Fault())
            return Outcome(True, f"{step.region}'s probers see the VIPs again")
        if isinstance(step, Partition | Heal):
            return self._links(step)
        if isinstance(step, ApiBrownout):
            faults = Faults(
                latency=step.latency,
                jitter=step.jitter,
                error_rate=step.error_rate,
                throttle_rate=step.throttle_rate,
                retry_after=step.retry_after,
                rate_limit=step.rate_limit,
                drop_watches=step.drop_watches,
                drop_watches_after=step.drop_watches_after,
            )
            for region in step.regions:
                await estate.cluster_faults(region, faults)
            return Outcome(True, step.summary())
        if isinstance(step, ApiClear):
            for region in step.regions or self.facts.regions:
                await estate.cluster_faults(region, Faults())
            return Outcome(True, step.summary())
        if isinstance(step, KillLeader | PauseLeader):
            return await self._leader(step, estate)
        if isinstance(step, BadReload):
            return await self._bad_reload(step, estate)
        if isinstance(step, StateFull | StateClear | IntentDelete):
            return await self._state(step, estate.work_dir / "state" / step.region, estate)
        if isinstance(step, AccesspointApply | AccesspointDelete | L4Withdraw):
            return await self._accesspoint(step)
        return Outcome(False, f"no injector for {type(step).__name__}")

    async def _accesspoint(
        self, step: AccesspointApply | AccesspointDelete | L4Withdraw
    ) -> Outcome:
        aps = self.accesspoints
        if aps is None:
            return Outcome(False, "the drill runs without its AccessPoints")
        if isinstance(step, AccesspointApply):
            return Outcome(True, await aps.apply(step))
        if isinstance(step, AccesspointDelete):
            return Outcome(True, await aps.delete(step))
        detail, restore = await aps.withdraw(step)
        later = None
        if restore is not None and step.restore_after is not None:
            later = Later(step.restore_after, f"restore the VIP of {step.accesspoint}", restore)
        return Outcome(True, detail, later=later)

    # -- hostile inputs and disks ----------------------------------------------------------

    async def _bad_reload(self, step: BadReload, estate: SimulatedEstate) -> Outcome:
        name = f"{step.region}-{step.member}"
        member = next((m for m in self.members if m.name == name), None)
        if member is None or name not in estate.members:
            return Outcome(False, f"no member {name}")
        path = estate.members[name].path
        good = path.read_text()
        before = (await self.runbook.statuses([member])).get(name) or {}
        digest = (before.get("config") or {}).get("digest")
        path.write_text(hostile.bad_config(good, step.kind))
        since = time.time() - 0.5  # the member's clock is this machine's
        hostile.sighup(estate.launcher.pid(name))

        async def check() -> str:
            try:
                now = (await self.runbook.statuses([member])).get(name)
            finally:
                path.write_text(good)  # the good file back (no SIGHUP: nothing to reload)
            if now is None:
                raise RuntimeError(f"{name} does not answer after the bad SIGHUP")
            problems = hostile.refusal_problems(now, since=since, digest=digest, kind=step.kind)
            if problems:
                raise RuntimeError(f"{name}: " + "; ".join(problems))
            first = ((now.get("config") or {}).get("refused") or ["?"])[0]
            return f"{name} refused it and kept its config {digest}: {first}"

        return Outcome(
            True,
            f"a {step.kind.replace('_', ' ')} in {path.name}, SIGHUP {name}",
            later=Later(step.check_after, f"check {name} refused the reload", check),
        )

    async def _state(
        self, step: StateFull | StateClear | IntentDelete, state: Path, estate: SimulatedEstate
    ) -> Outcome:
        """Mounts, copies and the ballast run in a thread: the samples go on meanwhile."""
        if isinstance(step, StateFull):
            disk = self._full.setdefault(step.region, hostile.FullDisk(state))
            try:
                ballast = await asyncio.to_thread(disk.fill)
            except (OSError, subprocess.CalledProcessError) as e:
                why = getattr(e, "stderr", None) or e
                return Outcome(False, f"cannot fill {state} (mounting needs root): {why}")
            self._filled[step.region] = time.time()
            return Outcome(True, f"{state} on a full tmpfs ({ballast:,} octets of ballast)")
        if isinstance(step, StateClear):
            disk = self._full.pop(step.region, None)
            if disk is None:
                return Outcome(False, f"the state directory of {step.region} is not full")
            torn = await asyncio.to_thread(disk.clear)
            if torn:
                return Outcome(False, "the audit is torn: " + "; ".join(torn[:5]))
            logs = [
                estate.work_dir / "logs" / f"{m.name}.log"
                for m in self.members
                if m.region == step.region
            ]
            since = self._filled.pop(step.region, 0.0)
            named = hostile.cause_named(logs, "ENOSPC", since=since)
            if not named:
                return Outcome(
                    False, f"no member of {step.region} named ENOSPC while its state was full"
                )
            return Outcome(
                True, f"{state} has room again; every audit line whole; ENOSPC named by {named}"
            )
        newest = hostile.newest_intent(state)
        if newest is None:
            return Outcome(False, f"no intent file in {state}")
        kept = hostile.move_aside(newest, estate.work_dir / "deleted" / step.region)
        later = None
        if step.restore_after is not None:

            async def restore() -> str:
                return hostile.put_back(kept, state)

            later = Later(step.restore_after, f"restore {kept.name}", restore)
        return Outcome(True, f"{newest.name} of {step.region} deleted", later=later)

    def _links(self, step: Partition | Heal) -> Outcome:
        if self.links is None:
            return Outcome(False, "the estate runs without peer-link relays")
        if isinstance(step, Partition):
            dropped = self.links.cut(*step.regions)
            return Outcome(True, f"{step.summary()} ({dropped} connections dropped)")
        if step.regions:
            self.links.heal(*step.regions)
        else:
            self.links.heal()
        return Outcome(True, step.summary())

    async def _leader(self, step: KillLeader | PauseLeader, estate: SimulatedEstate) -> Outcome:
        name = await self.runbook.leader_of(step.region, self.members)
        if name is None:
            return Outcome(False, f"no member of {step.region} says it leads")
        launcher = estate.launcher
        pid = launcher.pid(name)
        away = self.sampler.away
        if isinstance(step, KillLeader):
            argv_for = self.argv_for
            if step.restart_after and argv_for is None:
                return Outcome(False, "no command line to restart a member with")
            launcher.kill(name)
            away.add(name)
            later = None
            if step.restart_after and argv_for is not None:

                async def restart() -> str:
                    await launcher.wait(name, 10.0)
                    estate.start_members(None, argv_for, names=[name])
                    away.discard(name)
                    return f"{name} started again (pid {launcher.pid(name)})"

                later = Later(step.restart_after, f"restart {name}", restart)
            return Outcome(
                True,
                f"SIGKILL {name} (pid {pid}), the leader of {step.region}",
                member=name,
                later=later,
            )
        launcher.pause(name)
        away.add(name)

        async def resume() -> str:
            launcher.resume(name)
            away.discard(name)
            return f"SIGCONT {name} (pid {pid})"

        return Outcome(
            True,
            f"SIGSTOP {name} (pid {pid}), the leader of {step.region}",
            member=name,
            later=Later(step.pause, f"resume {name}", resume),
        )

    # -- VIPs ------------------------------------------------------------------------------

    def vip_ids(self, refs: Sequence[str]) -> list[str]:
        """VIP ids of `service/region[/address]` references (of the estate as simulated)."""
        return [v for vips in vip_refs(refs, self.facts).values() for v in vips]

    def all_vips(self) -> list[str]:
        return [v for s in self.facts.services.values() for v in s.vips]


def _first_per_region(members: Sequence[MemberEndpoint], regions: Sequence[str]) -> list[str]:
    first: dict[str, str] = {}
    for m in members:
        first.setdefault(m.region, m.name)
    return [first[r] for r in regions if r in first]
