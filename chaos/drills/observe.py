"""The sampler: observes the estate from outside, the way a client does, on a fixed period.

    async with Sampler(members, facts, subnets, token=viewer, wles=estate.wles) as sampler:
        sample = await sampler.sample(t0)      # one look at everything
        await sampler.run(0.5, t0, samples, stop)

Per member it asks the API (`/v1/status`, `/v1/table`, `/v1/overrides`, with
a viewer token) and its DNS on the wire: `queries` A queries per service and
client region, each with an EDNS Client Subnet option of that region's
clients, so the member answers from that region's row (dnspython). Per
cluster it reads the WorkloadEntries through `wles` (the simulated
cluster's object dump, which API faults do not touch), all at once; with
AccessPoints in the drill (`accesspoints`, `chaos.drills.aps.ApObserver`) it
first reads each cluster's objects of the AP kinds and the home cluster's APs,
and adds the VIPs an AP's Service shows to its facts (what DNS is asked for). A
member that does not answer in time (0.8s) is recorded as unreachable; one
the drill took down (`away`: killed, or paused until it resumes) is
recorded so without being asked, so a hung member never holds a sample up.

While it is open, what its process held before it (in CI, a whole test
run's objects) is frozen out of the cycle collector: a full collection over
it would pause the sampler past its 0.4s DNS timeout, and every query of
that sample would read as unanswered. Its own event loop is watched too (a
heartbeat): a query that timed out while this process did not run (a
collection, a starved CPU) says nothing of the member, and is asked once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp
import dns.asyncquery
import dns.edns
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import structlog

from chaos.drills.facts import IpNetwork, MemberEndpoint
from chaos.drills.samples import (
    ApState,
    EstateFacts,
    FinalMember,
    HistoryEntry,
    KubeObject,
    MemberState,
    MeshState,
    OverrideRef,
    Sample,
    SplitCount,
    TableState,
    Wle,
    table_state,
)

if TYPE_CHECKING:
    from chaos.drills.aps import ApObserver

WleReader = Callable[[str], Awaitable[list[dict[str, Any]]]]
IN_FLIGHT = 64  # DNS queries at once
SPLIT_TRIES = 3
log = structlog.get_logger("chaos.drills.observe")


class Heartbeat:
    """This process's own event loop, watched: how long it did not run, and when.

    A query that timed out during such a stall was not given its time: the
    reply may well have sat in the socket, unread.
    """

    PERIOD = 0.02
    STALL = 0.1  # a beat this much late is a stall

    def __init__(self) -> None:
        self._gaps: deque[tuple[float, float]] = deque(maxlen=512)
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._last = asyncio.get_running_loop().time()
        self._task = asyncio.create_task(self._beat(), name="sampler-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.PERIOD)
            now = loop.time()
            if now - self._last > self.PERIOD + self.STALL:
                self._gaps.append((self._last + self.PERIOD, now))
            self._last = now

    def stalled(self, start: float, end: float) -> float:
        """The longest stall of this loop within [start, end], one still under way included."""
        gaps = list(self._gaps)
        if self._task is not None and end - self._last > self.PERIOD + self.STALL:
            gaps.append((self._last + self.PERIOD, end))
        return max((min(b, end) - max(a, start) for a, b in gaps), default=0.0)


class Sampler:
    def __init__(
        self,
        members: Sequence[MemberEndpoint],
        facts: EstateFacts,
        subnets: Mapping[str, IpNetwork],
        *,
        token: str,
        wles: WleReader | None = None,
        queries: int = 1,
        timeout: float = 0.8,
        dns_timeout: float = 0.4,
        ca_file: str | None = None,
        accesspoints: ApObserver | None = None,
    ) -> None:
        self.members = list(members)
        self.accesspoints = accesspoints
        self.facts = facts
        self.subnets = dict(subnets)
        self.queries = queries
        self._token = token
        self._wles = wles
        self._timeout = timeout
        self._dns_timeout = dns_timeout
        self._ssl: Any = True
        if ca_file is not None:
            import ssl

            self._ssl = ssl.create_default_context(cafile=ca_file)
        self._session: aiohttp.ClientSession | None = None
        self._gate = asyncio.Semaphore(IN_FLIGHT)
        self.away: set[str] = set()  # members the drill took down: recorded, not asked
        self.heartbeat = Heartbeat()
        self.reasked = 0  # queries asked again: they timed out while this process stalled

    async def __aenter__(self) -> Sampler:
        gc.collect()
        gc.freeze()
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self._token}"},
            timeout=aiohttp.ClientTimeout(total=self._timeout),
        )
        self.heartbeat.start()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.heartbeat.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None
        gc.unfreeze()

    # -- the periodic look --------------------------------------------------------------

    async def run(self, period: float, t0: float, out: list[Sample], stop: asyncio.Event) -> None:
        """Sample every `period` seconds (on a fixed grid from `t0`) until `stop` is set."""
        loop = asyncio.get_running_loop()
        tick = 0
        while not stop.is_set():
            out.append(await self.sample(t0))
            tick += 1
            next_at = t0 + tick * period
            now = loop.time()
            if next_at < now:  # a slow sample: skip the ticks it overran
                tick = int((now - t0) / period) + 1
                next_at = t0 + tick * period
            try:
                async with asyncio.timeout(next_at - now):
                    await stop.wait()
            except TimeoutError:
                pass

    async def sample(self, t0: float) -> Sample:
        loop = asyncio.get_running_loop()
        started = loop.time()
        regions = self._wle_regions()
        objects: dict[str, tuple[KubeObject, ...]] = {}
        aps: dict[str, ApState] = {}
        if self.accesspoints is not None:  # first: a VIP seen now is asked for and mapped now
            objects, aps = await self.accesspoints.look(self._get)
            self.facts = self.accesspoints.facts(self.facts, objects)
        members, answers, clusters = await asyncio.gather(
            asyncio.gather(*(self.member(m) for m in self.members)),
            asyncio.gather(*(self.answers(m) for m in self.members)),
            asyncio.gather(*(self.wles(r) for r in regions)),
        )
        end = loop.time()
        return Sample(
            t=round(end - t0, 4),
            wall=time.time(),
            took=round(end - started, 4),
            members={m.name: state for m, state in zip(self.members, members, strict=True)},
            dns={m.name: a for m, a in zip(self.members, answers, strict=True)},
            wles={
                r: w for r, w in zip(self._wle_regions(), clusters, strict=True) if w is not None
            },
            objects=objects,
            accesspoints=aps,
        )

    def _wle_regions(self) -> tuple[str, ...]:
        return self.facts.regions if self._wles is not None else ()

    # -- the API ---------------------------------------------------------------------------

    async def _get(self, url: str, **params: str) -> Any:
        if self._session is None:
            raise RuntimeError("Sampler used outside `async with`")
        async with self._session.get(url, params=params or None, ssl=self._ssl) as r:
            if r.status >= 400:
                raise aiohttp.ClientResponseError(
                    r.request_info, r.history, status=r.status, message=(await r.text())[:200]
                )
            return await r.json(content_type=None)

    async def member(self, m: MemberEndpoint) -> MemberState:
        if m.name in self.away:
            return MemberState(m.name, m.region, False, "taken down by the drill")
        try:
            status, table, intent = await asyncio.gather(
                self._get(m.api + "/v1/status"),
                self._get(m.api + "/v1/table"),
                self._get(m.api + "/v1/overrides"),
            )
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            return MemberState(m.name, m.region, False, f"{type(e).__name__}: {e}"[:200])
        return member_state(m, status, table_state(table), intent)

    async def table(self, m: MemberEndpoint) -> TableState | None:
        try:
            return table_state(await self._get(m.api + "/v1/table"))
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def final(self, history_from: Iterable[str]) -> dict[str, FinalMember]:
        """Every member's intent at the end, and the history of the members named."""
        asked = set(history_from)

        async def one(m: MemberEndpoint) -> FinalMember:
            try:
                intent = await self._get(m.api + "/v1/overrides")
                history = None
                if m.name in asked:
                    doc = await self._get(m.api + "/v1/history", limit="10000")
                    history = tuple(_history(e) for e in doc.get("entries", []))
            except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                return FinalMember(m.name, m.region, False, error=f"{type(e).__name__}: {e}")
            return FinalMember(
                m.name,
                m.region,
                True,
                active=tuple(_override(o) for o in intent.get("overrides", [])),
                ended=tuple(str(t.get("id")) for t in intent.get("tombstones", [])),
                history=history,
            )

        results = await asyncio.gather(*(one(m) for m in self.members))
        return {f.name: f for f in results}

    # -- DNS on the wire ---------------------------------------------------------------------

    async def answers(self, m: MemberEndpoint) -> dict[str, dict[str, tuple[str, ...]]]:
        if m.name in self.away:
            return {}
        jobs = [
            (service, region)
            for service in self.facts.services
            for region in self.subnets
            for _ in range(self.queries)
        ]
        got = await asyncio.gather(*(self.ask(m, s, r) for s, r in jobs))
        out: dict[str, dict[str, list[str]]] = {}
        for (service, region), answer in zip(jobs, got, strict=True):
            out.setdefault(service, {}).setdefault(region, []).append(answer)
        return {s: {r: tuple(a) for r, a in by.items()} for s, by in out.items()}

    async def ask(self, m: MemberEndpoint, service: str, region: str) -> str:
        """One A query for `service` as a client of `region`: the VIP id answered, or why not."""
        facts = self.facts.services[service]
        net = self.subnets[region]
        ecs = dns.edns.ECSOption(str(net.network_address), net.prefixlen)
        query = dns.message.make_query(facts.fqdn, dns.rdatatype.A, use_edns=0, options=[ecs])
        loop = asyncio.get_running_loop()
        async with self._gate:
            for again in (False, True):
                asked = loop.time()
                try:
                    reply = await dns.asyncquery.udp(
                        query, m.dns[0], port=m.dns[1], timeout=self._dns_timeout
                    )
                    break
                except dns.exception.Timeout:
                    stalled = self.heartbeat.stalled(asked, loop.time())
                    if again or stalled < Heartbeat.STALL:
                        return "error:timeout"
                    self.reasked += 1
                    log.warning("sampler.stalled", member=m.name, stalled=round(stalled, 3))
                except (OSError, dns.exception.DNSException) as e:
                    return f"error:{type(e).__name__}"
        if reply.rcode() != dns.rcode.NOERROR:
            return f"rcode:{dns.rcode.to_text(reply.rcode())}"
        for rrset in reply.answer:
            for rdata in rrset:
                if rrset.rdtype == dns.rdatatype.A:
                    address = str(ipaddress.ip_address(rdata.address))  # type: ignore[attr-defined]
                    return facts.addresses.get(address, f"addr:{address}")
                if rrset.rdtype == dns.rdatatype.CNAME:
                    name = str(rdata.target).rstrip(".").lower()  # type: ignore[attr-defined]
                    return facts.addresses.get(name, f"addr:{name}")
        return "empty"

    async def split(
        self, step: str, m: MemberEndpoint, services: Sequence[str], n: int
    ) -> list[SplitCount]:
        """`n` queries per service and client region to `m`, counted by the region answered.

        A burst that straddles a new table generation is asked again (twice at most).
        """
        jobs = [(s, r) for s in services for r in self.subnets]
        for _ in range(SPLIT_TRIES):
            before = await self.table(m)
            got = await asyncio.gather(*(self._burst(m, s, r, n) for s, r in jobs))
            after = await self.table(m)
            if before is not None and after is not None and before.generation == after.generation:
                break
        out = []
        for (service, region), (counts, unanswered) in zip(jobs, got, strict=True):
            row = None if before is None else before.rows.get(service, {}).get(region)
            out.append(
                SplitCount(
                    step=step,
                    member=m.name,
                    service=service,
                    source=region,
                    n=n,
                    counts=counts,
                    expected={} if row is None else row.weights(),
                    total=0 if row is None else row.total,
                    generation_before=None if before is None else before.generation,
                    generation_after=None if after is None else after.generation,
                    unanswered=unanswered,
                )
            )
        return out

    async def _burst(
        self, m: MemberEndpoint, service: str, region: str, n: int
    ) -> tuple[dict[str, int], dict[str, int]]:
        """(answered region -> count, why unanswered -> count) of n queries at once."""
        answers = await asyncio.gather(*(self.ask(m, service, region) for _ in range(n)))
        regions = self.facts.services[service].vips
        counts: dict[str, int] = {}
        unanswered: dict[str, int] = {}
        for a in answers:
            if a.startswith("error:"):  # no reply: a timeout, or a socket error
                why = a.removeprefix("error:")
                unanswered[why] = unanswered.get(why, 0) + 1
                continue
            where = regions.get(a, "?")
            counts[where] = counts.get(where, 0) + 1
        return counts, unanswered

    # -- WorkloadEntries ---------------------------------------------------------------------

    async def wles(self, region: str) -> tuple[Wle, ...] | None:
        if self._wles is None:
            return None
        try:
            objects = await self._wles(region)
        except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError):
            return None
        return tuple(wle(o, self.facts) for o in objects)


def member_state(
    m: MemberEndpoint, status: Mapping[str, Any], table: TableState, intent: Mapping[str, Any]
) -> MemberState:
    layers = status.get("layers") or {}
    health = status.get("health") or {}
    leader = status.get("leader") or {}
    vips = health.get("vips") or {}
    return MemberState(
        name=m.name,
        region=m.region,
        reachable=True,
        role=status.get("role"),
        leader=leader.get("identity"),
        epoch=status.get("epoch"),
        generation=status.get("generation"),
        intent_version=(status.get("intent") or {}).get("version"),
        active=tuple(_override(o) for o in (status.get("intent") or {}).get("active", [])),
        ended=tuple(str(t.get("id")) for t in intent.get("tombstones", [])),
        dns_admitted=tuple(layers.get("dns_admitted", [])),
        mesh_admitted=tuple(layers.get("mesh_admitted", [])),
        mesh_generation=layers.get("mesh_generation"),
        mesh={
            c: MeshState(
                int(p.get("in_sync", 0)),
                int(p.get("desired", 0)),
                p.get("generation"),
                p.get("converged"),
                p.get("refused"),
            )
            for c, p in (status.get("mesh") or {}).items()
        },
        down=tuple(health.get("down", [])),
        vips_down=int(vips.get("down", 0)),
        vips_up=int(vips.get("up", 0)),
        impaired=tuple(health.get("impaired", [])),
        table=table,
    )


def _override(o: Mapping[str, Any] | str) -> OverrideRef:
    if isinstance(o, str):
        return OverrideRef(o, "?", "?")
    services = o.get("services")
    return OverrideRef(
        id=str(o.get("id")),
        kind=str(o.get("kind")),
        region=str(o.get("region")),
        why=str(o.get("why") or ""),
        created=float(o.get("created") or 0.0),
        expires=o.get("expires"),
        services=None if services is None else tuple(services),
    )


def _history(e: Mapping[str, Any]) -> HistoryEntry:
    override = e.get("override") or {}
    return HistoryEntry(
        id=str(e.get("id")),
        action=str(e.get("action")),
        override_id=str(e.get("override_id")),
        why=str(override.get("why") or e.get("why") or ""),
        at=float(e.get("at") or 0.0),
        rule=e.get("rule"),
    )


def wle(o: Mapping[str, Any], facts: EstateFacts) -> Wle:
    meta = o.get("metadata", {})
    spec = o.get("spec", {})
    service = str((meta.get("labels") or {}).get("gtm.io/service", ""))
    address = str(spec.get("address", ""))
    known = facts.services.get(service)
    vip = "" if known is None else known.addresses.get(address, "")
    target = "" if known is None or not vip else known.vips[vip]
    healthy: bool | None = None
    message = None
    for c in (o.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Healthy":
            healthy = c.get("status") == "True"
            message = c.get("message")
    return Wle(
        name=str(meta.get("name", "")),
        vip=vip,
        service=service,
        target=target,
        weight=int(spec.get("weight", 0)),
        healthy=healthy,
        message=message,
    )
