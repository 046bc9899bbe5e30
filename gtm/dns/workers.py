"""`--workers N`: N server processes on one port (SO_REUSEPORT), one table generation.

The parent starts each worker as `python -m gtm.dns.worker` and talks to it
over its stdin/stdout, one JSON document per line:

    parent -> worker   {"op": "init", "config": …, "table": …}
                       {"op": "table", "table": …}   {"op": "stats"}   {"op": "stop"}
    worker -> parent   {"event": "ready", "port": …, "generation": …, "pid": …}
                       {"event": "serving", "generation": …}
                       {"event": "stats", …snapshot…}   {"event": "stopped"}

`publish(table)` returns once every worker serves the new generation. A
worker whose stdin closes (the parent died) stops by itself, so no worker
outlives its parent. Each worker builds the new answers in a thread while
its loop keeps answering with the old ones, then swaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from gtm.config import Inventory, load, split_listen
from gtm.dns.metrics import Snapshot
from policies import WeightTable

log = structlog.get_logger("gtm.dns")

LINE_LIMIT = 256 << 20  # a table as one JSON line may be large


class DnsWorkers:
    def __init__(
        self,
        n: int,
        inventory: str | os.PathLike[str] | Inventory,
        table: WeightTable,
        listen: tuple[str, int] | None = None,
        *,
        use_uvloop: bool = True,
        timeout: float = 30.0,
    ) -> None:
        if n < 1:
            raise ValueError(f"workers must be at least 1, not {n}")
        self.n = n
        self.inventory = inventory
        self.table = table
        if listen is None:
            config = (
                inventory.config
                if isinstance(inventory, Inventory)
                else load(Path(inventory)).config
            )
            listen = split_listen(config.dns.listen)
        self.listen = listen
        self.use_uvloop = use_uvloop
        self.timeout = timeout
        self._workers: list[_Worker] = []
        self._port = listen[1]

    @property
    def port(self) -> int:
        return self._port

    @property
    def generation(self) -> int:
        """The generation every worker serves (the lowest, while a publish is under way)."""
        return min((w.generation for w in self._workers), default=self.table.generation)

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    @property
    def returncodes(self) -> list[int | None]:
        """Each worker's exit code (None while it runs)."""
        return [w.proc.returncode for w in self._workers]

    def snapshots(self) -> Mapping[str, Snapshot]:
        """The latest counters each worker pushed, by worker ("worker-0", …)."""
        return {f"worker-{w.index}": w.snapshot for w in self._workers}

    async def start(self) -> None:
        host, port = self.listen
        holders = _reserve(host, port) if port == 0 else []
        try:
            if holders:
                self._port = holders[0].getsockname()[1]
            init = {"op": "init", "config": self._config(), "table": self.table.to_dict()}
            for i in range(self.n):
                self._workers.append(await _Worker.spawn(i, host, self._port, self.use_uvloop))
            async with asyncio.timeout(self.timeout):
                for w in self._workers:
                    await w.send(init)
                for w in self._workers:
                    await w.expect("ready")
        except BaseException:
            await self.stop()
            raise
        finally:
            for s in holders:  # the workers hold the port now
                s.close()
        log.info(
            "dns.workers.start",
            port=self._port,
            workers=self.n,
            generation=self.generation,
            pids=self.pids,
        )

    async def publish(self, table: WeightTable) -> None:
        """Send `table` to every worker; return once all of them serve it."""
        msg = {"op": "table", "table": table.to_dict()}
        async with asyncio.timeout(self.timeout):
            await asyncio.gather(*(w.send(msg) for w in self._workers))
            for w in self._workers:
                while w.generation != table.generation:
                    await w.expect("serving")
        self.table = table
        log.info("dns.workers.publish", generation=table.generation, workers=self.n)

    async def stats(self) -> Mapping[str, Snapshot]:
        """Ask every worker for its counters now, and return them."""
        async with asyncio.timeout(self.timeout):
            await asyncio.gather(*(w.send({"op": "stats"}) for w in self._workers))
            for w in self._workers:
                await w.expect("stats")
        return self.snapshots()

    async def stop(self) -> None:
        workers, self._workers = self._workers, []
        await asyncio.gather(*(w.stop(grace=self.timeout) for w in workers), return_exceptions=True)
        if workers:
            log.info("dns.workers.stop", port=self._port, workers=len(workers))
        self._workers = workers  # keep the last snapshots readable

    async def __aenter__(self) -> DnsWorkers:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _config(self) -> dict[str, Any]:
        if isinstance(self.inventory, Inventory):
            return {
                "text": json.dumps(
                    self.inventory.config.model_dump(mode="json", exclude_unset=True)
                ),
                "name": self.inventory.file,
            }
        return {"path": str(Path(self.inventory).resolve())}


def _reserve(host: str, port: int) -> list[socket.socket]:
    """Pick a free port for UDP and TCP alike; the sockets keep it until the workers bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(20):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        udp.bind((host, port))
        tcp = socket.socket(family, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            tcp.bind((host, udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        return [udp, tcp]
    raise OSError(f"no port free for both UDP and TCP on {host}")


class _Worker:
    """The parent's handle on one worker process."""

    def __init__(self, index: int, proc: asyncio.subprocess.Process) -> None:
        self.index = index
        self.proc = proc
        self.generation = -1
        self.snapshot = Snapshot()
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read(), name=f"dns-worker-{index}-reader")

    @classmethod
    async def spawn(cls, index: int, host: str, port: int, use_uvloop: bool) -> _Worker:
        args = [sys.executable, "-m", "gtm.dns.worker", f"{host}:{port}", str(index)]
        if not use_uvloop:
            args.append("--no-uvloop")
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=LINE_LIMIT
        )
        return cls(index, proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            event = json.loads(line)
            if event.get("event") == "stats":
                self.snapshot = Snapshot.from_dict(event)
                self.generation = self.snapshot.generation
                if event.get("pushed"):
                    continue  # periodic: nobody waits for it
            elif "generation" in event:
                self.generation = int(event["generation"])
            await self.events.put(event)
        await self.events.put({"event": "exit", "code": await self.proc.wait()})

    async def send(self, msg: Mapping[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        await self.proc.stdin.drain()

    async def expect(self, name: str) -> dict[str, Any]:
        while True:
            event = await self.events.get()
            if event.get("event") == name:
                return event
            if event.get("event") == "exit":
                await self.events.put(event)
                raise RuntimeError(f"DNS worker {self.index} exited with code {event.get('code')}")

    async def stop(self, *, grace: float) -> None:
        try:
            if self.proc.returncode is None and self.proc.stdin is not None:
                with contextlib.suppress(ConnectionError):
                    await self.send({"op": "stop"})
                self.proc.stdin.close()
            async with asyncio.timeout(grace):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        finally:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.reader, grace)
