"""Publish the weight table to a PowerDNS Authoritative server as LUA records.

Plan, then apply (STYLE.md):

    async with PowerDnsExporter.from_config(inventory.config.dns.powerdns) as exporter:
        plan = await exporter.plan(inventory, table)   # reads the zones; a printable value
        print(plan)
        published = await exporter.apply(plan)          # refuses an unsafe plan unless forced

or both at once, as the leader does after each new table generation:

    published = await exporter.publish(inventory, table)

A missing zone is created (Native, SOA and NS from the config) with all its
records in one POST; an existing zone gets one PATCH holding only the
rrsets that differ, the generation marker among them, or no request at all
when nothing differs. Publishes are serialised per exporter.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import aiohttp
import structlog
from prometheus_client import CollectorRegistry

from gtm.config import Inventory
from gtm.config.model import PowerDnsConfig
from gtm.exporters.client import PowerDnsClient, RetryPolicy
from gtm.exporters.errors import ExportError, PowerDnsError
from gtm.exporters.metrics import ExportMetrics
from gtm.exporters.plan import Action, Plan, ZonePlan, make_plan
from gtm.exporters.records import desired
from policies import UnsafePlan, WeightTable

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Published:
    """The outcome of an applied plan."""

    generation: int  # the table generation PowerDNS now serves
    changed: bool  # whether anything was written
    rrsets_changed: int  # gtm rrsets created, replaced or deleted (the marker not counted)
    zones_created: tuple[str, ...]
    forced: bool  # an unsafe plan was applied because it was forced
    plan: Plan


class PowerDnsExporter:
    """Writes weight tables to one PowerDNS server through its HTTP API."""

    def __init__(self, client: PowerDnsClient) -> None:
        self.client = client
        self.metrics = client.metrics
        self._lock = asyncio.Lock()

    @classmethod
    def from_config(
        cls,
        config: PowerDnsConfig,
        *,
        retry: RetryPolicy = RetryPolicy(),
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
        registry: CollectorRegistry | None = None,
    ) -> PowerDnsExporter:
        """An exporter for `dns.powerdns`; reads `api_key_file` when given; counts into
        `registry` (the member's, which `/metrics` serves)."""
        key = config.api_key
        if config.api_key_file:
            try:
                key = Path(config.api_key_file).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise ExportError(
                    f"cannot read dns.powerdns.api_key_file {config.api_key_file}: "
                    f"{e.strerror or e}"
                ) from e
        client = PowerDnsClient(
            config.url,
            api_key=key,
            server_id=config.server_id,
            retry=retry,
            timeout=timeout,
            session=session,
            metrics=ExportMetrics(registry),
        )
        return cls(client)

    @property
    def server(self) -> str:
        return f"PowerDNS {self.client.url} (server {self.client.server_id})"

    async def __aenter__(self) -> PowerDnsExporter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def plan(self, inventory: Inventory, table: WeightTable) -> Plan:
        """What PowerDNS must change to serve `table`: reads the zones, writes nothing."""
        wanted = desired(inventory, table)
        current = {z.zone: await self.client.zone(z.zone) for z in wanted}
        limit = inventory.config.safety.max_row_change_share
        return make_plan(self.server, table.generation, wanted, current, limit)

    async def apply(self, plan: Plan, *, force: bool = False) -> Published:
        """Write `plan`; an unsafe plan raises UnsafePlan unless `force`."""
        async with self._lock:
            started = time.monotonic()
            return await self._apply(plan, force, started)

    async def publish(
        self, inventory: Inventory, table: WeightTable, *, force: bool = False
    ) -> Published:
        """Plan and apply in one step; returns what PowerDNS serves now."""
        async with self._lock:
            started = time.monotonic()
            try:
                plan = await self.plan(inventory, table)
            except ExportError as e:
                self._failed(e, table.generation, "plan", started)
                raise
            return await self._apply(plan, force, started)

    async def _apply(self, plan: Plan, force: bool, started: float) -> Published:
        forced = plan.safety.unsafe and force
        try:
            plan.raise_if_unsafe(force=force)
        except UnsafePlan as e:
            self.metrics.publishes.labels(result="refused").inc()
            log.warning(
                "powerdns.publish.refused",
                server=self.client.url,
                generation=plan.generation,
                changed=e.changed,
                existing=e.total,
                share=round(plan.safety.share, 4),
                limit=e.limit,
            )
            raise
        if not plan.changed:
            self.metrics.publishes.labels(result="unchanged").inc()
            self.metrics.generation.set(plan.generation)
            self.metrics.publish_seconds.observe(time.monotonic() - started)
            return Published(plan.generation, False, 0, (), False, plan)
        created: list[str] = []
        try:
            for zone in plan.zones:
                if await self._apply_zone(zone):
                    created.append(zone.zone)
        except ExportError as e:
            self._failed(e, plan.generation, "apply", started)
            raise
        counts = {a: sum(z.count(a) for z in plan.zones) for a in Action}
        for action, n in counts.items():
            self.metrics.rrsets_changed.labels(action=action.value).inc(n)
        self.metrics.publishes.labels(result="applied").inc()
        self.metrics.generation.set(plan.generation)
        seconds = time.monotonic() - started
        self.metrics.publish_seconds.observe(seconds)
        log.info(
            "powerdns.published",
            server=self.client.url,
            generation=plan.generation,
            previous=plan.published,
            created=counts[Action.CREATE],
            replaced=counts[Action.REPLACE],
            deleted=counts[Action.DELETE],
            zones_created=created,
            forced=forced,
            seconds=round(seconds, 3),
        )
        return Published(plan.generation, True, plan.rrsets_changed, tuple(created), forced, plan)

    async def _apply_zone(self, zone: ZonePlan) -> bool:
        """Write one zone's changes; True when the zone was created."""
        if zone.create is not None:
            want = zone.create
            rrsets = [want.soa, want.ns, *want.rrsets, want.generation]
            try:
                await self.client.create_zone(zone.zone, rrsets)
            except PowerDnsError as e:
                if e.status != 409:
                    raise
                # Created meanwhile (or by an attempt whose reply was lost): fill it in.
                log.info("powerdns.zone.exists", server=self.client.url, zone=zone.zone)
                await self.client.patch_zone(
                    zone.zone, [r.to_api("REPLACE") for r in (*want.rrsets, want.generation)]
                )
                return False
            log.info(
                "powerdns.zone.created",
                server=self.client.url,
                zone=zone.zone,
                nameservers=list(want.nameservers),
                rrsets=len(rrsets),
            )
            return True
        if not zone.changed:
            return False
        # Deletions first: a plain CNAME at a service's name must go before its LUA rrset comes.
        ordered = sorted(zone.changes, key=lambda c: c.action is not Action.DELETE)
        body = [c.to_api() for c in ordered]
        if zone.marker is not None:
            body.append(zone.marker.to_api())
        await self.client.patch_zone(zone.zone, body)
        return False

    def _failed(self, error: ExportError, generation: int, stage: str, started: float) -> None:
        self.metrics.publishes.labels(result="failed").inc()
        self.metrics.publish_seconds.observe(time.monotonic() - started)
        log.error(
            "powerdns.publish.failed",
            server=self.client.url,
            generation=generation,
            stage=stage,
            status=error.status if isinstance(error, PowerDnsError) else None,
            error=str(error),
        )
