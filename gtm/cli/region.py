"""The runbook: `gtm region exit|enter|status`, `gtm drain`, `gtm history`, via the leader's API.

    gtm region exit dc2 --reason "power work" --ticket CHG-42 --wait
    gtm region enter dc2 --ramp 10m --wait
    gtm drain pay --region dc1 --reason "bad deploy" --dry-run

Writes print the plan the leader made (DNS rows that change, WorkloadEntry
patches per cluster, share of traffic moved). A guardrail's refusal is
printed with its reason and exits 3; a standby's "not the leader" is
followed to the leader once. `--wait` then watches every member until the
change is observed in both layers and in the DNS answers (exit 4 on timeout).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gtm.cli.status import converge
from gtm.client.convergence import Change
from gtm.client.http import (
    ApiClient,
    ApiError,
    CliError,
    connection_options,
    run,
)
from gtm.exits import ExitCode
from gtm.status import LAYERS, MemberStatus, StatusError, read_status
from probes import parse_duration

SHOWN = 40  # rows / patches printed before "… N more"


class DurationType(click.ParamType):
    """`90`, `1.5`, `10m`, `1h30m`: seconds, as the API takes them."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return parse_duration(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


DURATION = DurationType()


def change_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options every write shares: ticket, dry run, wait, and the connection."""
    f = connection_options(f)
    f = click.option(
        "--timeout", type=DURATION, default="10m", show_default=True, help="How long --wait waits."
    )(f)
    f = click.option("--wait", is_flag=True, help="Wait until every member shows the change.")(f)
    f = click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")(f)
    f = click.option("--ticket", help="Change ticket, kept in the audit.")(f)
    return f


def _act(path: str, body: dict[str, Any], opts: Mapping[str, Any], *, leaving: bool) -> None:
    """POST `body` to the leader, print its plan, and with --wait follow it until observed."""
    body = {k: v for k, v in body.items() if v is not None}
    scope = frozenset(body["services"]) if "services" in body else None

    async def work(api: ApiClient) -> int:
        result = await api.write("POST", path, body)
        await follow(api, result, opts, region=body["region"], leaving=leaving, scope=scope)
        return 0

    run(work, opts, refused=show_refusal)


async def follow(
    api: ApiClient,
    result: Mapping[str, Any],
    opts: Mapping[str, Any],
    *,
    region: str,
    leaving: bool,
    scope: frozenset[str] | None,
) -> None:
    """Print an action's result; with --wait, watch it until every member shows it."""
    show_result(result)
    if opts["wait"] and not result.get("dry_run"):
        ids = tuple(result.get("override_ids", ()))
        ramp = result.get("ramp")
        settles = float(ramp["until"]) if isinstance(ramp, Mapping) else None
        await converge(api, Change(ids, region, leaving, scope, settles), opts["timeout"])


@click.group()
def region() -> None:
    """Take a region out of traffic and bring it back, through the leader's API."""


@region.command("exit")
@click.argument("name", metavar="REGION")
@click.option("--reason", required=True, help="Why (kept in the audit).")
@click.option("--service", "-s", "services", multiple=True, help="Only this service.")
@click.option("--expires", type=DURATION, help="End the exit by itself after this long (2h).")
@click.option("--force", is_flag=True, help="Override guardrails (needs --reason).")
@change_options
def exit_(
    name: str,
    reason: str,
    services: tuple[str, ...],
    expires: float | None,
    force: bool,
    **opts: Any,
) -> None:
    """Take REGION out: DNS first, then the mesh after the DNS TTL."""
    body = {
        "region": name,
        "reason": reason,
        "services": list(services) or None,
        "ticket": opts["ticket"],
        "expires_in": expires,
        "force": force,
        "dry_run": opts["dry_run"],
    }
    _act("/v1/region/exit", body, opts, leaving=True)


@region.command()
@click.argument("name", metavar="REGION")
@click.option("--ramp", type=DURATION, help="Ramp back over this long (default: the policy's).")
@click.option("--reason", default="region enter", show_default=True, help="Why.")
@click.option("--service", "-s", "services", multiple=True, help="Only this service.")
@change_options
def enter(
    name: str, ramp: float | None, reason: str, services: tuple[str, ...], **opts: Any
) -> None:
    """Bring REGION back: the mesh first, then DNS, ramping up."""
    body = {
        "region": name,
        "reason": reason,
        "services": list(services) or None,
        "ramp": ramp,
        "ticket": opts["ticket"],
        "dry_run": opts["dry_run"],
    }
    _act("/v1/region/enter", body, opts, leaving=False)


@click.command()
@click.argument("services", metavar="SERVICE...", nargs=-1, required=True)
@click.option("--region", "name", required=True, help="The region to drain them from.")
@click.option("--reason", required=True, help="Why (kept in the audit).")
@click.option("--expires", type=DURATION, help="End the drain by itself after this long.")
@click.option("--force", is_flag=True, help="Override guardrails (needs --reason).")
@change_options
def drain(
    services: tuple[str, ...],
    name: str,
    reason: str,
    expires: float | None,
    force: bool,
    **opts: Any,
) -> None:
    """Take SERVICE(s) out of one region."""
    body = {
        "region": name,
        "services": list(services),
        "reason": reason,
        "ticket": opts["ticket"],
        "expires_in": expires,
        "force": force,
        "dry_run": opts["dry_run"],
    }
    _act("/v1/drain", body, opts, leaving=True)


@region.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the intent and status as JSON.")
@connection_options
def region_status(as_json: bool, **opts: Any) -> None:
    """Each region: in, exited, draining, in a rollout or ramping back, and by whom."""

    async def work(api: ApiClient) -> int:
        status, intent = await asyncio.gather(api.get("/v1/status"), api.get("/v1/overrides"))
        if as_json:
            click.echo(json.dumps({"status": status, "overrides": intent}, indent=2))
            return 0
        try:
            own = read_status(status, api.base)
        except StatusError as e:
            raise CliError(str(e), ExitCode.FAILED) from None
        Console().print(_regions_view(own, intent))
        return 0

    run(work, opts)


@click.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--since", type=DURATION, help="Only entries younger than this (1h).")
@click.option(
    "--before", metavar="CURSOR", help="Only entries older than this (a page's 'older:' cursor)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@connection_options
def history(
    limit: int, since: float | None, before: str | None, as_json: bool, **opts: Any
) -> None:
    """The audit of operator intent: accepted, refused, entered, removed, expired; newest first,
    a page at a time (`--before` the cursor a page ends with for the older ones)."""

    async def work(api: ApiClient) -> int:
        after = None if since is None else time.time() - since
        doc = await api.get("/v1/history", limit=limit, since=after, before=before)
        if as_json:
            click.echo(json.dumps(doc["entries"], indent=2))
            if doc.get("next"):
                click.echo(f"older: gtm history --before {doc['next']}", err=True)
            return 0
        t = Table(title=f"history ({len(doc['entries'])} entries, newest first)")
        for col in ("when", "action", "override", "who", "what", "why", "ticket"):
            t.add_column(col)
        for e in doc["entries"]:
            why = e["why"] if not e.get("rule") else f"[{e['rule']}] {e['why']}"
            cells = (e["action"], e["override_id"], e["who"], e["what"], why, e.get("ticket") or "")
            t.add_row(utc_time(e["at"]), *(escape(str(c)) for c in cells))
        Console().print(t)
        if doc.get("next"):
            click.echo(f"older: gtm history --before {doc['next']}")
        return 0

    run(work, opts)


# --- printing ----------------------------------------------------------------------


def utc_time(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def show_result(result: Mapping[str, Any]) -> None:
    console = Console()
    ids = ", ".join(result.get("override_ids", ())) or "—"
    if result.get("dry_run"):
        console.print(f"[bold]plan[/bold] (dry run: nothing changed) — override {ids}")
    elif result.get("accepted"):
        console.print(
            f"[bold green]accepted[/bold green]: override {ids}, intent version {result.get('intent_version')}"
        )
    if result.get("message"):
        console.print(escape(str(result["message"])))
    for ended in result.get("ends") or ():
        console.print(f"ends {escape(str(ended))}", highlight=False)
    ramp = result.get("ramp")
    rows = result.get("dns", [])
    title = f"DNS rows that change ({len(rows)})"
    if isinstance(ramp, Mapping):
        start, end = float(ramp["from"]), float(ramp["until"])
        title = f"DNS rows once the ramp is over ({len(rows)})"
        console.print(
            f"the mesh takes the region back first; DNS ramps back from {utc_time(start)}"
            f" until {utc_time(end)} ({end - start:.0f}s)",
            highlight=False,
        )
    t = Table(title=title)
    for col in ("service", "clients in", "weights"):
        t.add_column(col)
    for row in rows[:SHOWN]:
        where = (escape(str(row.get(k, "?"))) for k in ("service", "source"))
        t.add_row(*where, _weights(row))
    if len(rows) > SHOWN:
        t.add_row("…", "", f"{len(rows) - SHOWN} more")
    console.print(t if rows else "DNS rows that change: none")
    mesh: Mapping[str, list[str]] = result.get("mesh", {})
    if not mesh:
        console.print("WorkloadEntry patches: none")
    for cluster, lines in mesh.items():
        console.print(f"WorkloadEntry patches in [bold]{escape(cluster)}[/bold] ({len(lines)}):")
        for line in lines[:SHOWN]:
            console.print(f"  {escape(line)}", highlight=False)
        if len(lines) > SHOWN:
            console.print(f"  … {len(lines) - SHOWN} more")
    share = 100 * float(result.get("moved_share", 0))
    moved = "comes back by the end of the ramp" if isinstance(ramp, Mapping) else "moved"
    console.print(f"share of DNS traffic {moved}: {share:.1f}%")


def _weights(row: Mapping[str, Any]) -> str:
    old, new = row.get("old") or {}, row.get("new")
    if not isinstance(new, Mapping):
        return escape(json.dumps({k: v for k, v in row.items() if k not in ("service", "source")}))
    parts = []
    for target, w in new.items():
        before, name = old.get(target), escape(str(target))
        parts.append(f"{name} {w}" if before == w else f"{name} [bold]{before} → {w}[/bold]")
    return ", ".join(parts)


def show_refusal(e: ApiError) -> None:
    details = e.details if isinstance(e.details, dict) else {}
    if isinstance(details.get("plan"), dict):
        show_result(details["plan"])
    console = Console(stderr=True)
    for r in details.get("refusals", ()):
        rule, message = escape(str(r.get("rule"))), escape(str(r.get("message")))
        console.print(f"[red]refused by {rule}[/red]: {message}", highlight=False)
    console.print(f"[red]refused[/red] (exit {ExitCode.REFUSED}); nothing changed", highlight=False)


def _regions_view(status: MemberStatus, intent: Mapping[str, Any]) -> Table:
    overrides = intent.get("overrides", [])
    regions = list(status.regions) or sorted({o["region"] for o in overrides})
    title = f"regions (intent version {intent.get('version')}, as {status.identity} sees it)"
    t = Table(title=escape(title))
    for col in ("region", "state", "override", "by", "why", "ticket", "until", "in DNS / mesh"):
        t.add_column(col)
    for name in regions:
        mine = [o for o in overrides if o["region"] == name]
        if not mine:
            t.add_row(escape(name), "[green]in[/green]", "", "", "", "", "", "")
        for o in mine:
            scope = "all services" if o["services"] is None else ", ".join(o["services"])
            layers = " / ".join("✓" if status.admits(layer, o["id"]) else "…" for layer in LAYERS)
            cells = (name, f"{o['kind']} ({scope})", o["id"], o["who"], o["why"], o.get("ticket"))
            t.add_row(*(escape(str(c or "")) for c in cells), utc_time(o.get("expires")), layers)
    return t


__all__ = [
    "DURATION",
    "change_options",
    "drain",
    "follow",
    "history",
    "region",
    "show_refusal",
    "show_result",
    "utc_time",
]
