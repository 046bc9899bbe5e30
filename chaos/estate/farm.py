"""`VipFarm`: an HTTP server for every VIP of an inventory, each with its own fault.

    async with VipFarm(inventory) as farm:
        await farm.set_fault("foo/dc2/127.0.2.1:18080", Fault("error", status=503))
        await farm.set_region_fault("dc3", Fault("refuse"))   # region down
        farm.set_source_fault("vantage-dc3", [4242], Fault("error"))  # as seen by some clients
        await farm.reset()

Each VIP listens on its own address and port (Linux routes all of 127/8 to
the loopback interface, so `127.0.2.1:18080` needs no setup); a host-name VIP
listens on each of its configured `ips`. A region fault sets that fault on
every VIP of the region; a source fault (`chaos.estate.sources`) applies to
every VIP, for the connections of the named process groups only; `reset()`
makes every VIP healthy again and clears the source faults.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import structlog

from chaos.estate.fault import OK, Fault
from chaos.estate.sources import SourceFault, SourceFaults
from chaos.estate.vip_server import VipServer
from gtm.config import Inventory, VipConfig

log = structlog.get_logger(__name__)


class UnknownVip(KeyError):
    pass


class UnknownRegion(KeyError):
    pass


def _hosts(config: VipConfig) -> list[str]:
    try:
        ipaddress.ip_address(config.address)
    except ValueError:
        return [str(ip) for ip in config.ips]
    return [config.address]


class VipFarm:
    """The simulated VIPs of one estate, served in this process."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.sources = SourceFaults()
        self._servers: dict[str, VipServer] = {}
        for service in inventory.estate.services:
            configured = inventory.services[service.name].vips
            for region, vips in service.vips.items():
                for vip, config in zip(vips, configured[region], strict=True):
                    hosts = _hosts(config)
                    if not hosts:
                        log.warning("vip.skipped", vip=vip.id, reason="a host name without ips")
                        continue
                    self._servers[vip.id] = VipServer(vip, hosts, sources=self.sources)
        self._started = False

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("VipFarm already started")
        self._started = True
        try:
            for server in self._servers.values():
                try:
                    await server.start()
                except OSError as error:
                    raise OSError(
                        error.errno,
                        f"VIP {server.vip.id} cannot listen on {', '.join(server.hosts)} "
                        f"port {server.vip.port}: {error.strerror or error}",
                    ) from error
        except BaseException:
            await self.stop()
            raise
        log.info("vips.started", vips=len(self._servers))

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        for server in self._servers.values():
            await server.stop()
        log.info("vips.stopped", vips=len(self._servers))

    async def __aenter__(self) -> VipFarm:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- faults ---------------------------------------------------------------

    def __iter__(self) -> Iterator[VipServer]:
        return iter(self._servers.values())

    @property
    def vip_ids(self) -> tuple[str, ...]:
        return tuple(self._servers)

    def server(self, vip_id: str) -> VipServer:
        try:
            return self._servers[vip_id]
        except KeyError:
            raise UnknownVip(vip_id) from None

    def in_region(self, region: str) -> list[VipServer]:
        if region not in self.inventory.region_names:
            raise UnknownRegion(region)
        return [s for s in self._servers.values() if s.vip.region == region]

    async def set_fault(self, vip_id: str, fault: Fault) -> dict[str, Any]:
        server = self.server(vip_id)
        await server.set_fault(fault)
        return server.state()

    async def set_region_fault(self, region: str, fault: Fault) -> list[dict[str, Any]]:
        servers = self.in_region(region)
        for server in servers:
            await server.set_fault(fault)
        log.info("vips.region_fault", region=region, vips=len(servers), **fault.to_dict())
        return [s.state() for s in servers]

    def set_source_fault(self, name: str, groups: Iterable[int], fault: Fault) -> SourceFault:
        """`fault` on every VIP for the connections of `groups` only (`Fault()` clears it)."""
        return self.sources.set(name, groups, fault)

    def clear_source_fault(self, name: str) -> bool:
        return self.sources.clear(name)

    async def reset(self) -> None:
        for server in self._servers.values():
            if server.fault != OK:
                await server.set_fault(OK)
        for entry in self.sources.states():
            self.sources.clear(entry["name"])

    def states(self) -> list[dict[str, Any]]:
        return [s.state() for s in self._servers.values()]
