"""`gtm override list|show|remove` and `gtm rollout start|end`: the intent in force, by id.

    gtm override list --region dc2
    gtm override show drain-3f2a9c01d4
    gtm override remove drain-3f2a9c01d4 --reason "deploy fixed" --wait
    gtm rollout start dc2 --window 30m --reason "release 4.2" --ticket CHG-7
    gtm rollout end dc2 --reason "release done"

Removing is planned like any action (`--dry-run` prints the plan: the rows that
come back, the WorkloadEntry patches); `--wait` follows the removal of an exit
or a drain until every member shows the traffic back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gtm.cli.region import DURATION, change_options, follow, show_refusal, show_result, utc_time
from gtm.client.http import ApiClient, CliError, connection_options, run

LEAVING = ("exit", "drain")  # kinds whose end brings traffic back


@click.group()
def override() -> None:
    """The operators' overrides in force (exits, drains, rollouts, enters ramping)."""


@override.command("list")
@click.option("--region", help="Only this region's.")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
@connection_options
def list_(region: str | None, as_json: bool, **opts: Any) -> None:
    """Every override in force, oldest first: who, why, ticket, until when."""

    async def work(api: ApiClient) -> int:
        intent = await api.get("/v1/overrides")
        found = [o for o in _in_force(intent) if region is None or o["region"] == region]
        if as_json:
            click.echo(json.dumps(found, indent=2))
            return 0
        Console().print(_table(found, intent.get("version")))
        return 0

    run(work, opts)


@override.command()
@click.argument("override_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
@connection_options
def show(override_id: str, as_json: bool, **opts: Any) -> None:
    """One override, in force or ended (how, by whom, when)."""

    async def work(api: ApiClient) -> int:
        intent = await api.get("/v1/overrides")
        found = {o["id"]: o for o in _in_force(intent)}.get(override_id)
        ended = {t.get("id"): t for t in intent.get("tombstones", ())}.get(override_id)
        if found is None and ended is None:
            raise CliError(_unknown(override_id, intent))
        if as_json:
            click.echo(json.dumps({"override": found, "ended": ended}, indent=2))
            return 0
        console = Console(highlight=False)
        if found is not None:
            for key in ("id", "kind", "region", "services", "who", "why", "ticket", "force"):
                value = found.get(key)
                shown = "all" if key == "services" and value is None else value
                console.print(f"{key:>9}: {escape(str(shown if shown is not None else '—'))}")
            console.print(f"{'since':>9}: {utc_time(found.get('created'))}")
            console.print(f"{'until':>9}: {utc_time(found.get('expires'))}")
            if found.get("ramp") is not None:
                console.print(f"{'ramp':>9}: {float(found['ramp']):.0f}s")
        else:
            console.print(f"{escape(override_id)}: ended ({escape(str(ended.get('ending')))})")
            for key in ("who", "why", "by"):
                if ended.get(key):
                    console.print(f"{key:>9}: {escape(str(ended[key]))}")
            console.print(f"{'when':>9}: {utc_time(ended.get('when'))}")
        return 0

    run(work, opts)


@override.command()
@click.argument("override_id", metavar="ID")
@click.option("--reason", required=True, help="Why it ends now (kept in the audit).")
@change_options
def remove(override_id: str, reason: str, **opts: Any) -> None:
    """End override ID before its expiry; the traffic it kept out comes back."""

    async def work(api: ApiClient) -> int:
        intent = await api.get("/v1/overrides")
        found = {o["id"]: o for o in _in_force(intent)}.get(override_id)
        if found is None:
            raise CliError(_unknown(override_id, intent))
        await _remove(api, found, reason, opts)
        return 0

    run(work, opts, refused=show_refusal)


@click.group()
def rollout() -> None:
    """Hold a region's cells within the policy's rollout bounds while it is deployed to."""


@rollout.command()
@click.argument("name", metavar="REGION")
@click.option("--window", type=DURATION, required=True, help="How long the rollout lasts (30m).")
@click.option("--reason", required=True, help="Why (kept in the audit).")
@click.option("--service", "-s", "services", multiple=True, help="Only this service.")
@change_options
def start(name: str, window: float, reason: str, services: tuple[str, ...], **opts: Any) -> None:
    """Start a rollout window in REGION: its cells stay within the rollout bounds."""
    body = {
        "region": name,
        "window": window,
        "reason": reason,
        "services": list(services) or None,
        "ticket": opts["ticket"],
        "dry_run": opts["dry_run"],
    }
    body = {k: v for k, v in body.items() if v is not None}

    async def work(api: ApiClient) -> int:
        show_result(await api.write("POST", "/v1/rollout", body))
        if opts["wait"]:
            click.echo("--wait follows exits, drains and enters; a rollout is in force now")
        return 0

    run(work, opts, refused=show_refusal)


@rollout.command()
@click.argument("name", metavar="REGION")
@click.option("--reason", required=True, help="Why it ends now (kept in the audit).")
@change_options
def end(name: str, reason: str, **opts: Any) -> None:
    """End every rollout in force in REGION before its window is over."""

    async def work(api: ApiClient) -> int:
        intent = await api.get("/v1/overrides")
        found = [o for o in _in_force(intent) if o["kind"] == "rollout" and o["region"] == name]
        if not found:
            raise CliError(f"no rollout of {name} is in force (gtm override list)")
        for o in found:
            await _remove(api, o, reason, opts)
        return 0

    run(work, opts, refused=show_refusal)


async def _remove(
    api: ApiClient, found: Mapping[str, Any], reason: str, opts: Mapping[str, Any]
) -> None:
    body = {"reason": reason, "dry_run": opts["dry_run"]}
    result = await api.write("DELETE", f"/v1/overrides/{found['id']}", body)
    services = found.get("services")
    scope = None if services is None else frozenset(services)
    waits = opts["wait"] and found["kind"] in LEAVING
    if opts["wait"] and not waits:
        click.echo(f"--wait follows the end of exits and drains; {found['id']} has ended")
    await follow(
        api, result, {**opts, "wait": waits}, region=found["region"], leaving=False, scope=scope
    )


def _in_force(intent: Mapping[str, Any]) -> list[dict[str, Any]]:
    overrides = [o for o in intent.get("overrides", ()) if isinstance(o, dict)]
    return sorted(overrides, key=lambda o: (o.get("created") or 0, o.get("id")))


def _unknown(override_id: str, intent: Mapping[str, Any]) -> str:
    known = ", ".join(o["id"] for o in _in_force(intent)) or "none"
    return f"no override {override_id!r} in force or ended (in force: {known})"


def _table(found: Sequence[Mapping[str, Any]], version: object) -> Table:
    t = Table(title=f"overrides in force (intent version {version})")
    for col in ("id", "kind", "region", "services", "who", "why", "ticket", "since", "until"):
        t.add_column(col)
    for o in found:
        services = "all" if o.get("services") is None else ", ".join(o["services"])
        cells = (o["id"], o["kind"], o["region"], services, o["who"], o["why"], o.get("ticket"))
        t.add_row(
            *(escape(str(c or "")) for c in cells),
            utc_time(o.get("created")),
            utc_time(o.get("expires")),
        )
    return t
