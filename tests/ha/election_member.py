"""One member of a pair as a process, for the multi-process tests (spawned, so importable).

It campaigns on a FileLease and, every 5 ms while `is_leader()`, appends
`<CLOCK_MONOTONIC> <name> <epoch>` to its journal — what a write would do.
SIGTERM stops the writer, releases the lease and exits.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import TextIO

from gtm.ha import ElectionSettings, Elector, FileLease


def main(path: str, name: str, journal: str, timings: dict[str, float]) -> None:
    with open(journal, "a", buffering=1, encoding="utf-8") as out:
        asyncio.run(serve(path, name, out, timings))


async def serve(path: str, name: str, out: TextIO, timings: dict[str, float]) -> None:
    elector = Elector(FileLease(path), ElectionSettings(name, address=f"http://{name}", **timings))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with asyncio.TaskGroup() as tasks:
        run = tasks.create_task(elector.run())
        write = tasks.create_task(record(elector, name, out))
        await stop.wait()
        write.cancel()
        await elector.release()
        await run  # ends by itself once released


async def record(elector: Elector, name: str, out: TextIO) -> None:
    while True:
        if elector.is_leader():
            out.write(f"{time.monotonic()} {name} {elector.require_leader()}\n")
        await asyncio.sleep(0.005)
