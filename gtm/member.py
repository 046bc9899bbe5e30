"""One member of a region's HA pair: what `gtm serve` runs, wired together (the root).

Both members probe every VIP, keep health (with their peers' observations),
serve DNS and the API. The member holding the lease leads
(`gtm.service.leader`): it evaluates the tables, stores them, drives the
WorkloadEntries and writes the operators' intent. The other one, the standby
(`gtm.service.standby`), serves the table the leader last stored and takes
over from it, and from the durable intent, when the lease passes. This module
only builds the parts, starts and stops them, hands a reloaded config to
them, and answers the API (`gtm.api.member.Member`) from what they report.

    runtime = MemberRuntime("estate.yaml", region="dc1", member="dc1-a")
    await runtime.run(stop)      # until `stop` is set (SIGTERM)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from gtm.api import TokenBook, make_app, serve_api
from gtm.api.member import MemberRole
from gtm.config import ConfigError, Inventory, load, load_onboarded, split_listen
from gtm.dns import DnsCollector, DnsWorkers, WorkerFailed, WorkersCollector
from gtm.dns.lookup import Lookup, lookup
from gtm.exporters import PowerDnsExporter
from gtm.ha import Elector, NotLeader
from gtm.service.accesspoints import open_home
from gtm.service.actions import Action, ActionResult
from gtm.service.backends import Stores, open_elector, open_stores
from gtm.service.config_state import ConfigState
from gtm.service.controller import Controller, EvaluationStatus
from gtm.service.explain import explain_doc
from gtm.service.heap import Heap
from gtm.service.intent_merge import IntentMerge
from gtm.service.leader import Leader
from gtm.service.loop_lag import LoopLag
from gtm.service.observation_log import ObservationLog
from gtm.service.onboarding import OnboardedFile, Onboarding, Services
from gtm.service.operations import LeaderView, Operations
from gtm.service.peers import PeerExchange, PeersCollector
from gtm.service.probing import engine_health, health_settings, probe_targets, silent_after
from gtm.service.reload import load_aside
from gtm.service.serving import Serving
from gtm.service.standby import Standby
from gtm.service.status import health_doc, member_status
from gtm.service.table_metrics import TableMetrics
from gtm.status import MemberStatus
from intent import EMPTY as EMPTY_INTENT
from intent import AuditPage, GuardedIntentStore, HighWater, IntentState
from policies import Evaluation, Health, Override, WeightTable, evaluate
from probes import HealthMonitor, HealthTracker, NetworkProber, Observation, ProbeMetrics, Scheduler

log = structlog.get_logger("gtm.member")


class MemberRuntime:
    """Implements `gtm.api.member.Member` for the API."""

    def __init__(
        self,
        config_path: str,
        *,
        region: str | None = None,
        member: str | None = None,
        own_process: bool = False,
    ) -> None:
        """`own_process`: the member is all its process runs (`gtm serve`): what it holds
        once started, after each table served and after each reload is frozen out of the
        cycle collector, whose full collections held the loop for hundreds of ms
        (`gtm.service.heap`)."""
        self.config_path = config_path
        self._inventory = load(config_path)  # ConfigError: the caller reports it
        # the services the home cluster's AccessPoints onboard (`gtm.service.onboarding`),
        # as last applied: answered from the first query after a restart
        self._onboarded_file = OnboardedFile(self._inventory.config.instance.state_dir)
        self._onboarded: Services = {}
        self._onboarding_refused: dict[str, str] = {}
        if self._inventory.config.accesspoints.cluster is not None:
            self._onboarded = self._onboarded_file.read()
            if self._onboarded:
                self._inventory, self._onboarding_refused = load_onboarded(
                    config_path, self._onboarded
                )
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
        self._started = time.time()
        self._observations = ObservationLog()
        self._heap = Heap(self.registry, own_process=own_process)
        self._serving = Serving(settle=self._heap.settle)
        self._intent: IntentState = EMPTY_INTENT
        self._probe_metrics = ProbeMetrics(registry=self.registry)
        self._monitor = HealthMonitor(
            HealthTracker(health_settings(self._inventory.config.health)),
            metrics=self._probe_metrics,
            on_change=self._health_changed,
        )
        self._loop_lag = LoopLag(self.registry)
        self._config = ConfigState(config_path, self._inventory.config, self.registry)
        self._reloading = asyncio.Lock()  # one reload at a time
        # built by `run`, in this order; None while starting
        self._stores: Stores | None = None
        self._elector: Elector | None = None
        self._scheduler: Scheduler | None = None
        self._dns: DnsWorkers | None = None
        self._controller: Controller | None = None
        self._leader: Leader | None = None
        self._operations: Operations | None = None
        self._peers: PeerExchange | None = None
        self._guard: GuardedIntentStore | None = None  # intent versions never go back unnoticed

    # -- Member: what the API reads ----------------------------------------------------

    @property
    def inventory(self) -> Inventory:
        return self._inventory

    def role(self) -> MemberRole:
        if self._elector is None or self._serving.table is None:
            return "starting"
        return "leader" if self._elector.is_leader() else "standby"

    def ready(self) -> bool:
        return not self.unready()

    def unready(self) -> list[str]:
        causes = self._serving.unready()
        stalled = None if self._scheduler is None else self._scheduler.stalled()
        if stalled is not None:
            causes.append(f"own probing stopped: {stalled}")
        return causes

    def table(self) -> WeightTable | None:
        return self._serving.table

    def intent(self) -> IntentState:
        return self._intent

    def lookup(self, name: str, subnet: str) -> Lookup | None:
        table = self._serving.table
        return None if table is None else lookup(self._inventory, table, name, subnet)

    def explain(self, service: str, region: str | None) -> dict[str, Any]:
        controller = self._controller
        tracker = self._monitor.tracker
        return explain_doc(
            service,
            region,
            targets={t.id: t for t in tracker.targets()},
            view=self._monitor.view(),
            tracker=tracker,
            table=self._serving.table,
            decisions=None
            if controller is None or self.role() != "leader"
            else controller.latest_decisions(),
        )

    def health(self) -> dict[str, Any]:
        return health_doc(self._monitor.view())

    def status(self) -> MemberStatus:
        elector, controller, leader = self._elector, self._controller, self._leader
        return member_status(
            identity=self.identity,
            region=self.region,
            role=self.role(),
            ready=self.ready(),
            unready=self.unready(),
            started=self._started,
            inventory=self._inventory,
            holder=None if elector is None else elector.leader(),
            epoch=None if elector is None else elector.epoch,
            dns=self._serving.status(self._inventory),
            config_ref=self._config.ref(),
            health=self._monitor.view(),
            intent=self._intent,
            store_mark=None if self._guard is None else self._guard.mark_report(),
            evaluation=EvaluationStatus() if controller is None else controller.status(),
            mesh=[] if leader is None else leader.progress(),
            peers={} if self._peers is None else self._peers.status(),
            prober=None if self._scheduler is None else self._scheduler.stats(),
        )

    async def history(
        self, limit: int, since: float | None, before: str | None = None
    ) -> AuditPage:
        if self._stores is None:
            return AuditPage()
        return await self._stores.audit.history(limit=limit, since=since, before=before)

    def observations(self, since: int, limit: int) -> tuple[list[list[Any]], int]:
        return self._observations.since(since, limit)

    def what_if(self, overrides: Sequence[Override]) -> Evaluation:
        now = time.time()
        active = [*self._intent.active(now), *overrides]
        return evaluate(
            self._inventory.estate, self._engine_health(), active, self._serving.table, now
        )

    async def act(self, action: Action, *, who: str, dry_run: bool) -> ActionResult:
        if self._operations is None:
            raise NotLeader(None, "this member is still starting")
        return await self._operations.act(action, who=who, dry_run=dry_run)

    # -- running ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, reload: asyncio.Event | None = None) -> None:
        reload = reload or asyncio.Event()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        config = self._inventory.config
        inventory = self._current_inventory
        async with AsyncExitStack() as stack:
            stack.enter_context(self._heap)
            stores = await open_stores(
                self._inventory, self.region, self.state_dir, stack, self.registry
            )
            mark = HighWater(self.state_dir, self.identity)
            guard = self._guard = GuardedIntentStore(
                stores.intent, mark, published=stores.dns_table, registry=self.registry
            )
            stores = self._stores = dataclasses.replace(stores, intent=guard)
            self._serving.check(guard.not_ready)
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
            scheduler = self._scheduler = Scheduler(
                prober,
                vantage=self.region,
                on_observation=self._observed,
                concurrency=config.health.concurrency,
                lag_tolerance=config.health.lag_tolerance,
                stall_intervals=config.health.stale_intervals,
                metrics=self._probe_metrics,
            )
            targets = probe_targets(self._inventory)
            self._monitor.update(targets)
            scheduler.update(targets)
            standby = Standby(
                stores=stores, serving=self._serving, inventory=inventory, on_intent=self._read
            )
            await standby.start()
            first = self._serving.table
            assert first is not None
            # DNS is answered by processes of its own: nothing on this loop can delay a query.
            dns = self._dns = await stack.enter_async_context(
                DnsWorkers(
                    config.dns.workers,
                    self._inventory,
                    first,
                    split_listen(config.dns.listen),
                    receive_buffer=config.dns.udp_receive_buffer,
                )
            )
            self._serving.attach(dns)
            self.registry.register(DnsCollector(dns.snapshots))
            self.registry.register(WorkersCollector(dns))
            exporter = None
            if config.dns.powerdns is not None:
                exporter = await stack.enter_async_context(
                    PowerDnsExporter.from_config(config.dns.powerdns, registry=self.registry)
                )
            controller = self._controller = Controller(
                inventory=inventory,
                health=self._engine_health,
                stores=stores,
                elector=elector,
                serve=self._serving.serve,
                exporter=exporter,
                metrics=TableMetrics(self.registry, member=self.identity, region=self.region),
            )
            merge = IntentMerge(
                region=self.region,
                inventory=inventory,
                store=stores.intent,
                epoch=lambda: elector.epoch,
                intent=lambda: self._intent,
                on_stored=self._read,
                wake=controller.wake,
                regressed=lambda: guard.regression() is not None,
            )
            peers = self._peers = PeerExchange(
                own_region=self.region,
                peers=config.api.peers,
                token=_read_token(config.api.peer_token_file),
                on_observation=self._monitor.observe,
                on_intent=merge.received,
            )
            peers.expect(silent_after(targets, config.health.stale_intervals))
            self.registry.register(PeersCollector(peers))
            leader = self._leader = Leader(
                identity=self.identity,
                region=self.region,
                elector=elector,
                controller=controller,
                inventory=inventory,
                registry=self.registry,
                catch_up=peers.catch_up,
                regression=guard.regression,
                restore=merge.restore,
                onboarding=self.onboarding,
            )
            self._operations = Operations(
                inventory=inventory,
                health=self._engine_health,
                served=lambda: self._serving.table,
                store=stores.intent,
                audit=stores.audit,
                leader_view=LeaderView(epoch=lambda: elector.epoch, holder=elector.leader),
                mesh_plans=leader.mesh_plans,
                hold=controller.hold,
                on_change=self._intent_changed,
            )
            onboarding = await self._open_onboarding(stack)
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
                generation=first.generation,
            )
            self._heap.settle()
            async with asyncio.TaskGroup() as tasks:
                background = [
                    tasks.create_task(scheduler.keep_running(), name="scheduler"),
                    tasks.create_task(scheduler.watch(), name="probe-watch"),
                    tasks.create_task(self._monitor.run(), name="monitor"),
                    tasks.create_task(elector.run(), name="elector"),
                    tasks.create_task(peers.run(), name="peers"),
                    tasks.create_task(standby.run(elector, controller), name="standby"),
                    tasks.create_task(leader.run(), name="leader"),
                    tasks.create_task(self._reloads(reload), name="reload"),
                    tasks.create_task(self._loop_lag.run(), name="loop-lag"),
                    tasks.create_task(self._heap.run(), name="heap"),
                ]
                if onboarding is not None:
                    every = config.accesspoints.resync
                    background.append(tasks.create_task(onboarding.run(every), name="onboarding"))
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

    async def _open_onboarding(self, stack: AsyncExitStack) -> Onboarding | None:
        opened = await open_home(self._inventory, stack)
        if opened is None:
            return None
        home, objects = opened
        return Onboarding(
            self._current_inventory, home, objects, lambda: self._onboarded, self.onboard
        )

    async def reload(self) -> bool:
        """Re-read the config (SIGHUP). A bad file is refused whole; the old one keeps running.

        The file is parsed and validated in a child process (`gtm.service.reload`):
        seconds of CPU for a large estate, which must not stall this loop (the API,
        the probes, the peers and the leader's writes run on it)."""
        async with self._reloading:
            return await self._reload()

    async def _reload(self) -> bool:
        try:
            loaded = await load_aside(self.config_path, onboarded=self._onboarded)
        except ConfigError as e:
            problems = [str(p) for p in e.problems]
            log.error("config.refused", file=self.config_path, problems=problems)
            self._config.refused(problems)
            return False
        fresh = loaded.inventory
        old = self._inventory.config
        new = fresh.config
        fixed = {
            "dns.listen": (old.dns.listen, new.dns.listen),
            "api.listen": (old.api.listen, new.api.listen),
            "ha": (old.ha, new.ha),
            "instance.state_dir": (old.instance.state_dir, new.instance.state_dir),
            "accesspoints.cluster": (old.accesspoints.cluster, new.accesspoints.cluster),
        }
        restart = [k for k, (a, b) in fixed.items() if a != b]
        if restart:
            log.warning("config.restart_needed", settings=restart)
        targets = await asyncio.to_thread(probe_targets, fresh)  # reads `fresh` only
        self._inventory = fresh
        self._onboarding_refused = dict(loaded.refused)
        for key, why in loaded.refused.items():
            log.warning("onboarding.refused", accesspoint=key, why=why)
        self._config.applied(self.config_path, new, loaded.digest)
        self._monitor.update(targets)
        if self._scheduler is not None:
            self._scheduler.update(targets)
        if self._peers is not None:
            self._peers.update(new.api.peers)
            self._peers.expect(silent_after(targets, new.health.stale_intervals))
        if self._dns is not None:
            # the new names and addresses: fresh answer processes, the same table
            try:
                await self._dns.reconfigure(fresh, loaded.pickled)
            except (WorkerFailed, TimeoutError, OSError) as e:
                log.error("config.dns_not_applied", file=self.config_path, error=str(e))
        # The reconcilers hold the estate and the clusters: the leader starts them afresh.
        if self._leader is not None:
            self._leader.restart()
        if self._controller is not None:
            self._controller.wake()
        self._heap.settle()
        log.info(
            "config.reloaded",
            file=self.config_path,
            services=len(new.services),
            targets=len(targets),
        )
        return True

    async def onboard(self, services: Services) -> bool:
        """The services the AccessPoints onboard changed: the config is reloaded with them
        (the file as it is now, checked alone first). False: refused, nothing changed."""
        async with self._reloading:
            before = self._onboarded
            self._onboarded = dict(services)
            if not await self._reload():
                self._onboarded = before
                return False
            await asyncio.to_thread(self._onboarded_file.write, self._onboarded)
            return True

    def onboarding(self, key: str) -> tuple[bool, str] | None:
        """Whether the AP `key` (namespace/name) is answered as a service, and why not."""
        if key in self._onboarding_refused:
            return False, self._onboarding_refused[key]
        service = self._onboarded.get(key)
        if service is not None and service.get("name") in self._inventory.services:
            return True, f"answered in DNS as {service.get('fqdn')}"
        return None

    async def _reloads(self, reload: asyncio.Event) -> None:
        while True:
            await reload.wait()
            reload.clear()
            await self.reload()

    # -- what the parts call back ---------------------------------------------------------

    def _current_inventory(self) -> Inventory:
        return self._inventory

    def _engine_health(self) -> Health:
        return engine_health(self._monitor.view())

    def _health_changed(self) -> None:
        if self._controller is not None:
            self._controller.health_changed()

    def _observed(self, obs: Observation) -> None:
        self._monitor.observe(obs)
        self._observations.append(obs)

    def _read(self, stored: IntentState) -> None:
        """The intent as the store holds it now (read by the standby's loop, or merged)."""
        self._intent = stored

    def _intent_changed(self, stored: IntentState) -> None:
        """An operator's write is stored: serve it at once, and evaluate it."""
        self._intent = stored
        if self._controller is not None:
            self._controller.wake()


def _read_token(path: str | None) -> str | None:
    if path is None:
        return None
    with contextlib.suppress(OSError):
        return Path(path).read_text().strip() or None
    log.warning("peer.token_unreadable", file=path)
    return None
