"""`gtm publish`: publish the table `gtm plan` computes to PowerDNS, plan then apply."""

from __future__ import annotations

import asyncio
import sys

import click
from rich.console import Console

from gtm.cli.options import (
    config_option,
    health_or_exit,
    load_or_exit,
    now,
    parse_overrides,
    what_if_options,
)
from gtm.cli.render import refusals_view
from gtm.config import Inventory
from gtm.config.model import PowerDnsConfig
from gtm.exits import ExitCode
from gtm.exporters import ExportError, PowerDnsExporter, RenderError, UnsafePlan
from gtm.what_if import what_if
from policies import WeightTable


@click.command()
@config_option
@what_if_options
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
def publish(
    config_path: str,
    health_path: str | None,
    override_specs: tuple[str, ...],
    force: bool,
    dry_run: bool,
) -> None:
    """Publish the weight table to PowerDNS (dns.powerdns) as LUA records.

    Prints the plan (zone to create, rrsets to create, replace or delete),
    then applies it unless --dry-run. A plan that changes more than
    safety.max_row_change_share of the existing records is refused unless
    --force.

    Exits 0 when published (or nothing to change), 1 when PowerDNS fails,
    2 on config problems, 3 when a guardrail refuses an override, 4 when the
    blast-radius limit refuses the plan.
    """
    inventory = load_or_exit(config_path)
    settings = inventory.config.dns.powerdns
    if settings is None:
        click.echo(f"{config_path}: dns.powerdns is not set: no PowerDNS to publish to", err=True)
        sys.exit(ExitCode.INPUT)
    health = health_or_exit(health_path, inventory)
    t = now()
    evaluation = what_if(
        inventory, health, parse_overrides(override_specs, force=force, now=t), t
    ).planned
    if evaluation.refusals:
        Console(stderr=True).print(refusals_view(evaluation.refusals))
        click.echo("refused by a guardrail: nothing published", err=True)
        sys.exit(ExitCode.REFUSED)
    sys.exit(asyncio.run(_publish(inventory, evaluation.table, settings, dry_run, force)))


async def _publish(
    inventory: Inventory,
    table: WeightTable,
    settings: PowerDnsConfig,
    dry_run: bool,
    force: bool,
) -> int:
    try:
        exporter = PowerDnsExporter.from_config(settings)
    except ExportError as e:
        click.echo(str(e), err=True)
        return ExitCode.INPUT
    async with exporter:
        try:
            plan = await exporter.plan(inventory, table)
        except RenderError as e:
            for problem in e.problems:
                click.echo(problem, err=True)
            return ExitCode.INPUT
        except ExportError as e:
            click.echo(f"cannot read the zones: {e}", err=True)
            return ExitCode.FAILED
        click.echo(str(plan))
        if dry_run:
            if plan.safety.unsafe and not force:
                click.echo("dry run: applying would be refused (--force to apply)")
                return ExitCode.REFUSED
            click.echo("dry run: nothing changed")
            return 0
        try:
            published = await exporter.apply(plan, force=force)
        except UnsafePlan as e:
            click.echo(f"refused: {e}", err=True)
            return ExitCode.REFUSED
        except ExportError as e:
            click.echo(f"failed: {e}", err=True)
            return ExitCode.FAILED
    if published.changed:
        created = ""
        if published.zones_created:
            created = f"; created zone(s) {', '.join(published.zones_created)}"
        click.echo(
            f"published generation {published.generation}: "
            f"{published.rrsets_changed} rrset(s) written{created}"
        )
    else:
        click.echo(f"generation {published.generation} already published: nothing written")
    return 0
