"""`python -m chaos.kubesim --listen 127.0.0.1:PORT [--state FILE]`: serve until SIGTERM.

Prints the server's URL on one line on stdout once it accepts connections
(logs go to stderr), so a parent process can read where to connect.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import structlog

from chaos.kubesim.sim import KubeSim


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos.kubesim", description=__doc__)
    parser.add_argument(
        "--listen", type=_listen, default=("127.0.0.1", 0), help="HOST:PORT (port 0: any free one)"
    )
    parser.add_argument("--state", help="load this snapshot on start, save it on shutdown")
    parser.add_argument("--history", type=int, default=1000, help="watch events kept for resuming")
    parser.add_argument(
        "--bookmark-interval", type=float, default=60.0, help="seconds between bookmarks"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for uids and generated names")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    host, port = args.listen
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sim = KubeSim(
        host,
        port,
        history=args.history,
        bookmark_interval=args.bookmark_interval,
        state=args.state,
        seed=args.seed,
    )
    async with sim:
        print(sim.url, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
