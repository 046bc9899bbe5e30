"""`gtm status`, and watching every member until a runbook change is observed (`--wait`).

The member asked (normally the leader) lists its peers in its status; both
read every member's status over the API with the same token.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import click
from rich.console import Console
from rich.markup import escape

from gtm.cli.render import table_view
from gtm.client.answers_check import AnswerCheck, check_answers, sample, vip_regions
from gtm.client.convergence import (
    Change,
    MemberProgress,
    MemberView,
    ended_ids,
    needs_tombstones,
    progress,
    summary,
)
from gtm.client.http import ApiClient, ApiError, CliError, connection_options, run
from gtm.exits import ExitCode
from gtm.status import StatusError, read_status
from policies import WeightTable

POLL = 0.5  # seconds between looks while waiting
GRACE = 2.0  # seconds a last look may take past the timeout
CANDIDATES = 64  # services whose table rows --wait fetches to pick the DNS sample from


async def member_views(api: ApiClient, change: Change | None = None) -> list[MemberView]:
    """The member asked and every peer its status lists; problems are kept, not raised."""
    first = await api.get("/v1/status")
    try:
        own = read_status(first, api.base)
    except StatusError as e:
        raise CliError(str(e), 1) from None
    peers = [p for p in own.peers if p.url and p.url.rstrip("/") != api.base]
    views = [MemberView(api.base, own)] + await asyncio.gather(
        *(_peer(api, p.url.rstrip("/")) for p in peers if p.url)
    )
    views += [
        MemberView(p.identity or "?", None, "listed without a url: cannot be asked")
        for p in own.peers
        if not p.url
    ]
    views = _distinct(views)
    if change is None:
        return views
    return list(await asyncio.gather(*(_with_tombstones(api, v, change) for v in views)))


def _distinct(views: list[MemberView]) -> list[MemberView]:
    """One view per member identity (a peer list may name the asked member under another URL)."""
    seen: set[str] = set()
    out = []
    for v in views:
        if v.status is not None:
            if v.status.identity in seen:
                continue
            seen.add(v.status.identity)
        out.append(v)
    return out


async def _peer(api: ApiClient, url: str) -> MemberView:
    try:
        return MemberView(url, read_status(await api.get("/v1/status", base=url), url))
    except ApiError as e:
        return MemberView(url, None, e.error)
    except StatusError as e:
        return MemberView(url, None, str(e))


async def _with_tombstones(api: ApiClient, view: MemberView, change: Change) -> MemberView:
    if view.status is None or not needs_tombstones(change, view.status):
        return view
    try:
        intent = await api.get("/v1/overrides", base=view.url)
    except ApiError as e:
        return MemberView(view.url, view.status, e.error)
    return MemberView(view.url, view.status, view.problem, ended_ids(intent))


async def converge(api: ApiClient, change: Change, within: float) -> None:
    """Print progress until every member shows `change` and answers accordingly.

    Raises CliError (exit 4) when `within` seconds pass first.
    """
    console = Console(highlight=False)
    loop = asyncio.get_running_loop()
    started = loop.time()
    candidates = ",".join(await _candidates(api, change)) or None
    regions_of = vip_regions(await api.get("/v1/table", service=candidates))
    services = sample(change, regions_of)
    console.print(
        escape(
            f"waiting for {', '.join(change.ids)}: traffic {change.describe()} on every member"
            f" (timeout {within:.0f}s)"
        )
    )
    shown: list[str] = []
    missing = ["no member has answered yet"]
    try:
        async with asyncio.timeout_at(started + within + GRACE):  # a member that hangs
            while True:
                views = await member_views(api, change)
                rows = [progress(change, v) for v in views]
                checks: list[AnswerCheck] = []
                if all(r.done for r in rows):
                    checks = await _answers(change, views, regions_of, services)
                lines = [r.line() for r in rows] + [c.line() for c in checks]
                missing = [r.line() for r in rows if not r.done]
                missing += [c.line() for c in checks if not c.ok]
                elapsed = loop.time() - started
                if lines != shown:
                    console.print(f"[dim]{elapsed:6.1f}s[/dim] {summary(rows)}")
                    for line in lines:
                        console.print(f"         {escape(line)}")
                    shown = lines
                if not missing and checks:
                    console.print(
                        f"[green]converged[/green] after {elapsed:.1f}s: {len(rows)} member(s)"
                        " hold the change in DNS and mesh; their DNS answers agree"
                        f" ({sum(c.asked for c in checks)} queries)"
                    )
                    return
                if elapsed >= within:
                    break
                await asyncio.sleep(min(POLL, within - elapsed))
    except TimeoutError:
        missing.append("(members were still being asked when the time was up)")
    raise CliError(
        f"not converged after {within:.0f}s:\n  " + "\n  ".join(missing), ExitCode.TIMEOUT
    )


async def _candidates(api: ApiClient, change: Change) -> list[str]:
    """Services whose rows the DNS check may ask about (the table is fetched for these only)."""
    if change.services is not None:
        return sorted(change.services)[:CANDIDATES]
    own = read_status(await api.get("/v1/status"), api.base)
    return sorted(own.fqdns)[:CANDIDATES]


async def _answers(
    change: Change,
    views: Sequence[MemberView],
    regions_of: dict[str, dict[str, str]],
    services: list[str],
) -> list[AnswerCheck]:
    jobs = [
        check_answers(
            change, v.status, urlsplit(v.url).hostname or "127.0.0.1", regions_of, services
        )
        for v in views
        if v.status is not None
    ]
    return list(await asyncio.gather(*jobs))


# --- gtm status ------------------------------------------------------------------------


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print statuses and the table as JSON.")
@connection_options
def status(as_json: bool, **opts: Any) -> None:
    """Role, leader, generation, health, mesh progress, every member, and the table."""

    async def work(api: ApiClient) -> int:
        views = await member_views(api)
        try:
            table: dict[str, Any] | None = await api.get("/v1/table")
        except ApiError as e:
            if e.status != 503:
                raise
            table = None
        if as_json:
            doc = {
                "status": views[0].status.model_dump() if views[0].status else None,
                "members": {
                    v.url: v.status.model_dump() if v.status else {"error": v.problem}
                    for v in views[1:]
                },
                "table": table,
            }
            click.echo(json.dumps(doc, indent=2))
            return 0
        _print_status(views, table)
        return 0

    run(work, opts)


def _print_status(views: Sequence[MemberView], table: dict[str, Any] | None) -> None:
    console = Console(highlight=False)
    own = views[0].status
    assert own is not None
    h = own.health
    leader = own.holder
    where = f" at {leader.address}" if leader.address else ""
    epoch = own.epoch if own.epoch is not None else leader.epoch  # a standby's: its leader's
    lines = [
        f"{own.identity} ({own.role}) in {own.region}, epoch {epoch};"
        f" leader {leader.identity or 'unknown'}{where}",
        f"table generation served: {own.generation}",
        f"health: {_health(h)}; impaired vantages: {', '.join(h.get('impaired', ())) or 'none'}",
        f"intent version {own.intent.version}: {', '.join(own.intent.ids) or 'none'}",
    ]
    for cluster, p in sorted(own.mesh.items()):
        lines.append(f"mesh {cluster}: {p.in_sync}/{p.desired} WorkloadEntries in sync")
        lines += [f"  weights overridden: {c}" for c in p.conflicts]
    if own.pending:
        waiting = ", ".join(f"{p.id} (mesh at {p.at:.1f})" for p in own.pending)
        lines.append(f"pending mesh changes: {waiting}")
    lines += [f"member {_member_line(progress(Change((), '', True, None), v))}" for v in views[1:]]
    for line in lines:
        console.print(escape(line))
    if table is None:
        console.print("no table yet")
        return
    weights = WeightTable.from_dict(table)
    console.print(table_view(weights, list(own.regions) or _regions(weights)))


def _health(h: dict[str, Any]) -> str:
    """`{"vips": {"up": 40, "down": 1}, "regions": {…}, "down": […]}` as one line."""
    parts = []
    for what in ("vips", "regions"):
        counts = h.get(what)
        if isinstance(counts, dict):
            parts.append(f"{what} " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    down = h.get("down")
    if isinstance(down, list) and down:
        parts.append(f"down: {', '.join(map(str, down))}")
    return "; ".join(parts) or "not reported"


def _member_line(row: MemberProgress) -> str:
    if row.problem is not None:
        return f"{row.name}: {row.problem}"
    wles = ", ".join(f"{c} {p.in_sync}/{p.desired}" for c, p in sorted(row.mesh.items()))
    return f"{row.name} ({row.role}): table generation {row.generation}" + (
        f"; WLEs {wles}" if wles else ""
    )


def _regions(table: WeightTable) -> list[str]:
    for row in table:
        return list(row.cells)
    return []
