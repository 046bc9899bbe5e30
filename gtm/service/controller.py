"""The leader's loop: evaluate both layers, store and serve the tables, drive the mesh.

On every health change (the health monitor tells `health_changed`; the
leader evaluates when what the engine sees of health moved, at most every
`HEALTH_SETTLE` seconds), every operator action and at least every
`instance.evaluate_every` seconds the leader:

1. expires overrides whose time has come (the audit records it);
2. splits the intent into what DNS and what the mesh see now
   (`layers.layer_intent`: exits reach DNS first, the mesh after the hold);
3. evaluates both tables from the previous ones (`policies.evaluate`);
4. when the DNS table changed, stores it under its epoch (the standby serves
   what is stored), serves it, and hands it to the exporters;
5. when the mesh table changed, stores it and hands it to the reconcilers.

Every write checks leadership first and carries the epoch, so a stale leader
is fenced off by the stores and by the WorkloadEntries' epoch. `status()` says
what the last evaluation admitted, decided and exported.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from failover import Reconciler
from gtm.config import Inventory
from gtm.exporters import PowerDnsExporter
from gtm.ha import Elector
from gtm.service.backends import Stores
from gtm.service.evaluation import evaluated
from gtm.service.table_metrics import TableMetrics
from gtm.status import Layers, Pending
from intent import AuditEntry, IntentState, refusal_to_dict
from policies import Decision, Evaluation, Health, Override, WeightTable
from policies.layers import FirstSeen, LayerIntent, layer_intent

log = structlog.get_logger("gtm.controller")

DECISIONS_LOGGED = 20  # per evaluation; the rest are counted by rule
DECISIONS_SHOWN = 20  # the latest decisions in status
DECISIONS_SLICE = 2000  # decisions recorded between two turns of the loop
HEALTH_SETTLE = 0.5  # seconds: health changes come in bursts; evaluate them at most this often


@dataclass(frozen=True)
class Snapshot:
    """What the last evaluation decided (`status()` reports it)."""

    at: float
    dns: Evaluation
    mesh: Evaluation
    layers: LayerIntent


@dataclass(frozen=True)
class EvaluationStatus:
    """What the controller reports for the member's status (all None before a first evaluation)."""

    layers: Layers | None = None
    decisions: list[dict[str, Any]] | None = None  # the latest DNS decisions, oldest first
    exporters: dict[str, Any] | None = None


class Controller:
    def __init__(
        self,
        *,
        inventory: Callable[[], Inventory],
        health: Callable[[], Health],
        stores: Stores,
        elector: Elector,
        serve: Callable[[WeightTable], Awaitable[None]],
        exporter: PowerDnsExporter | None = None,
        metrics: TableMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._metrics = metrics
        self._inventory = inventory
        self._health = health
        self._stores = stores
        self._elector = elector
        self._serve = serve
        self._exporter = exporter
        self._clock = clock
        self._wake = asyncio.Event()
        self._snapshot: Snapshot | None = None
        self._audited: set[tuple[str, str]] = set()
        self._decisions: deque[Decision] = deque(maxlen=DECISIONS_SHOWN)
        # (service, clients' region, target) -> (when, the latest decision behind that cell)
        self._latest: dict[tuple[str, str, str], tuple[float, Decision]] = {}
        self._exporters: dict[str, Any] = {}
        self._export_wanted: WeightTable | None = None
        self._seen = FirstSeen()
        self._export_wake = asyncio.Event()
        self._health_moved = asyncio.Event()

    def wake(self) -> None:
        """Evaluate now (a health change, an operator action, a peer's intent)."""
        self._wake.set()

    def health_changed(self) -> None:
        """The health monitor's view changed: the leader evaluates if the engine's view did."""
        self._health_moved.set()

    def status(self) -> EvaluationStatus:
        snap = self._snapshot
        if snap is None:
            return EvaluationStatus()
        layers = Layers(
            evaluated_at=snap.at,
            dns_generation=snap.dns.table.generation,
            mesh_generation=snap.mesh.table.generation,
            dns_admitted=list(snap.dns.admitted),
            mesh_admitted=list(snap.mesh.admitted),
            mesh_pending=[Pending(id=o.id, at=at) for o, at in snap.layers.mesh_pending],
            refusals=[refusal_to_dict(r) for r in snap.dns.refusals],
        )
        decisions = [d._asdict() for d in self._decisions]
        return EvaluationStatus(layers, decisions, self._exporters)

    def latest_decisions(self) -> dict[tuple[str, str, str], tuple[float, Decision]]:
        """The latest decision behind each cell of the DNS table, and when it was made."""
        return self._latest

    def hold(self) -> float:
        """How long DNS leads the mesh on an exit (and trails it on an enter)."""
        dns = self._inventory().config.dns
        return dns.ttl + dns.exit_margin

    async def lead(self, reconcilers: Sequence[Reconciler]) -> None:
        """Run the leader's loop until cancelled (the term ended, or shutdown)."""
        epoch = self._elector.require_leader()
        published = await self._stores.dns_table.load()
        mesh_published = await self._stores.mesh_table.load()
        prev_dns = published.table if published is not None else None
        prev_mesh = mesh_published.table if mesh_published is not None else prev_dns
        log.info(
            "leader.continues",
            epoch=epoch,
            generation=None if prev_dns is None else prev_dns.generation,
            mesh_generation=None if prev_mesh is None else prev_mesh.generation,
        )
        self._audited.clear()
        exporting = asyncio.create_task(self._export_loop()) if self._exporter else None
        watching = asyncio.create_task(self._watch_health())
        first_mesh = True
        try:
            while True:
                self._wake.clear()
                prev_dns, prev_mesh, mesh_changed = await self._tick(epoch, prev_dns, prev_mesh)
                if mesh_changed or first_mesh:
                    first_mesh = False
                    assert prev_mesh is not None
                    force = self._forced_mesh()
                    for r in reconcilers:
                        r.set_table(prev_mesh, epoch, self._elector.is_leader, force=force)
                every = self._inventory().config.instance.evaluate_every
                try:
                    async with asyncio.timeout(every):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            helpers = [t for t in (exporting, watching) if t is not None]
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _watch_health(self) -> None:
        """Wake the loop when what the engine sees of health moved (only `down` counts)."""
        seen = self._health()
        while True:
            await self._health_moved.wait()
            self._health_moved.clear()
            health = self._health()
            if health != seen:
                seen = health
                self.wake()
            await asyncio.sleep(HEALTH_SETTLE)  # a burst of changes: look again once it settles

    async def _tick(
        self, epoch: int, prev_dns: WeightTable | None, prev_mesh: WeightTable | None
    ) -> tuple[WeightTable, WeightTable, bool]:
        inventory = self._inventory()
        now = self._clock()
        state = await self._stores.intent.load()
        _, expired = state.expire(now)
        if expired:
            self._elector.require_leader()
            state = await self._stores.intent.update(lambda s: s.expire(now)[0], epoch)
            for o in expired:
                log.info("override.expired", override=o.id, what=o.describe())
        layers = layer_intent(
            state.active(now), now, self.hold(), self._seen.update(state.active(now), now)
        )
        health = self._health()
        dns = await evaluated(inventory.estate, health, layers.dns, prev_dns, now)
        # With no ordered change under way both layers hold the same intent: the mesh's
        # evaluation is the DNS one (pure, same inputs), and the loop evaluates once.
        same = layers.mesh == layers.dns and prev_mesh is prev_dns
        mesh = (
            dns if same else await evaluated(inventory.estate, health, layers.mesh, prev_mesh, now)
        )
        self._snapshot = Snapshot(now, dns, mesh, layers)
        if self._metrics is not None:
            self._metrics.evaluated(now, dns.table if dns.changed or prev_dns is None else None)
        await self._audit_refusals(dns, layers.dns, now)
        if dns.changed or prev_dns is None:
            self._elector.require_leader()
            await self._stores.dns_table.save(dns.table, epoch, now, seen=self._seen.times())
            await self._serve(dns.table)
            await self._log_change("dns", dns)
            if self._exporter is not None:
                self._export_wanted = dns.table
                self._export_wake.set()
        mesh_changed = mesh.changed or prev_mesh is None
        if mesh_changed:
            self._elector.require_leader()
            await self._stores.mesh_table.save(mesh.table, epoch, now)
            await self._log_change("mesh", mesh)
        return dns.table, mesh.table, mesh_changed

    async def observe(
        self,
        state: IntentState,
        served: WeightTable | None,
        leader_seen: Mapping[str, float] | None = None,
    ) -> None:
        """The standby's view: what both layers admit now, from the intent it reads and
        the table it serves, without writing anything (status and `--wait` read it).

        `leader_seen`: when the leader first saw each override (from the table it
        published), so this member holds the mesh from then, as the leader does, and
        continues the hold rather than starting it again when it takes over.
        """
        inventory = self._inventory()
        now = self._clock()
        seen = self._seen.update(state.active(now), now)
        if leader_seen:
            seen = self._seen.adopt(leader_seen)
        layers = layer_intent(state.active(now), now, self.hold(), seen)
        health = self._health()
        dns = await evaluated(inventory.estate, health, layers.dns, served, now)
        same = layers.mesh == layers.dns  # both from `served`: one evaluation serves both
        mesh = dns if same else await evaluated(inventory.estate, health, layers.mesh, served, now)
        self._snapshot = Snapshot(now, dns, mesh, layers)

    def _forced_mesh(self) -> bool:
        """Hand the mesh a table past the blast-radius limit only when an operator forced it."""
        snap = self._snapshot
        return snap is not None and bool(snap.mesh.forced)

    async def _log_change(self, layer: str, ev: Evaluation) -> None:
        by_rule = Counter(d.rule for d in ev.decisions)
        log.info(
            "table.changed",
            layer=layer,
            generation=ev.table.generation,
            decisions=len(ev.decisions),
            rules=dict(by_rule),
        )
        if layer != "dns":
            return
        self._decisions.extend(ev.decisions)
        at = self._clock()
        # a region-wide change or ramp: tens of thousands of decisions, a slice at a time
        for start in range(0, len(ev.decisions), DECISIONS_SLICE):
            if start:
                await asyncio.sleep(0)
            for d in ev.decisions[start : start + DECISIONS_SLICE]:
                self._latest[(d.service, d.source, d.target)] = (at, d)
        for d in ev.decisions[:DECISIONS_LOGGED]:
            log.info(
                "decision",
                service=d.service,
                row=d.source,
                cell=d.target,
                rule=d.rule,
                old=d.old,
                new=d.new,
                why=d.input,
            )

    async def _audit_refusals(
        self, ev: Evaluation, overrides: Sequence[Override], now: float
    ) -> None:
        """An override in force that a guardrail now refuses (suspended) goes to the audit once a term."""
        by_id = {o.id: o for o in overrides}
        entries = []
        for r in ev.refusals:
            key = (r.override_id, r.rule)
            if key in self._audited or r.override_id not in by_id:
                continue
            self._audited.add(key)
            log.warning("override.suspended", override=r.override_id, rule=r.rule, why=r.message)
            entries.append(AuditEntry.refused(by_id[r.override_id], r, now))
        if entries:
            await self._stores.audit.append(entries)

    async def _export_loop(self) -> None:
        """Publish the newest DNS table to the exporters; a slow or failing exporter never
        holds up the loop, and an older table is never published after a newer one."""
        assert self._exporter is not None
        while True:
            await self._export_wake.wait()
            self._export_wake.clear()
            table = self._export_wanted
            if table is None:
                continue
            try:
                self._elector.require_leader()
                published = await self._exporter.publish(self._inventory(), table, force=True)
                self._exporters = {
                    "powerdns": {
                        "generation": published.generation,
                        "error": None,
                        "at": self._clock(),
                    }
                }
            except Exception as e:  # reported in status and the log; the next table retries
                self._exporters = {
                    "powerdns": {
                        "generation": None,
                        "error": f"{type(e).__name__}: {e}",
                        "at": self._clock(),
                    }
                }
                log.warning("export.failed", exporter="powerdns", error=str(e))
