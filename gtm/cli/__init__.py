"""The `gtm` command line; each command lives in its own module, loaded when used."""

from __future__ import annotations

import importlib
import importlib.util

import click

# command name -> (module under gtm.cli, attribute holding the click command)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("gtm.cli.validate", "validate"),
    "plan": ("gtm.cli.plan", "plan"),
    "dns": ("gtm.cli.dns", "dns"),
    "publish": ("gtm.cli.publish", "publish"),
    "region": ("gtm.cli.region", "region"),
    "drain": ("gtm.cli.region", "drain"),
    "history": ("gtm.cli.region", "history"),
    "status": ("gtm.cli.status", "status"),
    "serve": ("gtm.cli.serve", "serve"),
    "demo": ("gtm.cli.demo", "demo"),
    "drill": ("gtm.cli.drill", "drill"),
    "bench": ("gtm.cli.bench", "bench"),
}


class _Commands(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n, (m, _) in COMMANDS.items() if importlib.util.find_spec(m) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        if importlib.util.find_spec(module) is None:
            return None
        return getattr(importlib.import_module(module), attr)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gtm-failover")
def main() -> None:
    """gtm: keeps global traffic right across datacenters.

    Probes every gateway VIP from every region, computes the intelligent-DNS
    weight table, serves it as DNS, and keeps Istio WorkloadEntries in line.
    """
