"""The simulated VIPs as a process: `python -m chaos.estate.vips --config FILE --control HOST:PORT`.

Serves every VIP of the estate file (see `chaos.estate.farm.VipFarm`) and the
control API (`chaos.estate.vip_control`) on `--control`. Prints the control
URL on one line on stdout once every VIP listens (logs go to stderr), and
stops cleanly on SIGTERM or SIGINT. Exits 2 on a bad config, 1 when a VIP or
the control port cannot be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys

import structlog
from aiohttp import web

from chaos.estate.farm import UnknownRegion, UnknownVip, VipFarm
from chaos.estate.fault import Fault
from chaos.estate.vip_control import VipControl
from gtm.config import ConfigError, load, split_listen

__all__ = ["Fault", "UnknownRegion", "UnknownVip", "VipControl", "VipFarm", "main", "serve"]

log = structlog.get_logger(__name__)


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return split_listen(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos.estate.vips", description=__doc__)
    parser.add_argument("--config", required=True, help="the estate file whose VIPs to serve")
    parser.add_argument(
        "--control",
        type=_listen,
        default=("127.0.0.1", 0),
        help="HOST:PORT of the control API (port 0: any free one)",
    )
    return parser.parse_args(argv)


async def serve(farm: VipFarm, host: str, port: int, stop: asyncio.Event) -> None:
    """Run `farm` and its control API on host:port until `stop` is set."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    runner = web.AppRunner(VipControl(farm).application(), handle_signals=False, access_log=None)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        await runner.setup()
        async with farm:
            await web.SockSite(runner, sock).start()
            bound = sock.getsockname()[1]
            netloc = f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"
            print(f"http://{netloc}", flush=True)
            log.info("vips.control", url=f"http://{netloc}")
            await stop.wait()
    finally:
        await runner.cleanup()
        sock.close()


async def _main(args: argparse.Namespace) -> int:
    try:
        inventory = load(args.config)
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    host, port = args.control
    try:
        await serve(VipFarm(inventory), host, port, stop)
    except OSError as error:
        print(f"cannot serve the VIPs: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    return asyncio.run(_main(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
