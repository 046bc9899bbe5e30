"""DNS answering apart from the control plane: the pool of worker processes that follow the member's table.

    async with DnsWorkers(1, inventory, table, listen=("0.0.0.0", 53)) as dns:
        await dns.publish(new_table)          # every worker serves it, or `behind` says so
        await dns.reconfigure(new_inventory)  # new names, zones, TTLs: fresh workers, no gap

The parent binds the UDP and TCP sockets (`gtm.dns.sockets`: the receive
buffer sized for bursts) and hands them to `n` worker processes
(`python -m gtm.dns.worker`), which all read the same kernel queues. The
member's own loop — probes, evaluation, peer pulls, reloads, reconcilers,
the API — never answers a query, so none of it can delay one.

- A new table goes to every worker as the rows that changed since what that
  worker was sent, in chunks (`gtm.dns.channel`); the worker builds the new
  generation between queries and swaps it whole. `publish()` waits up to
  `deliver_within` for every worker to serve it; past that the delivery goes
  on in the background, the workers keep serving the last generation they
  built, and `behind()` (the member's `/readyz` and
  `gtm_dns_behind_seconds`) says for how long.
- A config change starts a fresh worker per worker with the new inventory
  and the current table, and retires the old one once the new one serves:
  both read the same sockets meanwhile, so no query is lost.
- A worker that exits on its own is restarted with the current inventory and
  table (`gtm_dns_worker_restarts_total`), after a back-off if it keeps dying.
- `stop()` tells every worker to stop: it stops reading, answers what its TCP
  clients already sent, and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gtm.config import Inventory
from gtm.dns.channel import CHUNK_SERVICES, read_frame, write_frame
from gtm.dns.metrics import Snapshot
from gtm.dns.records import glue_addresses
from gtm.dns.sockets import UDP_RECEIVE_BUFFER, Listening, bind
from policies import Row, WeightTable

log = structlog.get_logger("gtm.dns")

RESTART_BACKOFF = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0)  # seconds before restart k (then the last)
STABLE_AFTER = 30.0  # a worker that ran this long starts the back-off over


class WorkerFailed(RuntimeError):
    """An answer process exited before it served, or did not answer in time."""


class DnsWorkers:
    def __init__(
        self,
        n: int,
        inventory: Inventory,
        table: WeightTable,
        listen: tuple[str, int],
        *,
        use_uvloop: bool = True,
        timeout: float = 60.0,
        deliver_within: float = 2.0,
        receive_buffer: int = UDP_RECEIVE_BUFFER,
        python: str = sys.executable,
    ) -> None:
        if n < 1:
            raise ValueError(f"workers must be at least 1, not {n}")
        self.n = n
        self.inventory = inventory
        # what every worker is sent: pickled once (here at start, by the reload child after)
        self._pickled = pickle.dumps(inventory, protocol=pickle.HIGHEST_PROTOCOL)
        self.table = table
        self.listen = listen
        self.use_uvloop = use_uvloop
        self.timeout = timeout
        self.deliver_within = deliver_within
        self.receive_buffer = receive_buffer
        self.python = python
        self.restarts = 0
        self._listening: Listening | None = None
        self._workers: list[_Worker] = []
        self._retired: dict[int, Snapshot] = {}  # counters of workers replaced, by index
        self._published_at = time.monotonic()
        self._changed = asyncio.Condition()
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    # -- what the member reads ---------------------------------------------------------

    @property
    def port(self) -> int:
        return 0 if self._listening is None else self._listening.port

    @property
    def listening(self) -> Listening | None:
        return self._listening

    @property
    def generation(self) -> int:
        """The generation every worker serves (the lowest, while a delivery is under way)."""
        return min((w.generation for w in self._workers), default=-1)

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    def current(self) -> bool:
        """Every worker runs and serves the newest table published."""
        return bool(self._workers) and all(
            w.generation == self.table.generation and not w.exited.is_set() for w in self._workers
        )

    def behind(self) -> float:
        """Seconds since the newest table was published while a worker does not serve it yet."""
        return 0.0 if self.current() else time.monotonic() - self._published_at

    def snapshots(self) -> Mapping[str, Snapshot]:
        """The counters of each worker slot ("worker-0", …), those of replaced workers included."""
        out: dict[str, Snapshot] = {}
        for w in self._workers:
            retired = self._retired.get(w.index, Snapshot())
            live = w.snapshot
            total = retired + live
            out[f"worker-{w.index}"] = Snapshot(
                total.queries, total.answers, w.generation, total.errors
            )
        return out

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._listening = bind(*self.listen, receive_buffer=self.receive_buffer)
        try:
            self._workers = list(await asyncio.gather(*(self._spawn(i) for i in range(self.n))))
        except BaseException:
            await self.stop()
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="dns-workers-supervisor")
        log.info(
            "dns.workers.start",
            port=self.port,
            workers=self.n,
            generation=self.generation,
            pids=self.pids,
            receive_buffer=self._listening.receive_buffer,
        )

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        workers = self._workers
        await asyncio.gather(*(w.stop(grace=self.timeout) for w in workers), return_exceptions=True)
        if self._listening is not None:
            log.info("dns.workers.stop", port=self._listening.port, workers=len(workers))
            self._listening.close()
            self._listening = None

    async def __aenter__(self) -> DnsWorkers:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- changes ---------------------------------------------------------------------------

    async def publish(self, table: WeightTable) -> bool:
        """Send `table` to every worker; True once all serve it, False after `deliver_within`.

        On False the workers keep serving what they built last and the
        delivery goes on; `behind()` tells for how long.
        """
        if table.generation != self.table.generation or table != self.table:
            self.table = table
            self._published_at = time.monotonic()
            for w in self._workers:
                w.wake()
        try:
            async with asyncio.timeout(self.deliver_within):
                await self._until(self.current)
        except TimeoutError:
            log.warning(
                "dns.workers.behind",
                generation=table.generation,
                serving={f"worker-{w.index}": w.generation for w in self._workers},
            )
            return False
        return True

    async def wait_current(self) -> None:
        """Return once every worker serves the newest table (a restarted one included)."""
        await self._until(self.current)

    async def reconfigure(self, inventory: Inventory, pickled: bytes | None = None) -> None:
        """Serve `inventory` (names, zones, TTLs): a fresh worker replaces each one in turn.

        `pickled`: the inventory already pickled (the reload child's bytes), so this
        loop does not pickle it (seconds at tens of thousands of services).
        A replacement that fails to serve leaves the old worker answering and
        raises `WorkerFailed`.
        """
        self.inventory = inventory
        self._pickled = (
            pickled
            if pickled is not None
            else pickle.dumps(inventory, protocol=pickle.HIGHEST_PROTOCOL)
        )
        for i, old in enumerate(list(self._workers)):
            new = await self._spawn(old.index)
            self._workers[i] = new
            new.wake()  # a table published while it started
            self._retire(old)
            await old.stop(grace=self.timeout)
            log.info("dns.worker.replaced", worker=old.index, old=old.proc.pid, new=new.proc.pid)

    async def stats(self) -> Mapping[str, Snapshot]:
        """Ask every worker for its counters now, and return them."""
        async with asyncio.timeout(self.timeout):
            await asyncio.gather(*(w.fresh_stats() for w in self._workers))
        return self.snapshots()

    # -- the workers -------------------------------------------------------------------------

    async def _spawn(self, index: int) -> _Worker:
        """A fresh worker for the current inventory (the table follows as rows)."""
        assert self._listening is not None
        w = await _Worker.spawn(
            index, self._listening, self.python, self.use_uvloop, self._changed, self
        )
        try:
            await w.send(("init", self._pickled, tuple(glue_addresses(self.listen[0]))))
            w.wake()
            async with asyncio.timeout(self.timeout):
                await w.ready.wait()
        except BaseException:
            await w.stop(grace=1.0)
            raise
        if w.proc.returncode is not None or w.failed:
            raise WorkerFailed(f"DNS worker {index} exited with code {w.proc.returncode}")
        return w

    def _retire(self, w: _Worker) -> None:
        self._retired[w.index] = self._retired.get(w.index, Snapshot()) + w.snapshot

    async def _until(self, done: Any) -> None:
        async with self._changed:
            await self._changed.wait_for(done)

    async def _supervise(self) -> None:
        """Restart a worker that exits on its own, with the current inventory and table."""
        failures: dict[int, int] = {}
        while not self._stopping:
            exits = {asyncio.ensure_future(w.exited.wait()): w for w in self._workers}
            done, pending = await asyncio.wait(exits, return_when=asyncio.FIRST_COMPLETED)
            for f in pending:
                f.cancel()
            for f in done:
                dead = exits[f]
                if dead not in self._workers:
                    continue  # replaced by reconfigure()
                ran = time.monotonic() - dead.started
                k = 0 if ran >= STABLE_AFTER else failures.get(dead.index, 0)
                failures[dead.index] = k + 1
                delay = RESTART_BACKOFF[min(k, len(RESTART_BACKOFF) - 1)]
                log.error(
                    "dns.worker.exited",
                    worker=dead.index,
                    pid=dead.proc.pid,
                    code=dead.proc.returncode,
                    restart_in=delay,
                )
                self._retire(dead)
                await asyncio.sleep(delay)
                try:
                    new = await self._spawn(dead.index)
                except (WorkerFailed, TimeoutError, OSError) as e:
                    log.error("dns.worker.restart_failed", worker=dead.index, error=str(e))
                    continue  # the dead one stays listed: the next round tries again
                self._workers[self._workers.index(dead)] = new
                new.wake()  # a table published while it started
                self.restarts += 1
                log.info("dns.worker.restarted", worker=dead.index, pid=new.proc.pid)
                async with self._changed:
                    self._changed.notify_all()


class _Worker:
    """The parent's handle on one answer process: its pipe, what it was sent, what it serves."""

    def __init__(
        self,
        index: int,
        proc: asyncio.subprocess.Process,
        changed: asyncio.Condition,
        pool: DnsWorkers,
    ) -> None:
        self.index = index
        self.proc = proc
        self.pool = pool
        self.started = time.monotonic()
        self.generation = -1  # the generation it serves
        self.snapshot = Snapshot()
        self.failed = False
        self.ready = asyncio.Event()
        self.exited = asyncio.Event()
        self._changed = changed
        self._stats = asyncio.Event()
        self._want = asyncio.Event()
        self._sent: dict[str, Mapping[str, Row]] = {}
        self._sent_generation: int | None = None
        self._reader = asyncio.create_task(self._read(), name=f"dns-worker-{index}-reader")
        self._sender = asyncio.create_task(self._deliver(), name=f"dns-worker-{index}-sender")

    @classmethod
    async def spawn(
        cls,
        index: int,
        listening: Listening,
        python: str,
        use_uvloop: bool,
        changed: asyncio.Condition,
        pool: DnsWorkers,
    ) -> _Worker:
        udp, tcp = listening.fds()
        args = [python, "-m", "gtm.dns.worker", str(udp), str(tcp), str(index)]
        if not use_uvloop:
            args.append("--no-uvloop")
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            pass_fds=(udp, tcp),
            limit=1 << 20,
        )
        return cls(index, proc, changed, pool)

    def wake(self) -> None:
        self._want.set()

    async def send(self, frame: tuple[Any, ...]) -> None:
        assert self.proc.stdin is not None
        await write_frame(self.proc.stdin, frame)  # type: ignore[arg-type]

    async def _deliver(self) -> None:
        """Send the rows that changed since what this worker was sent, then commit."""
        try:
            while True:
                await self._want.wait()
                self._want.clear()
                table = self.pool.table
                changed: dict[str, Mapping[str, Row] | None] = {}
                for service, rows in table.rows.items():
                    sent = self._sent.get(service)
                    if sent is not rows and sent != rows:
                        changed[service] = rows
                for service in self._sent.keys() - table.rows.keys():
                    changed[service] = None
                if not changed and table.generation == self._sent_generation:
                    continue
                items = list(changed.items())
                for i in range(0, len(items), CHUNK_SERVICES):
                    await self.send(("rows", dict(items[i : i + CHUNK_SERVICES])))
                    await asyncio.sleep(0)  # a large table: other work between chunks
                await self.send(("commit", table.generation, table.computed_at))
                self._sent = dict(table.rows)
                self._sent_generation = table.generation
        except (ConnectionError, RuntimeError):
            return  # the worker is gone: the supervisor restarts it

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            while (frame := await read_frame(self.proc.stdout)) is not None:
                event = frame[0]
                if event == "stats":
                    self.snapshot = frame[1]
                    if not frame[2]:
                        self._stats.set()
                elif event in ("ready", "serving"):
                    self.generation = int(frame[-1])
                    self.ready.set()
                    async with self._changed:
                        self._changed.notify_all()
        except (ValueError, EOFError) as e:
            log.error("dns.worker.bad_frame", worker=self.index, error=str(e))
            self.proc.kill()
        await self.proc.wait()
        self.failed = not self.ready.is_set()
        self.ready.set()  # nobody waits forever for a worker that is gone
        self.exited.set()
        self._sender.cancel()
        async with self._changed:
            self._changed.notify_all()

    async def fresh_stats(self) -> None:
        self._stats.clear()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.send(("stats",))
            await self._stats.wait()

    async def stop(self, *, grace: float) -> None:
        try:
            if self.proc.returncode is None and self.proc.stdin is not None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.send(("stop",))
                self.proc.stdin.close()
            async with asyncio.timeout(grace):
                await self.exited.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        finally:
            self._sender.cancel()
            for task in (self._reader, self._sender):
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(task, grace)


class WorkersCollector(Collector):
    """The answer processes' own health, read from the parent when Prometheus scrapes."""

    def __init__(self, pool: DnsWorkers, prefix: str = "gtm_dns") -> None:
        self._pool = pool
        self._prefix = prefix

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterable[Metric]:
        pool, p = self._pool, self._prefix
        workers = GaugeMetricFamily(f"{p}_workers", "DNS answer processes running")
        workers.add_metric([], sum(1 for w in pool._workers if w.proc.returncode is None))
        restarts = CounterMetricFamily(
            f"{p}_worker_restarts", "DNS answer processes restarted after they exited"
        )
        restarts.add_metric([], pool.restarts)
        behind = GaugeMetricFamily(
            f"{p}_behind_seconds",
            "How long the answer processes have not served the member's newest table (0: current)",
        )
        behind.add_metric([], pool.behind())
        out: list[Metric] = [workers, restarts, behind]
        listening = pool.listening
        if listening is not None:
            buffer = GaugeMetricFamily(
                f"{p}_udp_receive_buffer_bytes", "The DNS UDP socket's receive buffer, as granted"
            )
            buffer.add_metric([], listening.receive_buffer)
            drops = CounterMetricFamily(
                f"{p}_udp_receive_drops",
                "UDP queries the kernel dropped because the DNS socket's buffer was full",
            )
            drops.add_metric([], listening.drops())
            out += [buffer, drops]
        return out
