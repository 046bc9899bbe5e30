"""The simulated L4 (IPVS) controller: a VIP for every LoadBalancer Service of its class.

    controller = L4Controller(client, region="dc1", pool=l4_pool(0))
    await controller.start()                   # lists, then watches, every Service
    controller.vips()                          # {("apps", "foo-gw"): "127.1.1.1"}
    await controller.withdraw("apps", "foo-gw")   # drills: the VIP is gone (ingress cleared,
                                               # its listeners closed)
    await controller.restore("apps", "foo-gw")    # back, with the same address
    await controller.stop()

What a dedicated L4 controller does in Kubernetes terms (ACCESSPOINT.md):
it serves only Services of `type: LoadBalancer` whose `spec.loadBalancerClass`
is its own (`gtm.io/ipvs`) — the default implementations ignore a Service
that sets a class, and this one ignores every other class — and publishes
the VIP it allocates in `status.loadBalancer.ingress[0].ip`, written
through the `status` subresource. A VIP comes from the region's pool (on
127.0.0.0/8: the estate runs on loopback only), a `spec.loadBalancerIP` in
the pool and free is honoured, and a VIP is freed when its Service is
deleted or stops being of this class. On start it adopts the VIPs Services
already show (a restarted controller keeps addresses). It talks to the
cluster like any controller: through `kube.Client` (list, then watch from
the list's resourceVersion, re-list on 410 or a broken stream).

With `answer=True` the VIP also answers, as the gateway behind an announced VIP
would: on each of the Service's ports it accepts connections and replies
`HTTP/1.1 200 OK` to whatever it is sent (a TCP or an HTTP probe passes), until
the VIP is withdrawn or freed. A port it cannot listen on (below 1024 without
root, taken) is logged and left unanswered: to a probe, a VIP that is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Iterable, Mapping
from contextlib import aclosing
from functools import partial
from typing import Any

import structlog

from kube import MERGE_PATCH, Client, Expired, KubeError, NotFound

log = structlog.get_logger(__name__)

LOAD_BALANCER_CLASS = "gtm.io/ipvs"
Key = tuple[str, str]  # namespace, name


def l4_pool(index: int) -> list[str]:
    """The VIP pool of the region at `index`: 127.1.<index+1>.1-254 (apart from the
    estate's typed VIPs on 127.0.x.y)."""
    network = ipaddress.IPv4Network(f"127.1.{index + 1}.0/24")
    return [str(a) for a in network.hosts()]


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


class PoolExhausted(RuntimeError):
    pass


class L4Controller:
    """Allocates VIPs from `pool` to the Services of `load_balancer_class` in one cluster."""

    def __init__(
        self,
        client: Client,
        *,
        region: str,
        pool: Iterable[str],
        load_balancer_class: str = LOAD_BALANCER_CLASS,
        watch_seconds: float = 1800.0,
        retry_delay: float = 0.5,
        retry_max: float = 10.0,
        answer: bool = False,
    ) -> None:
        self.client = client
        self.answer = answer
        self._listeners: dict[Key, list[asyncio.Server]] = {}
        self.region = region
        self.load_balancer_class = load_balancer_class
        self.pool = [str(ipaddress.IPv4Address(a)) for a in pool]
        outside = [a for a in self.pool if not ipaddress.IPv4Address(a).is_loopback]
        if outside:
            raise ValueError(f"the L4 pool must be on loopback (127.0.0.0/8): {outside[:3]}")
        self.watch_seconds = watch_seconds
        self.retry_delay = retry_delay
        self.retry_max = retry_max
        self._assigned: dict[Key, str] = {}
        self._withdrawn: set[Key] = set()
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()
        self._lock = asyncio.Lock()
        self._log = log.bind(region=region, load_balancer_class=load_balancer_class)

    # -- what callers read and drive --------------------------------------------

    def vips(self) -> dict[Key, str]:
        """The VIP allocated to each Service (withdrawn ones included)."""
        return dict(self._assigned)

    def withdrawn(self) -> set[Key]:
        return set(self._withdrawn)

    async def withdraw(self, namespace: str, name: str) -> None:
        """Take the Service's VIP out of service: its ingress is cleared, the address kept."""
        self._withdrawn.add((namespace, name))
        await self._reconcile_named(namespace, name)

    async def restore(self, namespace: str, name: str) -> None:
        """Undo `withdraw`: the Service shows its VIP again."""
        self._withdrawn.discard((namespace, name))
        await self._reconcile_named(namespace, name)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, within: float = 10.0) -> None:
        """Start watching; returns once the first list is reconciled."""
        if self._task is not None:
            raise RuntimeError("the L4 controller is already running")
        self._task = asyncio.create_task(self._run(), name=f"l4-{self.region}")
        async with asyncio.timeout(within):
            await self._synced.wait()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for key in list(self._listeners):
            self._silence(key)

    # -- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        """List, then watch until the watch ends; re-list on 410. Failures back off
        exponentially (`retry_delay` doubling up to `retry_max`), so an API brownout in a
        drill does not turn the controller into a load of its own."""
        delay = self.retry_delay
        while True:
            try:
                version = await self._list()
                self._synced.set()
                delay = self.retry_delay
                while True:
                    version = await self._watch(version)
            except asyncio.CancelledError:
                raise
            except Expired:
                self._log.info("l4.relist", why="expired")
                continue
            except KubeError as error:
                self._log.warning("l4.retry", error=str(error), wait=delay)
            except Exception:  # a bug must not end the controller silently
                self._log.exception("l4.failed", wait=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    async def _list(self) -> str:
        listed = await self.client.request(
            "list", self.client.core.list_service_for_all_namespaces, what="services"
        )
        items = listed.get("items") or []
        present = {_key(s) for s in items}
        for key in [k for k in self._assigned if k not in present]:
            self._free(key)
        for service in items:  # adopt what Services already show first, then allocate
            self._adopt(service)
        for service in items:
            await self._reconcile(service)
        return str((listed.get("metadata") or {}).get("resourceVersion", ""))

    async def _watch(self, version: str) -> str:
        call = self.client.core.list_service_for_all_namespaces
        events = self.client.watch(call, resource_version=version, seconds=self.watch_seconds)
        async with aclosing(events) as stream:
            async for event in stream:
                version = event.resource_version or version
                if event.type == "DELETED":
                    self._free(_key(event.object))
                elif event.type in ("ADDED", "MODIFIED"):
                    await self._reconcile(event.object)
        return version

    # -- allocation -----------------------------------------------------------------

    def _ours(self, service: Mapping[str, Any]) -> bool:
        spec = service.get("spec") or {}
        return (
            spec.get("type") == "LoadBalancer"
            and spec.get("loadBalancerClass") == self.load_balancer_class
        )

    def _adopt(self, service: Mapping[str, Any]) -> None:
        key = _key(service)
        if not self._ours(service) or key in self._assigned:
            return
        for ingress in _ingress(service):
            ip = ingress.get("ip")
            if ip in self.pool and ip not in self._assigned.values():
                self._assigned[key] = ip
                return

    def _free(self, key: Key) -> None:
        ip = self._assigned.pop(key, None)
        self._withdrawn.discard(key)
        self._silence(key)
        if ip is not None:
            self._log.info("l4.freed", service=f"{key[0]}/{key[1]}", ip=ip)

    def _allocate(self, key: Key, service: Mapping[str, Any]) -> str:
        if key in self._assigned:
            return self._assigned[key]
        taken = set(self._assigned.values())
        wanted = (service.get("spec") or {}).get("loadBalancerIP")
        if wanted in self.pool and wanted not in taken:
            ip = str(wanted)
        else:
            ip = next((a for a in self.pool if a not in taken), "")
            if not ip:
                raise PoolExhausted(f"no free VIP in {self.region}'s pool")
        self._assigned[key] = ip
        self._log.info("l4.assigned", service=f"{key[0]}/{key[1]}", ip=ip)
        return ip

    async def _reconcile_named(self, namespace: str, name: str) -> None:
        try:
            service = await self.client.request(
                "get",
                partial(self.client.core.read_namespaced_service, name, namespace),
                what=f"{namespace}/{name}",
            )
        except NotFound:
            return
        await self._reconcile(service)

    async def _reconcile(self, service: Mapping[str, Any]) -> None:
        key = _key(service)
        async with self._lock:
            if not self._ours(service):
                ip = self._assigned.get(key)
                self._free(key)  # not (or no longer) ours: its status is not ours to write...
                if ip is not None and any(i.get("ip") == ip for i in _ingress(service)):
                    await self._write(key, [])  # ...but for the VIP we published: withdrawn
                return
            try:
                ip = self._allocate(key, service)
            except PoolExhausted as error:
                self._log.warning("l4.pending", service=f"{key[0]}/{key[1]}", error=str(error))
                return
            wanted = [] if key in self._withdrawn else [{"ip": ip, "ipMode": "VIP"}]
            if _ingress(service) != wanted:
                await self._write(key, wanted)
            if self.answer:
                if wanted:
                    await self._listen(key, ip, service)
                else:
                    self._silence(key)

    # -- answering on the VIPs --------------------------------------------------------

    async def _listen(self, key: Key, ip: str, service: Mapping[str, Any]) -> None:
        if key in self._listeners:
            return
        ports = [
            p.get("port")
            for p in (service.get("spec") or {}).get("ports") or []
            if isinstance(p, Mapping) and p.get("protocol", "TCP") == "TCP"
        ]
        servers = []
        for port in ports:
            try:
                servers.append(await asyncio.start_server(_answer, ip, port))
            except OSError as error:
                self._log.warning("l4.not_answering", ip=ip, port=port, error=str(error))
        self._listeners[key] = servers

    def _silence(self, key: Key) -> None:
        for server in self._listeners.pop(key, []):
            server.close()

    async def _write(self, key: Key, ingress: list[dict[str, Any]]) -> None:
        # none: `ingress` removed (null), as a cleared LoadBalancerStatus serializes
        body = {"status": {"loadBalancer": {"ingress": ingress or None}}}
        try:
            await self.client.request(
                "patch",
                partial(
                    self.client.core.patch_namespaced_service_status,
                    key[1],
                    key[0],
                    body,
                    _content_type=MERGE_PATCH,
                ),
                what=f"{key[0]}/{key[1]}/status",
            )
        except NotFound:
            self._free(key)


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Whatever was sent (a TCP probe sends nothing): 200 OK, then close."""
    with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
        async with asyncio.timeout(2.0):
            await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
    writer.close()


def _ingress(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    status = service.get("status") or {}
    return list((status.get("loadBalancer") or {}).get("ingress") or [])
