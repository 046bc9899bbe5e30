"""`gtm bench …`: benchmarks, each in its own module under chaos/bench/."""

import importlib

import click

# subcommand name -> module under chaos.bench exposing a click command named `command`
BENCHES = {
    "policy": "chaos.bench.policy",
    "probes": "chaos.bench.probes",
    "dns": "chaos.bench.dns",
    "dns-under-load": "chaos.bench.dns_load",
    "failover": "chaos.bench.failover",
    "config": "chaos.bench.config",
    "intent": "chaos.bench.intent",
    "accesspoints": "chaos.bench.accesspoints",
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
