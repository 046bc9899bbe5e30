"""One worker process of `DnsWorkers`: `python -m gtm.dns.worker ADDR:PORT INDEX [--no-uvloop]`.

It reads the config and the first table from its stdin, serves them with a
`DnsServer` bound with SO_REUSEPORT, and then follows the parent's commands
(see gtm.dns.workers for the protocol). Its stdout carries only protocol
lines; logs go to stderr. When stdin closes — the parent is gone — it stops.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

import structlog

from gtm.config import load, loads, split_listen
from gtm.dns.answers import Answers
from gtm.dns.records import glue_addresses
from gtm.dns.server import DnsServer
from gtm.dns.workers import LINE_LIMIT
from policies import WeightTable

STATS_INTERVAL = 1.0  # seconds between pushed counter snapshots


async def _serve(listen: str, index: int) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    out = sys.stdout

    def emit(event: Mapping[str, Any]) -> None:
        out.write(json.dumps(event) + "\n")
        out.flush()

    line = await stdin.readline()
    if not line:
        return
    init = json.loads(line)
    spec = init["config"]
    inventory = (
        load(spec["path"]) if "path" in spec else loads(spec["text"], spec.get("name", "<config>"))
    )
    host, port = split_listen(listen)
    glue = glue_addresses(host)
    answers = Answers.build(inventory, WeightTable.from_dict(init["table"]), ns_addresses=glue)
    server = DnsServer(inventory.config.dns, answers, (host, port), reuse_port=True)

    def stats(pushed: bool = False) -> None:
        emit({"event": "stats", "pushed": pushed, **server.metrics.snapshot().to_dict()})

    async def push() -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            stats(pushed=True)

    async with server, asyncio.TaskGroup() as tasks:
        emit(
            {
                "event": "ready",
                "port": server.port,
                "generation": server.generation,
                "pid": os.getpid(),
            }
        )
        pusher = tasks.create_task(push())
        while line := await stdin.readline():
            msg = json.loads(line)
            op = msg.get("op")
            if op == "table":
                table = WeightTable.from_dict(msg["table"])
                built = await asyncio.to_thread(Answers.build, inventory, table, ns_addresses=glue)
                server.swap(built)
                emit({"event": "serving", "generation": server.generation})
            elif op == "stats":
                stats()
            elif op == "stop":
                break
        pusher.cancel()
    stats()
    emit({"event": "stopped", "index": index})


def main(argv: list[str]) -> None:
    listen, index = argv[0], int(argv[1])
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    run = asyncio.run
    if "--no-uvloop" not in argv:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            run = uvloop.run
    run(_serve(listen, index))


if __name__ == "__main__":
    main(sys.argv[1:])
