"""`gtm status`, and watching every member until a runbook change is observed (`--wait`).

The member asked (normally the leader) lists its peers in its status; both
read every member's status over the API with the same token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
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
)
from gtm.client.http import ApiClient, ApiError, CliError, connection_options, run
from gtm.exits import ExitCode
from gtm.status import StatusError, read_status
from policies import WeightTable

POLL = 1.0  # seconds between looks while waiting
GRACE = 2.0  # seconds a last look may take past the timeout
CANDIDATES = 64  # services whose table rows --wait fetches to pick the DNS sample from


class Members:
    """Every member the runbook has heard of, asked through whichever one answers.

    The member first asked (normally the leader) lists its peers in its status;
    each look starts from the first member that answers, in the order they were
    learnt, so a member that dies (a SIGKILLed leader) costs one look, not the
    wait: the lost one is reported and the others go on being asked.
    """

    def __init__(self, api: ApiClient) -> None:
        self._api = api
        self.urls: list[str] = [api.base]

    async def get(self, path: str, **params: Any) -> Any:
        """`GET path` from the first member that answers, in the order they were learnt."""
        errors = []
        for url in list(self.urls):
            try:
                return await self._api.get(path, base=url, **params)
            except ApiError as e:
                if e.status != 0:
                    raise
                errors.append(f"{url}: {e.error}")
        raise ApiError(0, "no member answers: " + "; ".join(errors))

    def _learn(self, url: str) -> None:
        url = url.rstrip("/")
        if url not in self.urls:
            self.urls.append(url)

    async def look(self, change: Change | None = None) -> list[MemberView]:
        """One view per member: the first that answers, then every peer it and earlier
        looks named; problems are kept as views, not raised. No member answering at all
        raises the first member's error."""
        lost: list[MemberView] = []
        for url in list(self.urls):
            try:
                own = read_status(await self._api.get("/v1/status", base=url), url)
            except ApiError as e:
                if e.status != 0:  # it answered: a refused token is the operator's to fix
                    raise
                lost.append(MemberView(url, None, e.error))
                continue
            except StatusError as e:
                raise CliError(str(e), ExitCode.FAILED) from None
            for p in own.peers:
                if p.url:
                    self._learn(p.url)
            asked = {url, *(v.url for v in lost)}
            others = [u for u in self.urls if u not in asked]
            views = [MemberView(url, own), *lost]
            views += await asyncio.gather(*(_peer(self._api, u) for u in others))
            views += [
                MemberView(p.identity or "?", None, "listed without a url: cannot be asked")
                for p in own.peers
                if not p.url
            ]
            views = _distinct(views)
            if change is None:
                return views
            return list(
                await asyncio.gather(*(_with_tombstones(self._api, v, change) for v in views))
            )
        raise ApiError(0, "no member answers: " + "; ".join(f"{v.url}: {v.problem}" for v in lost))


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
    """Print progress until every member that answers shows `change` and answers accordingly.

    A member that stops answering is reported as lost and the others go on being
    asked; an enter's answers are checked once its ramp is over. Prints a line per
    change of state (on a terminal, also the per-member figures as they move).
    Raises CliError (exit 4) when `within` seconds pass first.
    """
    console = Console(highlight=False)
    detailed = console.is_terminal
    loop = asyncio.get_running_loop()
    started = loop.time()
    members = Members(api)
    await members.look()  # learn the peers now: the member asked may be gone by the next look
    candidates = ",".join(await _candidates(members, change)) or None
    regions_of = vip_regions(await members.get("/v1/table", service=candidates))
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
                try:
                    views = await members.look(change)
                except ApiError as e:
                    views = [MemberView(api.base, None, e.error)]
                reached = [v for v in views if v.status is not None]
                lost = [v for v in views if v.status is None]
                rows = [progress(change, v) for v in reached]
                held = bool(rows) and all(r.done for r in rows)
                ramping = held and change.settles_at is not None and time.time() < change.settles_at
                checks: list[AnswerCheck] = []
                if held and not ramping:
                    checks = await _answers(change, reached, regions_of, services)
                missing = [r.line() for r in rows if not r.done]
                missing += [c.line() for c in checks if not c.ok]
                missing += [f"{v.url}: lost: {v.problem}" for v in lost if not rows]
                elapsed = loop.time() - started
                head = _summary(rows, lost, checks, change.settles_at if ramping else None)
                lost_lines = [f"{v.url}: lost: {v.problem}" for v in lost]
                lines = [head, *(r.line() for r in rows), *lost_lines, *(c.line() for c in checks)]
                # on a terminal every move is shown; elsewhere (a log) only changes of state
                states = [
                    head,
                    *(r.state() for r in rows),
                    *lost_lines,
                    *(c.state() for c in checks),
                ]
                if (lines if detailed else states) != shown:
                    console.print(f"[dim]{elapsed:6.1f}s[/dim] {escape(lines[0])}")
                    for line in lines[1:]:
                        console.print(f"         {escape(line)}")
                    shown = lines if detailed else states
                if checks and all(c.ok for c in checks):
                    gone = f"; lost (not asked): {', '.join(v.url for v in lost)}" if lost else ""
                    console.print(
                        f"[green]converged[/green] after {elapsed:.1f}s: {len(rows)} member(s)"
                        " hold the change in DNS and mesh; their DNS answers agree"
                        f" ({sum(c.asked for c in checks)} queries){escape(gone)}"
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


def _summary(
    rows: Sequence[MemberProgress],
    lost: Sequence[MemberView],
    checks: Sequence[AnswerCheck],
    ramp_ends: float | None,
) -> str:
    """Where the change stands, in one line that changes only when the state does."""
    held = sum(r.done for r in rows)
    out = f"{held}/{len(rows)} members hold the change in DNS and mesh"
    if lost:
        out += f"; {len(lost)} lost"
    if ramp_ends is not None:
        until = datetime.fromtimestamp(ramp_ends, UTC).strftime("%H:%M:%SZ")
        out += f"; DNS ramps back until {until}, its answers are checked then"
    elif checks:
        out += f"; DNS answers as expected on {sum(c.ok for c in checks)}/{len(checks)}"
    elif rows and held == len(rows):
        out += "; checking DNS answers"
    return out


async def _candidates(members: Members, change: Change) -> list[str]:
    """Services whose rows the DNS check may ask about (the table is fetched for these only)."""
    if change.services is not None:
        return sorted(change.services)[:CANDIDATES]
    views = await members.look()
    own = next((v.status for v in views if v.status is not None), None)
    return [] if own is None else sorted(own.fqdns)[:CANDIDATES]


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
        views = await Members(api).look()
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
    console = Console(highlight=False, soft_wrap=True)  # a log line stays one line
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
    for line in config_lines(views):
        console.print(line)
    if table is None:
        console.print("no table yet")
        return
    weights = WeightTable.from_dict(table)
    console.print(table_view(weights, list(own.regions) or _regions(weights)))


def config_lines(views: Sequence[MemberView]) -> list[str]:
    """Each member's config (digest, loaded when), its last refused reload, and — in red —
    the members of one region that run different configs."""
    out = []
    by_region: dict[str, dict[str, list[str]]] = {}
    for v in views:
        s = v.status
        if s is None or s.config is None:
            continue
        c = s.config
        by_region.setdefault(s.region, {}).setdefault(c.digest, []).append(s.identity)
        out.append(
            escape(f"config of {s.identity}: {c.digest}, loaded {_utc(c.loaded_at)} from {c.file}")
        )
        if c.refused_at is not None:
            first = c.refused[0] if c.refused else "?"
            more = f" (+{len(c.refused) - 1} more)" if len(c.refused) > 1 else ""
            out.append(
                f"[red]  reload refused at {_utc(c.refused_at)}[/red]: "
                + escape(f"{first}{more}; still running the config above")
            )
    for region, digests in sorted(by_region.items()):
        if len(digests) > 1:
            who = "; ".join(f"{', '.join(m)} run {d}" for d, m in sorted(digests.items()))
            out.append(
                f"[red]members of {escape(region)} run different configs[/red]: {escape(who)}"
            )
    return out


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


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
