"""`gtm dns serve`: serve the table `gtm plan` computes, as authoritative DNS, on its own.

An operator checks the answers before the service runs:

    gtm dns serve -c estate.yaml -o exit=dc2 --listen 127.0.0.1:5353 &
    dig @127.0.0.1 -p 5353 -b 127.0.2.1 foo.example.com
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import click

from gtm.cli.options import (
    config_option,
    health_or_exit,
    load_or_exit,
    now,
    parse_overrides,
    what_if_options,
)
from gtm.config import Inventory
from gtm.dns import Answers, DnsServer, DnsWorkers
from gtm.dns.records import glue_addresses
from gtm.dns.sockets import bind
from gtm.what_if import what_if
from policies import WeightTable


@click.group()
def dns() -> None:
    """The embedded authoritative DNS server."""


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not ADDR:PORT", param_hint="--listen") from None
    if not sep or not 0 <= number <= 65535:
        raise click.BadParameter(f"{value!r} is not ADDR:PORT", param_hint="--listen")
    return host, number


@dns.command()
@config_option
@what_if_options
@click.option(
    "--listen",
    "-l",
    "listen_spec",
    help="ADDR:PORT to serve on (default: dns.listen of the config; port 0 picks a free one).",
)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(1, 64),
    help="Answer processes sharing the listening sockets (default: dns.workers of the config).",
)
@click.option("--uvloop/--no-uvloop", "use_uvloop", default=True, help="Use uvloop when installed.")
def serve(
    config_path: str,
    health_path: str | None,
    override_specs: tuple[str, ...],
    force: bool,
    listen_spec: str | None,
    workers: int | None,
    use_uvloop: bool,
) -> None:
    """Serve the weight table of `gtm plan` (same --health and --override) over UDP and TCP.

    Prints one line when it answers ("serving generation G … on ADDR:PORT"),
    and runs until interrupted (SIGINT or SIGTERM).
    """
    inventory = load_or_exit(config_path)
    health = health_or_exit(health_path, inventory)
    t = now()
    planned = what_if(
        inventory, health, parse_overrides(override_specs, force=force, now=t), t
    ).planned
    for r in planned.refusals:
        click.echo(f"refused: {r.override_id}: {r.rule}: {r.message}", err=True)
    listen = _listen(listen_spec or inventory.config.dns.listen)
    n = workers or inventory.config.dns.workers
    _run(_serve(inventory, planned.table, listen, n, use_uvloop), use_uvloop)


def _run(main: Coroutine[Any, Any, None], use_uvloop: bool) -> None:
    run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            run = uvloop.run
    run(main)


async def _serve(
    inventory: Inventory, table: WeightTable, listen: tuple[str, int], n: int, use_uvloop: bool
) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    services = len(inventory.estate.services)
    dns = inventory.config.dns
    if n == 1:
        answers = Answers.build(inventory, table, ns_addresses=glue_addresses(listen[0]))
        sockets = bind(*listen, receive_buffer=dns.udp_receive_buffer, reuse_port=False)
        server = DnsServer(dns, answers, sockets=sockets, cache_bytes=dns.cache_bytes)
        async with server:
            _ready(table.generation, services, listen[0], server.port, n)
            await stopping.wait()
    else:
        pool = DnsWorkers(
            n,
            inventory,
            table,
            listen,
            use_uvloop=use_uvloop,
            receive_buffer=dns.udp_receive_buffer,
        )
        async with pool:
            _ready(table.generation, services, listen[0], pool.port, n)
            await stopping.wait()


def _ready(generation: int, services: int, host: str, port: int, n: int) -> None:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    workers = "1 process" if n == 1 else f"{n} worker processes"
    click.echo(
        f"serving generation {generation} of {services} services on {where} (udp+tcp, {workers})"
    )
    sys.stdout.flush()
