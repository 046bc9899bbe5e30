"""The `gtm` command line; each command lives in its own module, loaded when used.

Commands of gtm itself are named below by module. Commands that need the
simulated estate (`demo`, `drill`, `bench`) live on the chaos side and are
found through the `gtm.commands` entry points, so gtm never imports chaos.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util

import click

ENTRY_POINTS = "gtm.commands"

# command name -> (module under gtm.cli, attribute holding the click command)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("gtm.cli.validate", "validate"),
    "plan": ("gtm.cli.plan", "plan"),
    "dns": ("gtm.cli.dns", "dns"),
    "publish": ("gtm.cli.publish", "publish"),
    "region": ("gtm.cli.region", "region"),
    "drain": ("gtm.cli.region", "drain"),
    "history": ("gtm.cli.region", "history"),
    "override": ("gtm.cli.overrides", "override"),
    "rollout": ("gtm.cli.overrides", "rollout"),
    "status": ("gtm.cli.status", "status"),
    "explain": ("gtm.cli.explain", "explain"),
    "answer": ("gtm.cli.explain", "answer"),
    "serve": ("gtm.cli.serve", "serve"),
    "accesspoint": ("gtm.cli.accesspoint", "accesspoint"),
}


def _plugins() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINTS)}


class _Commands(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *sorted(set(_plugins()) - set(COMMANDS))]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module, attr = COMMANDS[name]
            return getattr(importlib.import_module(module), attr)
        plugin = _plugins().get(name)
        if plugin is None:
            return None
        command = plugin.load()
        if not isinstance(command, click.Command):
            raise click.ClickException(f"entry point {plugin.value!r} is not a click command")
        return command


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gtm-failover")
def main() -> None:
    """gtm: keeps global traffic right across datacenters.

    Probes every gateway VIP from every region, computes the intelligent-DNS
    weight table, serves it as DNS, and keeps Istio WorkloadEntries in line.
    """
