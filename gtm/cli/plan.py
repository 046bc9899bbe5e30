"""`gtm plan`: the weight table for a health snapshot and what-if overrides."""

from __future__ import annotations

import json
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
from gtm.cli.render import decisions_view, refusals_view, table_view
from gtm.exits import ExitCode
from gtm.what_if import what_if
from intent import refusal_to_dict


@click.command()
@config_option
@what_if_options
@click.option("--service", "-s", "services", multiple=True, help="Show only these services.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the table, decisions and refusals as JSON."
)
def plan(
    config_path: str,
    health_path: str | None,
    override_specs: tuple[str, ...],
    force: bool,
    services: tuple[str, ...],
    as_json: bool,
) -> None:
    """Print the weight table and the decisions for given health and overrides.

    "What happens if dc2 exits?": gtm plan -c estate.yaml -o exit=dc2
    Exits 3 when a guardrail refuses an override.
    """
    inventory = load_or_exit(config_path)
    health = health_or_exit(health_path, inventory)
    t = now()
    result = what_if(inventory, health, parse_overrides(override_specs, force=force, now=t), t)
    ev = result.planned
    decisions = [d for d in ev.decisions if not services or d.service in services]
    if as_json:
        doc = {
            "table": ev.table.to_dict(),
            "decisions": [d._asdict() for d in decisions],
            "refusals": [refusal_to_dict(r) for r in ev.refusals],
        }
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        console = Console()
        console.print(
            table_view(
                ev.table,
                inventory.region_names,
                old=result.baseline.table,
                services=services or None,
                title="planned weight table (clients in a region → share per target region)",
            )
        )
        if decisions:
            console.print(decisions_view(decisions))
        else:
            console.print("no change from the all-healthy table")
        if ev.refusals:
            console.print(refusals_view(ev.refusals))
    sys.exit(ExitCode.REFUSED if ev.refusals else ExitCode.OK)
