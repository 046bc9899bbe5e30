"""One answer process (a worker) of `DnsWorkers` (gtm.dns.pool): `python -m gtm.dns.worker UDP_FD TCP_FD INDEX [--no-uvloop]`.

It answers on the sockets its parent bound and passed down (the same kernel
queues as its siblings'), with the inventory and the table rows the parent
sends on stdin (see `gtm.dns.channel` for the frames). A new generation is
built a few services at a time between the queries it answers (`SLICE`), so
no build holds the loop, and swapped in whole. stdout carries only frames;
logs go to stderr. When stdin closes — the parent is gone — it stops, and
with PR_SET_PDEATHSIG it dies with its parent. Where it may, it runs a few
nice steps above the member, so on a busy machine a query is answered
before the control plane's work goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import os
import pickle
import signal
import socket
import sys
import time
from collections.abc import Mapping
from typing import Any, cast

import structlog

from gtm.config import Inventory
from gtm.dns.answers import Answers
from gtm.dns.channel import Frames, read_frame
from gtm.dns.server import DnsServer
from gtm.dns.sockets import Listening
from policies import Row, WeightTable

STATS_INTERVAL = 5.0  # seconds between pushed counter snapshots (~10 ms at 4,000 services)
PRIORITY_BOOST = 5  # nice steps above the member: a busy machine schedules DNS first
SLICE = 0.002  # seconds of building before the loop answers queries again
_PR_SET_PDEATHSIG = 1

log = structlog.get_logger("gtm.dns")


class _Worker:
    """The worker's state: the inventory, the rows received, the server once built."""

    def __init__(self, listening: Listening, index: int, out: Frames) -> None:
        self.listening = listening
        self.index = index
        self.out = out
        self.inventory: Inventory | None = None
        self.glue: tuple[str, ...] = ()
        self.rows: dict[str, Mapping[str, Row]] = {}
        self.server: DnsServer | None = None

    async def build(self, generation: int, computed_at: float) -> Answers:
        """The answers for the rows received so far, built in slices between queries."""
        assert self.inventory is not None
        table = WeightTable(generation, computed_at, dict(self.rows))
        tally = None if self.server is None else self.server.answers.tally
        steps = Answers.building(self.inventory, table, ns_addresses=self.glue, tally=tally)
        deadline = time.perf_counter() + SLICE
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            if time.perf_counter() >= deadline:
                await asyncio.sleep(0)  # answer what has arrived meanwhile
                deadline = time.perf_counter() + SLICE

    async def commit(self, generation: int, computed_at: float, stack: Any) -> None:
        """Build and serve a generation. The cycle collector stays out of the way: a full
        collection over a 4,000-service generation's objects holds the loop ~200 ms (even a
        young one over a fresh build, 25-65 ms), so none runs during a build, and what
        serves is frozen (never scanned) once swapped in. A build leaves no cyclic garbage
        (measured: none), and a retired generation has no reference cycle: it is freed by
        refcounting, a slice at a time."""
        gc.disable()
        try:
            await self._commit(generation, computed_at, stack)
        finally:
            gc.freeze()
            gc.enable()

    async def _commit(self, generation: int, computed_at: float, stack: Any) -> None:
        answers = await self.build(generation, computed_at)
        if self.server is None:
            assert self.inventory is not None
            dns = self.inventory.config.dns
            self.server = DnsServer(
                dns, answers, sockets=self.listening, cache_bytes=dns.cache_bytes
            )
            await stack.enter_async_context(self.server)
            self.out.send(("ready", os.getpid(), self.server.port, generation))
        else:
            retired = self.server.answers
            self.server.swap(answers)
            self.out.send(("serving", generation))
            await _release(retired)

    def stats(self, pushed: bool) -> None:
        if self.server is not None:
            self.out.send(("stats", self.server.metrics.snapshot(), pushed), droppable=pushed)


async def _release(retired: Answers) -> None:
    """Free a retired generation's answers a thousand at a time between queries (dropped
    at once, a 4,000-service generation holds the loop ~13 ms). Nothing reads it any more."""
    entries = cast(dict[bytes, Any], retired.entries)
    del retired
    while entries:
        for _ in range(min(1000, len(entries))):
            entries.popitem()
        await asyncio.sleep(0)


async def _serve(listening: Listening, index: int) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=1 << 16)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin.buffer)
    worker = _Worker(listening, index, await Frames.pipe(sys.stdout.buffer))

    async def push() -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            worker.stats(pushed=True)

    async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as tasks:
        pusher = tasks.create_task(push())
        while (frame := await read_frame(stdin)) is not None:
            op = frame[0]
            if op == "init":
                _, pickled, worker.glue = frame
                worker.inventory = pickle.loads(pickled)  # our parent's bytes
            elif op == "rows":
                for service, rows in frame[1].items():
                    if rows is None:
                        worker.rows.pop(service, None)
                    else:
                        worker.rows[service] = rows
            elif op == "commit":
                await worker.commit(frame[1], frame[2], stack)
            elif op == "stats":
                worker.stats(pushed=False)
            elif op == "stop":
                break
        pusher.cancel()
    # the server has stopped (TCP clients got their replies): the last counters
    worker.stats(pushed=False)
    worker.out.send(("stopped", index))
    await worker.out.close()


def _die_with_parent() -> None:
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def _before_the_member() -> None:
    """Run PRIORITY_BOOST nice steps above the member where permitted (CAP_SYS_NICE, root)."""
    with contextlib.suppress(OSError):
        now = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, max(-20, now - PRIORITY_BOOST))


def main(argv: list[str]) -> None:
    udp_fd, tcp_fd, index = int(argv[0]), int(argv[1]), int(argv[2])
    _die_with_parent()
    _before_the_member()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # so does SIGTERM: the parent says when
    udp = socket.socket(fileno=udp_fd)
    tcp = socket.socket(fileno=tcp_fd)
    udp.setblocking(False)
    tcp.setblocking(False)
    listening = Listening(udp, tcp)
    run = asyncio.run
    if "--no-uvloop" not in argv:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            run = uvloop.run
    run(_serve(listening, index))


if __name__ == "__main__":
    main(sys.argv[1:])
