"""`gtm bench …`: benchmarks, each in its own module under gtm/bench/."""

import importlib

import click

# subcommand name -> module under gtm.bench exposing a click command named `command`
BENCHES = {
    "policy": "gtm.bench.policy",
    "probes": "gtm.bench.probes",
    "dns": "gtm.bench.dns",
    "dns-under-load": "gtm.bench.dns_load",
    "failover": "gtm.bench.failover",
    "config": "gtm.bench.config",
}


class _LazyBenchGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(BENCHES)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = BENCHES.get(name)
        if module is None:
            return None
        return importlib.import_module(module).command


@click.group(cls=_LazyBenchGroup)
def bench() -> None:
    """Benchmarks: gtm beside a real peer in one run, reported as ratios."""
