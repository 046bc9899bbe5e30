"""`gtm serve`: run one member of a region's HA pair until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from gtm.config import ConfigError
from gtm.exits import ExitCode
from gtm.logs import configure
from gtm.member import MemberRuntime


@click.command()
@click.option(
    "--config", "-c", "config_path", required=True, type=click.Path(exists=True, dir_okay=False)
)
@click.option("--region", help="The region this member runs in (default: instance.region).")
@click.option(
    "--member",
    help="This member's name within the pair (default: instance.member, else the host name).",
)
def serve(config_path: str, region: str | None, member: str | None) -> None:
    """Probe, decide, serve DNS and the API; lead the pair when elected.

    SIGHUP re-reads the config (a bad one is refused and the old one keeps
    running); SIGTERM stops writing, releases the lease and finishes
    in-flight DNS.
    """
    try:
        runtime = MemberRuntime(config_path, region=region, member=member, own_process=True)
    except ConfigError as e:
        for p in e.problems:
            click.echo(str(p), err=True)
        sys.exit(ExitCode.INPUT)
    except ValueError as e:
        click.echo(f"gtm serve: {e}", err=True)
        sys.exit(ExitCode.INPUT)
    configure(
        runtime.inventory.config.instance.log_format, member=runtime.identity, region=runtime.region
    )
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is optional
        runner = asyncio.run
    runner(_main(runtime))


async def _main(runtime: MemberRuntime) -> None:
    stop = asyncio.Event()
    reload = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
    await runtime.run(stop, reload)
