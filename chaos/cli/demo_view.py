"""What the demo's live table shows: one `Snapshot` per refresh, and its rendering.

`Observer.snapshot()` asks every member for its status at once, the leader
that answers for its weight table, and for each client region the DNS of a
member that answers (the region's own pair first, its leader first) — every
call with a short explicit timeout, so a dead or hung member costs one
timeout, never a refresh. A member whose process is gone is shown dead, with
how it ended; DNS queries nobody answered have their own column.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import dns.asyncquery
import dns.edns
import dns.exception
import dns.message
from rich.console import Group
from rich.table import Table
from rich.text import Text

from chaos.estate import SimulatedEstate
from gtm.cli.render import table_view
from gtm.status import MemberStatus, StatusError, read_status
from policies import WeightTable

STATUS_TIMEOUT = 0.8  # seconds for one member's /v1/status or /v1/table
DNS_TIMEOUT = 0.5  # seconds for one DNS query (all of a refresh's queries run at once)
SAMPLES = 40  # DNS queries per client region and refresh
NO_ANSWER = "no answer"


@dataclass(frozen=True)
class MemberView:
    name: str
    region: str
    status: MemberStatus | None  # None: its API did not answer in time
    ended: str | None = None  # how its process ended ("killed by SIGKILL"), None while it runs


@dataclass(frozen=True)
class Answers:
    """What `SAMPLES` queries as a client of `region` got, counted by the answer's region."""

    region: str
    asked: str | None  # the member asked; None when no member's API answered
    counts: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Snapshot:
    number: int
    at: datetime  # when the refresh started (wall clock)
    took: float  # seconds it took
    members: list[MemberView]
    table: WeightTable | None
    table_from: str | None  # the member that served the table
    answers: list[Answers]


def ended(code: int | None) -> str | None:
    """How a process ended, from its Popen return code (None: it runs)."""
    if code is None:
        return None
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited {code}"


class Observer:
    """Takes `Snapshot`s of a running estate; `exit_code(name)` says whether a member runs."""

    def __init__(
        self,
        estate: SimulatedEstate,
        session: aiohttp.ClientSession,
        exit_code: Callable[[str], int | None],
    ) -> None:
        self.estate = estate
        self.session = session
        self.exit_code = exit_code
        self.service = estate.inventory.estate.services[0]
        self._region_of = {v.address: r for r, vips in self.service.vips.items() for v in vips}
        self._count = 0

    async def snapshot(self) -> Snapshot:
        self._count += 1
        at, start = datetime.now().astimezone(), time.monotonic()
        members = await self._members()
        table_task = asyncio.create_task(self._table(members))
        answers = await asyncio.gather(
            *(self._answers(r.name, members) for r in self.estate.inventory.config.regions)
        )
        table, table_from = await table_task
        return Snapshot(
            self._count,
            at,
            time.monotonic() - start,
            members,
            table,
            table_from,
            list(answers),
        )

    async def _members(self) -> list[MemberView]:
        names = list(self.estate.members)
        statuses = await asyncio.gather(*(self._status(self.estate.api_urls[n]) for n in names))
        return [
            MemberView(n, self.estate.members[n].region, s, ended(self.exit_code(n)))
            for n, s in zip(names, statuses, strict=True)
        ]

    async def _get(self, url: str) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(STATUS_TIMEOUT), self.session.get(url) as resp:
                if resp.status != 200:
                    return None
                doc = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    async def _status(self, url: str) -> MemberStatus | None:
        doc = await self._get(url + "/v1/status")
        try:
            return None if doc is None else read_status(doc, url)
        except StatusError:
            return None

    async def _table(self, members: Sequence[MemberView]) -> tuple[WeightTable | None, str | None]:
        """The weight table of the first member (leaders first) that serves it; all asked
        at once, so a member that hangs costs one timeout."""
        asked = _leaders_first(members)
        docs = await asyncio.gather(
            *(self._get(self.estate.api_urls[m.name] + "/v1/table") for m in asked)
        )
        for m, doc in zip(asked, docs, strict=True):
            if doc is not None:
                try:
                    return WeightTable.from_dict(doc), m.name
                except (KeyError, TypeError, ValueError):
                    continue
        return None, None

    async def _answers(self, region: str, members: Sequence[MemberView]) -> Answers:
        config = next(r for r in self.estate.inventory.config.regions if r.name == region)
        answering = _leaders_first(members)
        choice = next((m for m in answering if m.region == region), None) or next(
            iter(answering), None
        )
        if choice is None or not config.client_cidrs:
            return Answers(region, None if choice is None else choice.name)
        subnet = config.client_cidrs[0]
        ecs = dns.edns.ECSOption(str(subnet.network_address), subnet.prefixlen)
        port = self.estate.dns_ports[choice.name]
        got = await asyncio.gather(*(self._ask(port, ecs) for _ in range(SAMPLES)))
        return Answers(region, choice.name, Counter(r for rs in got for r in rs))

    async def _ask(self, port: int, ecs: dns.edns.ECSOption) -> list[str]:
        query = dns.message.make_query(self.service.fqdn, "A", use_edns=0, options=[ecs])
        try:
            async with asyncio.timeout(DNS_TIMEOUT):
                reply = await dns.asyncquery.udp(query, "127.0.0.1", port=port)
        except (TimeoutError, dns.exception.DNSException, OSError):
            return [NO_ANSWER]
        found = [self._region_of.get(rr.to_text(), "?") for rrset in reply.answer for rr in rrset]
        return found or [NO_ANSWER]


def _leaders_first(members: Sequence[MemberView]) -> list[MemberView]:
    """The members whose API answered, each region's leader before the others."""
    answering = [m for m in members if m.status is not None and m.ended is None]
    return sorted(answering, key=lambda m: m.status is None or m.status.role != "leader")


def _role(m: MemberView) -> str:
    if m.ended is not None:
        return f"[red]dead ({m.ended})[/red]"
    if m.status is None:
        return "[red]not answering[/red]"
    return "[bold]leader[/bold]" if m.status.role == "leader" else m.status.role


def view(snap: Snapshot, regions: Sequence[str], fqdn: str, interval: float) -> Group:
    members = Table(title="members", show_edge=False)
    for col in ("member", "role", "DNS generation", "WLEs in sync", "health", "overrides"):
        members.add_column(col)
    for m in snap.members:
        s = m.status
        if s is None:
            members.add_row(m.name, _role(m), "", "", "", "")
            continue
        mesh = ", ".join(f"{c} {p.in_sync}/{p.desired}" for c, p in s.mesh.items())
        down = s.health.get("down", [])
        active = [f"{o['kind']} {o['region']}" for o in s.intent.active]
        members.add_row(
            m.name,
            _role(m),
            "—" if s.generation is None else str(s.generation),
            mesh or "—",
            f"[red]down: {', '.join(down)}[/red]" if down else "all up",
            ", ".join(active) or "—",
        )
    parts: list[Any] = [members]
    if snap.table is not None:
        title = f"weight table served by {snap.table_from}, generation {snap.table.generation}"
        parts.append(table_view(snap.table, regions, title=title))
    else:
        parts.append(Text("weight table: no leader answers", style="red"))
    observed = Table(
        title=f"DNS answers observed for {fqdn} ({SAMPLES} queries per client region)",
        show_edge=False,
    )
    observed.add_column("clients in")
    observed.add_column("asked")
    for r in regions:
        observed.add_column(f"→ {r}", justify="right")
    observed.add_column(NO_ANSWER, justify="right")
    for a in snap.answers:
        if a.asked is None:
            observed.add_row(a.region, "[red]no member answers[/red]", *("" for _ in regions), "")
            continue
        total = sum(a.counts.values()) or 1
        cells = [f"{100 * a.counts[r] / total:.0f}%" for r in regions]
        missed = f"{100 * a.counts[NO_ANSWER] / total:.0f}%"
        observed.add_row(
            a.region, a.asked, *cells, f"[red]{missed}[/red]" if a.counts[NO_ANSWER] else missed
        )
    parts.append(observed)
    stamp = snap.at.strftime("%H:%M:%S.%f")[:-3]
    parts.append(
        Text(
            f"refresh {snap.number} at {stamp} (every {interval:g} s, took {snap.took:.1f} s)"
            " · Ctrl-C stops",
            style="dim",
        )
    )
    return Group(*parts)
