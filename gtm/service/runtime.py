"""One member of a region's HA pair: everything `gtm serve` runs, wired together.

Both members probe every VIP, keep health (with their peers' observations),
serve DNS and the API. The member holding the lease leads: it evaluates the
tables, stores them, drives the WorkloadEntries and writes the operators'
intent. The other one, the standby, serves the table the leader last stored
and takes over from it, and from the durable intent, when the lease passes.

    runtime = MemberRuntime("estate.yaml", region="dc1", member="dc1-a")
    await runtime.run(stop)      # until `stop` is set (SIGTERM)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Mapping, Sequence, Set
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from failover import Reconciler
from gtm.api import TokenBook, make_app, serve_api
from gtm.config import ConfigError, Inventory, load, split_listen
from gtm.dns import DnsCollector, DnsWorkers, WorkerFailed, WorkersCollector
from gtm.exporters import PowerDnsExporter
from gtm.ha import Elector, LeadershipLost
from gtm.service.actions import Action, ActionResult, NotLeader
from gtm.service.backends import Stores, open_elector, open_reconcilers, open_stores
from gtm.service.controller import Controller
from gtm.service.loop_lag import LoopLag
from gtm.service.member import Role
from gtm.service.observation_log import ObservationLog
from gtm.service.operations import Leadership, Operations
from gtm.service.peers import PeerExchange
from gtm.service.probing import engine_health, health_settings, probe_targets
from gtm.service.status import health_doc, member_status
from gtm.status import MemberStatus
from intent import EMPTY as EMPTY_INTENT
from intent import TOMBSTONE_BOUND, AuditEntry, IntentState
from policies import Evaluation, Health, Override, WeightTable, evaluate
from probes import (
    HealthMonitor,
    HealthTracker,
    HealthView,
    NetworkProber,
    Observation,
    ProbeMetrics,
    Scheduler,
)

log = structlog.get_logger("gtm.member")

FOLLOW_EVERY = 1.0  # the standby checks the stored table this often
READY_BEHIND = 5.0  # seconds DNS may lag the member's table before /readyz says not ready


class MemberRuntime:
    """Implements `gtm.service.member.Member` for the API."""

    def __init__(
        self, config_path: str, *, region: str | None = None, member: str | None = None
    ) -> None:
        self.config_path = config_path
        self._inventory = load(config_path)  # ConfigError: the caller reports it
        instance = self._inventory.config.instance
        chosen = region or instance.region
        if chosen is None:
            raise ValueError(
                f"which region does this member run in? pass --region or set instance.region in {config_path}"
            )
        if chosen not in self._inventory.regions:
            raise ValueError(f"--region {chosen}: no such region in {config_path}")
        self.region = chosen
        self.identity = member or instance.member or f"{socket.gethostname()}-{os.getpid()}"
        self.registry = CollectorRegistry()
        self.state_dir = Path(instance.state_dir)
        self._observations = ObservationLog()
        self._started = time.time()
        self._served: WeightTable | None = None
        self._served_at: float | None = None
        self._serving = asyncio.Lock()
        self._intent: IntentState = EMPTY_INTENT
        self._reconcilers: list[Reconciler] = []
        self._dns: DnsWorkers | None = None
        self._elector: Elector | None = None
        self._stores: Stores | None = None
        self._controller: Controller | None = None
        self._operations: Operations | None = None
        self._peers: PeerExchange | None = None
        self._peer_states: dict[str, IntentState] = {}  # the latest intent of each peer region
        metrics = ProbeMetrics(registry=self.registry)
        self._monitor = HealthMonitor(
            HealthTracker(health_settings(self._inventory.config.health)), metrics=metrics
        )
        self._probe_metrics = metrics
        self._scheduler: Scheduler | None = None
        self._restart_term = asyncio.Event()
        self._planning = asyncio.Lock()  # held by action plans and by a term's end
        self._loop_lag = LoopLag(self.registry)

    # -- Member (read side) ------------------------------------------------------------

    @property
    def inventory(self) -> Inventory:
        return self._inventory

    def role(self) -> Role:
        if self._elector is None or self._served is None:
            return "starting"
        return "leader" if self._elector.is_leader() else "standby"

    def ready(self) -> bool:
        """Serving: DNS answers the table this member holds (or has been behind < READY_BEHIND)."""
        return (
            self._served is not None and self._dns is not None and self._dns.behind() < READY_BEHIND
        )

    def table(self) -> WeightTable | None:
        return self._served

    def intent(self) -> IntentState:
        return self._intent

    def engine_health(self) -> Health:
        return engine_health(self._monitor.view())

    def health_view(self) -> HealthView:
        return self._monitor.view()

    def health(self) -> dict[str, Any]:
        return health_doc(self._monitor.view())

    def status(self) -> MemberStatus:
        return member_status(self)

    async def history(self, limit: int, since: float | None) -> Sequence[AuditEntry]:
        if self._stores is None:
            return []
        return await self._stores.audit.history(limit=limit, since=since)

    def observations(self, since: int, limit: int) -> tuple[list[list[Any]], int]:
        return self._observations.since(since, limit)

    def what_if(self, overrides: Sequence[Override]) -> Evaluation:
        now = time.time()
        active = [*self._intent.active(now), *overrides]
        return evaluate(self._inventory.estate, self.engine_health(), active, self._served, now)

    async def act(self, action: Action, *, who: str, dry_run: bool) -> ActionResult:
        if self._operations is None:
            raise NotLeader("this member is still starting")
        return await self._operations.act(action, who=who, dry_run=dry_run)

    # -- parts other modules read ----------------------------------------------------------

    @property
    def elector(self) -> Elector | None:
        return self._elector

    @property
    def controller(self) -> Controller | None:
        return self._controller

    @property
    def reconcilers(self) -> list[Reconciler]:
        return self._reconcilers

    @property
    def peers(self) -> PeerExchange | None:
        return self._peers

    @property
    def dns(self) -> DnsWorkers | None:
        return self._dns

    @property
    def scheduler(self) -> Scheduler | None:
        return self._scheduler

    @property
    def served_at(self) -> float | None:
        return self._served_at

    @property
    def started(self) -> float:
        return self._started

    # -- running ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, reload: asyncio.Event | None = None) -> None:
        reload = reload or asyncio.Event()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        config = self._inventory.config
        async with AsyncExitStack() as stack:
            stores = self._stores = await open_stores(
                self._inventory, self.region, self.state_dir, stack, self.registry
            )
            api_host, api_port = split_listen(config.api.listen)
            scheme = "https" if config.api.tls else "http"
            address = f"{scheme}://{api_host}:{api_port}"
            elector = self._elector = await open_elector(
                self._inventory,
                self.region,
                self.identity,
                address,
                self.state_dir,
                stack,
                self.registry,
            )
            prober = await stack.enter_async_context(NetworkProber())
            self._scheduler = Scheduler(
                prober,
                vantage=self.region,
                on_observation=self._observed,
                concurrency=config.health.concurrency,
                lag_tolerance=config.health.lag_tolerance,
                metrics=self._probe_metrics,
            )
            targets = probe_targets(self._inventory)
            self._monitor.update(targets)
            self._scheduler.update(targets)
            await self._serve_initial(stores)
            assert self._served is not None
            # DNS is answered by processes of its own: nothing on this loop can delay a query.
            dns = self._dns = await stack.enter_async_context(
                DnsWorkers(
                    config.dns.workers,
                    self._inventory,
                    self._served,
                    split_listen(config.dns.listen),
                    receive_buffer=config.dns.udp_receive_buffer,
                )
            )
            self.registry.register(DnsCollector(dns.snapshots))
            self.registry.register(WorkersCollector(dns))
            exporter = None
            if config.dns.powerdns is not None:
                exporter = await stack.enter_async_context(
                    PowerDnsExporter.from_config(config.dns.powerdns, registry=self.registry)
                )
            self._controller = Controller(
                inventory=lambda: self._inventory,
                health=self.engine_health,
                stores=stores,
                elector=elector,
                serve=self._serve,
                exporter=exporter,
            )
            self._operations = Operations(
                inventory=lambda: self._inventory,
                health=self.engine_health,
                served=lambda: self._served,
                store=stores.intent,
                audit=stores.audit,
                leadership=Leadership(
                    epoch=lambda: elector.epoch,
                    leader=self._leader,
                ),
                mesh_plans=self._mesh_plans,
                hold=self._controller.hold,
                on_change=self._intent_changed,
            )
            self._peers = PeerExchange(
                own_region=self.region,
                peers=config.api.peers,
                token=_read_token(config.api.peer_token_file),
                on_observation=self._monitor.observe,
                on_intent=self._peer_intent,
            )
            tokens = await TokenBook.from_config(config.api, self._inventory, region=self.region)
            app = make_app(self, tokens, registry=self.registry)
            await stack.enter_async_context(serve_api(app, config.api.listen, config.api.tls))
            log.info(
                "member.started",
                member=self.identity,
                region=self.region,
                dns=config.dns.listen,
                api=address,
                targets=len(targets),
                generation=self._served.generation,
            )
            async with asyncio.TaskGroup() as tasks:
                background = [
                    tasks.create_task(self._scheduler.run(), name="scheduler"),
                    tasks.create_task(self._monitor.run(), name="monitor"),
                    tasks.create_task(elector.run(), name="elector"),
                    tasks.create_task(self._peers.run(), name="peers"),
                    tasks.create_task(self._follow(stores), name="follow"),
                    tasks.create_task(self._lead_when_elected(elector), name="lead"),
                    tasks.create_task(self._watch_health(), name="health"),
                    tasks.create_task(self._reloads(reload), name="reload"),
                    tasks.create_task(self._loop_lag.run(), name="loop-lag"),
                ]
                await stop.wait()
                log.info("member.stopping", member=self.identity, leader=elector.is_leader())
                for task in background:
                    if task.get_name() != "elector":
                        task.cancel()
                await elector.release()  # stop writing; the standby takes over at once
                delay = self._inventory.config.instance.shutdown_delay
                if delay > 0:
                    # keep answering DNS while load balancers take this member out
                    log.info("member.draining", seconds=delay)
                    await asyncio.sleep(delay)
                for task in background:
                    task.cancel()
        log.info("member.stopped", member=self.identity)

    async def _serve_initial(self, stores: Stores) -> None:
        """Serve what the pair last stored, else a first table from the intent alone."""
        published = await stores.dns_table.load()
        if published is not None:
            await self._serve(published.table)
            return
        self._intent = await stores.intent.load()
        now = time.time()
        first = evaluate(self._inventory.estate, Health(), self._intent.active(now), None, now)
        await self._serve(first.table)

    async def _serve(self, table: WeightTable) -> None:
        """Serve `table`: the DNS answer processes build it and swap it in whole.

        Returns once they serve it, or after their delivery bound (they keep
        serving the previous generation meanwhile, and `ready()` says so).
        """
        async with self._serving:
            served = self._served
            if served is not None and table.generation == served.generation and table == served:
                return
            self._served = table
            self._served_at = time.time()
            if self._dns is not None:
                await self._dns.publish(table)

    def _observed(self, obs: Observation) -> None:
        self._monitor.observe(obs)
        self._observations.append(obs)

    def _intent_changed(self, stored: IntentState) -> None:
        """An operator's write is stored: serve it at once, and evaluate it."""
        self._intent = stored
        if self._controller is not None:
            self._controller.wake()

    def _leader(self) -> tuple[str | None, str | None]:
        holder = None if self._elector is None else self._elector.leader()
        return (None, None) if holder is None else (holder.identity, holder.address)

    async def _mesh_plans(self, table: WeightTable) -> list[Any]:
        """Each cluster's plan for `table`; the term's reconcilers stay open meanwhile."""
        async with self._planning:
            return [await r.plan(table) for r in self._reconcilers]

    async def _lead_term(self, stack: AsyncExitStack) -> None:
        """One term: the reconcilers and the controller's loop, until the config is reloaded."""
        assert self._controller is not None
        if self._peers is not None:
            self._peers.catch_up()  # intent the old leader had not merged yet
        self._reconcilers = await open_reconcilers(self._inventory, self.region, self.registry)
        for r in self._reconcilers:
            await stack.enter_async_context(r)
            await stack.enter_async_context(r.running())
        lead = asyncio.create_task(self._controller.lead(self._reconcilers))
        restart = asyncio.create_task(self._restart_term.wait())
        try:
            await asyncio.wait({lead, restart}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (lead, restart):
                task.cancel()
            await asyncio.gather(lead, restart, return_exceptions=True)
        if lead.done() and not lead.cancelled() and lead.exception() is not None:
            raise lead.exception()  # type: ignore[misc]

    async def _lead_when_elected(self, elector: Elector) -> None:
        """While this member leads: the reconcilers and the controller's loop."""
        assert self._controller is not None
        while True:
            await elector.wait_leading()
            self._restart_term.clear()
            try:
                async with elector.leading():
                    stack = AsyncExitStack()
                    try:
                        await self._lead_term(stack)
                    finally:
                        # an operator's action may be planning with these reconcilers:
                        # they close once it is done, and the next plans see none
                        async with self._planning:
                            self._reconcilers = []
                            await stack.aclose()
                    log.info(
                        "leader.restarting_term", member=self.identity, reason="config reloaded"
                    )
            except LeadershipLost:
                log.warning("leader.term_ended", member=self.identity)
            except Exception:
                # A failing leader must not keep the lease: step down, let the standby lead.
                log.exception("leader.failed", member=self.identity)
                await elector.step_down("leader loop failed")
            finally:
                self._reconcilers = []

    async def _follow(self, stores: Stores) -> None:
        """The standby serves the table the leader stored, and keeps the intent it reads."""
        last = None
        while True:
            try:
                self._intent = await stores.intent.load()
                if self._elector is not None and not self._elector.is_leader():
                    head = await stores.dns_table.head()
                    if head is not None and (head.epoch, head.generation) != last:
                        published = await stores.dns_table.load()
                        if published is not None:
                            await self._serve(published.table)
                            last = (published.head.epoch, published.head.generation)
                    # The leader's DNS served an override from when it saw it; this
                    # member's, once it read that table: up to FOLLOW_EVERY later.
                    leader_seen = (
                        {oid: at + FOLLOW_EVERY for oid, at in head.seen.items()}
                        if head is not None
                        else None
                    )
                    if self._controller is not None:
                        self._controller.observe(self._intent, self._served, leader_seen)
            except Exception as e:  # a store that cannot be read now is read again next time
                log.warning("standby.read_failed", error=f"{type(e).__name__}: {e}")
            await asyncio.sleep(FOLLOW_EVERY)

    async def _watch_health(self) -> None:
        """Wake the controller when the engine's view of health changes."""
        seen: Health | None = None
        while True:
            await asyncio.sleep(0.5)
            health = self.engine_health()
            if seen is not None and health != seen and self._controller is not None:
                self._controller.wake()
            seen = health

    async def _peer_intent(self, theirs: IntentState, region: str) -> None:
        """Anti-entropy: the leader merges a peer's intent into its own store, and drops the
        tombstones every peer region has let go of (`compactable`)."""
        self._peer_states[region] = theirs
        epoch = None if self._elector is None else self._elector.epoch
        if epoch is None or self._stores is None:
            return  # the standby only reads; its leader merges
        mine = self._intent
        if not (mine.version == theirs.version and mine.digest == theirs.digest):
            if not mine.merge(theirs).same_intent(mine):
                self._intent = await self._stores.intent.update(lambda s: s.merge(theirs), epoch)
                log.info("intent.merged", peer=region, version=self._intent.version)
                if self._controller is not None:
                    self._controller.wake()  # new intent: evaluate it now
        regions = {p.region for p in self._inventory.config.api.peers} - {self.region}
        if compactable(self._intent, self._peer_states, regions, time.time()):
            peers = dict(self._peer_states)
            self._intent = await self._stores.intent.update(
                lambda s: s.compact(compactable(s, peers, regions, time.time())), epoch
            )
            log.info("intent.compacted", retired=self._intent.retired, version=self._intent.version)

    async def _reloads(self, reload: asyncio.Event) -> None:
        while True:
            await reload.wait()
            reload.clear()
            await self.reload()

    async def reload(self) -> bool:
        """Re-read the config (SIGHUP). A bad file is refused whole; the old one keeps running."""
        try:
            fresh = load(self.config_path)
        except ConfigError as e:
            log.error(
                "config.refused", file=self.config_path, problems=[str(p) for p in e.problems]
            )
            return False
        old = self._inventory.config
        new = fresh.config
        fixed = {
            "dns.listen": (old.dns.listen, new.dns.listen),
            "api.listen": (old.api.listen, new.api.listen),
            "ha": (old.ha, new.ha),
            "instance.state_dir": (old.instance.state_dir, new.instance.state_dir),
        }
        restart = [k for k, (a, b) in fixed.items() if a != b]
        if restart:
            log.warning("config.restart_needed", settings=restart)
        self._inventory = fresh
        targets = probe_targets(fresh)
        self._monitor.update(targets)
        if self._scheduler is not None:
            self._scheduler.update(targets)
        if self._peers is not None:
            self._peers.update(new.api.peers)
        if self._dns is not None:
            # the new names and addresses: fresh answer processes, the same table
            try:
                await self._dns.reconfigure(fresh)
            except (WorkerFailed, TimeoutError, OSError) as e:
                log.error("config.dns_not_applied", file=self.config_path, error=str(e))
        # The reconcilers hold the estate and the clusters: the leader starts them afresh.
        self._restart_term.set()
        if self._controller is not None:
            self._controller.wake()
        log.info(
            "config.reloaded",
            file=self.config_path,
            services=len(new.services),
            targets=len(targets),
        )
        return True


def compactable(
    mine: IntentState, peers: Mapping[str, IntentState], regions: Set[str], now: float
) -> frozenset[str]:
    """The tombstones to drop: none until every peer region has been heard from (one not
    heard from may hold the override in force), then those `TOMBSTONE_BOUND` past their end
    that no peer holds in force."""
    if not regions <= peers.keys():
        return frozenset()
    return mine.compactable((peers[r] for r in regions), now - TOMBSTONE_BOUND)


def _read_token(path: str | None) -> str | None:
    if path is None:
        return None
    with contextlib.suppress(OSError):
        return Path(path).read_text().strip() or None
    log.warning("peer.token_unreadable", file=path)
    return None
