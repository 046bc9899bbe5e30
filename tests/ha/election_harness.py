"""Test doubles and drivers for the election tests: an in-memory lease, a journal of
would-be writes, a TCP relay that can hang, and a member running in its own thread."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace

from gtm.ha import ElectionSettings, Elector, LeaseBackend, LeaseConflict, LeaseRecord


class MemoryLease:
    """A lease in memory with compare-and-swap; `fail` makes every call raise, `hang` block."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.fail: Exception | None = None
        self.hang = False
        self.writes = 0

    async def _gate(self) -> None:
        if self.fail is not None:
            raise self.fail
        if self.hang:
            await asyncio.Event().wait()

    async def get(self) -> LeaseRecord | None:
        await self._gate()
        return self.record

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        await self._gate()
        if self.record is not None:
            raise LeaseConflict("exists")
        return self._store(record, 1)

    async def update(self, record: LeaseRecord, expected_version: str) -> LeaseRecord:
        await self._gate()
        if self.record is None or self.record.version != expected_version:
            raise LeaseConflict("changed")
        return self._store(record, int(self.record.version) + 1)

    def _store(self, record: LeaseRecord, version: int) -> LeaseRecord:
        self.writes += 1
        self.record = replace(record, version=str(version))
        return self.record


@dataclass(frozen=True)
class Entry:
    at: float  # time.monotonic() (system-wide CLOCK_MONOTONIC)
    member: str
    epoch: int


class Journal:
    """Every `every` seconds each member does what a write does first: ask `require_leader()`."""

    def __init__(self, electors: dict[str, Elector], every: float = 0.005) -> None:
        self.electors = electors
        self.every = every
        self.entries: list[Entry] = []

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every)

    def sample(self) -> None:
        now = time.monotonic()
        for name, elector in self.electors.items():
            if elector.is_leader():
                self.entries.append(Entry(now, name, elector.require_leader()))

    def of(self, member: str) -> list[Entry]:
        return [e for e in self.entries if e.member == member]


def assert_one_writer_at_a_time(entries: list[Entry]) -> None:
    """Writes never overlap: ordered by time, the epoch never goes back and names one member."""
    ordered = sorted(entries, key=lambda e: (e.at, e.epoch))
    owner: dict[int, str] = {}
    for before, after in itertools.pairwise(ordered):
        assert after.epoch >= before.epoch, f"epoch went back: {before} then {after}"
        if after.at == before.at:
            assert after.member == before.member, f"two leaders at once: {before}, {after}"
    for entry in ordered:
        assert owner.setdefault(entry.epoch, entry.member) == entry.member, entry


class Pair:
    """Electors campaigning together, with a journal; leaving cancels every task."""

    def __init__(self, electors: dict[str, Elector]) -> None:
        self.electors = electors
        self.journal = Journal(electors)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._journal_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Pair:
        for name, elector in self.electors.items():
            self.tasks[name] = asyncio.create_task(elector.run(), name=f"elector-{name}")
        self._journal_task = asyncio.create_task(self.journal.run(), name="journal")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.journal.sample()
        tasks = [*self.tasks.values(), *([self._journal_task] if self._journal_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def kill(self, name: str) -> None:
        """The member dies: its loop stops, nothing is released."""
        task = self.tasks[name]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    def leaders(self) -> list[str]:
        return [name for name, e in self.electors.items() if e.is_leader()]

    async def wait_leader(self, within: float, *, other_than: str | None = None) -> str:
        async with asyncio.timeout(within):
            while True:
                leaders = [n for n in self.leaders() if n != other_than]
                if leaders:
                    return leaders[0]
                await asyncio.sleep(0.002)


async def eventually(check: Callable[[], bool], within: float, every: float = 0.005) -> None:
    """Poll `check` (state of other threads and processes, not an Event) until true."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - nothing to await: the state is elsewhere
            await asyncio.sleep(every)


class FreezableProxy:
    """A TCP relay to an API server: `freeze()` stops passing bytes (a hung API), `thaw()` resumes."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FreezableProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    def freeze(self) -> None:
        self._open.clear()

    def thaw(self) -> None:
        self._open.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                await self._open.wait()
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()


class ThreadedMember:
    """An elector and a journal writer on their own event loop in their own thread.

    `freeze(seconds)` blocks that loop — nothing of the member runs, time goes
    on — the way SIGSTOP freezes a process; then it carries on where it was.
    """

    def __init__(
        self,
        name: str,
        backend: Callable[[], AbstractAsyncContextManager[LeaseBackend]],
        settings: ElectionSettings,
        entries: list[Entry],
    ) -> None:
        self.name = name
        self._backend = backend
        self._settings = settings
        self._entries = entries
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.elector: Elector | None = None
        self._thread = threading.Thread(target=self._main, name=f"member-{name}", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError(f"member {self.name} did not start")

    def freeze(self, seconds: float) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(time.sleep, seconds)

    async def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.to_thread(self._thread.join, 10)
        if self.error is not None:
            raise self.error

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:
            self.error = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self._backend() as backend:
            self.elector = Elector(backend, self._settings)
            async with asyncio.TaskGroup() as tasks:
                run = tasks.create_task(self.elector.run())
                write = tasks.create_task(self._write())
                self._ready.set()
                await self._stop.wait()
                run.cancel()
                write.cancel()

    async def _write(self) -> None:
        assert self.elector is not None
        while True:
            if self.elector.is_leader():
                self._entries.append(
                    Entry(time.monotonic(), self.name, self.elector.require_leader())
                )
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def borrowed(backend: LeaseBackend) -> AsyncIterator[LeaseBackend]:
    yield backend
