"""Answer processes: they share the parent's sockets, follow its tables and configs, and
answer while the parent's own loop is busy."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import struct
import threading
import time
import weakref

import dns.asyncquery
import dns.edns
import dns.message
import dns.query
import pytest
from dns_estate import ESTATE, planned, reshaped

from gtm.config import Inventory, loads
from gtm.dns import Answers, DnsWorkers
from gtm.dns.channel import Frames, read_frame
from gtm.dns.sockets import bind, drops
from gtm.dns.wire import responder
from policies import WeightTable


async def soa_serials(port: int, n: int) -> list[int]:
    """SOA serials (= generations) seen by n queries, each from a fresh source port."""

    async def one() -> int:
        q = dns.message.make_query("example.com", "SOA")
        r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=3)
        return int(r.answer[0][0].serial)

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def local_answer(port: int, source: str = "127.0.3.4") -> str:
    r = await dns.asyncquery.udp(
        dns.message.make_query("local.example.com", "A"),
        "127.0.0.1",
        port=port,
        source=source,
        timeout=3,
    )
    return str(r.answer[0][0].address)


def without_dc3(table: WeightTable, generation: int) -> WeightTable:
    return reshaped(table, generation, lambda vip, s: 0 if vip == "local/dc3/127.0.3.10:443" else s)


async def test_workers_share_the_sockets_and_serve_every_generation(inventory: Inventory) -> None:
    table = planned(inventory)
    async with DnsWorkers(2, inventory, table, ("127.0.0.1", 0), use_uvloop=False) as pool:
        assert pool.port > 0 and len(set(pool.pids)) == 2
        if os.geteuid() == 0:  # where permitted, answering is scheduled before the member
            mine = os.getpriority(os.PRIO_PROCESS, 0)
            assert all(os.getpriority(os.PRIO_PROCESS, p) < mine for p in pool.pids)
        assert pool.generation == table.generation and pool.current()
        assert set(await soa_serials(pool.port, 40)) == {table.generation}
        assert await local_answer(pool.port) == "127.0.3.10"

        # Generation 7 with local's dc3 IPv4 VIP down: every worker serves it.
        assert await pool.publish(without_dc3(table, 7))
        assert pool.generation == 7 and pool.behind() == 0.0
        assert set(await soa_serials(pool.port, 40)) == {7}
        for _ in range(5):
            assert await local_answer(pool.port) != "127.0.3.10"

        stats = await pool.stats()
        assert set(stats) == {"worker-0", "worker-1"}
        assert sum(s.total for s in stats.values()) == 40 + 1 + 40 + 5
        assert all(s.generation == 7 for s in stats.values())
        pids = pool.pids
    for pid in pids:  # every worker has exited
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def blocking_answers(port: int, n: int, out: list[float]) -> None:
    """n queries from a thread with a blocking socket; each latency goes to `out`."""
    q = dns.message.make_query("foo.example.com", "A")
    for _ in range(n):
        t = time.perf_counter()
        dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
        out.append(time.perf_counter() - t)


async def test_answers_do_not_wait_for_a_busy_parent(inventory: Inventory) -> None:
    """The parent's loop held for 1.5 s (an evaluation, a reload): queries are answered anyway."""
    async with DnsWorkers(1, inventory, planned(inventory), ("127.0.0.1", 0)) as pool:
        latencies: list[float] = []
        asker = threading.Thread(target=blocking_answers, args=(pool.port, 50, latencies))
        asker.start()
        time.sleep(1.5)  # noqa: ASYNC251 - the point: the parent's loop does nothing else
        asker.join(10)
        assert len(latencies) == 50
        assert max(latencies) < 1.0  # a query waiting on the parent would take 1.5 s


async def test_a_new_config_is_served_by_fresh_workers_without_a_gap(
    inventory: Inventory,
) -> None:
    table = planned(inventory)
    more = loads(
        ESTATE.replace("BIG_IPS", '"fd00:1::1"').replace(
            "  - name: deep\n",
            "  - name: new\n    fqdn: new.example.com\n    vips:\n"
            "      dc1: [{address: 127.0.1.77}]\n  - name: deep\n",
        ),
        "estate-v2.yaml",
    )
    async with DnsWorkers(1, inventory, table, ("127.0.0.1", 0)) as pool:
        old = pool.pids
        lost: list[int] = []
        stop = threading.Event()

        def ask() -> None:
            q = dns.message.make_query("foo.example.com", "A")
            while not stop.is_set():
                try:
                    dns.query.udp(q, "127.0.0.1", port=pool.port, timeout=1)
                except dns.exception.Timeout:
                    lost.append(1)

        asker = threading.Thread(target=ask)
        asker.start()
        try:
            await pool.reconfigure(more)
            await pool.publish(planned(more))
        finally:
            stop.set()
            await asyncio.to_thread(asker.join, 5)
        assert pool.pids != old and not lost
        r = await dns.asyncquery.udp(
            dns.message.make_query("new.example.com", "A"), "127.0.0.1", port=pool.port, timeout=3
        )
        assert r.answer[0][0].address == "127.0.1.77"


async def test_a_worker_that_dies_is_restarted_with_the_newest_table(
    inventory: Inventory,
) -> None:
    table = planned(inventory)
    async with DnsWorkers(1, inventory, table, ("127.0.0.1", 0)) as pool:
        [pid] = pool.pids
        assert await pool.publish(without_dc3(table, 5))
        os.kill(pid, signal.SIGKILL)
        async with asyncio.timeout(30):
            while pool.pids == [pid]:  # noqa: ASYNC110 - the pool has no event for "replaced"
                await asyncio.sleep(0.05)
            await pool.wait_current()
        assert pool.restarts == 1 and pool.generation == 5
        assert set(await soa_serials(pool.port, 10)) == {5}
        assert await local_answer(pool.port) != "127.0.3.10"


async def test_a_worker_that_cannot_keep_up_is_reported_behind(inventory: Inventory) -> None:
    """A paused worker keeps its generation; `publish` gives up after its bound and says so."""
    table = planned(inventory)
    async with DnsWorkers(1, inventory, table, ("127.0.0.1", 0), deliver_within=0.3) as pool:
        [pid] = pool.pids
        os.kill(pid, signal.SIGSTOP)
        try:
            assert not await pool.publish(without_dc3(table, 9))
            assert pool.generation == table.generation and pool.behind() > 0.2
        finally:
            os.kill(pid, signal.SIGCONT)
        async with asyncio.timeout(10):
            await pool.wait_current()
        assert pool.generation == 9 and pool.behind() == 0.0


def test_building_in_steps_gives_the_same_answers(inventory: Inventory) -> None:
    table = planned(inventory)
    steps = Answers.building(inventory, table)
    n = 0
    while True:
        try:
            next(steps)
            n += 1
        except StopIteration as done:
            stepped: Answers = done.value
            break
    whole = Answers.build(inventory, table)
    assert n > len(inventory.estate.services)  # a step per service, and more
    assert stepped.entries.keys() == whole.entries.keys()
    assert stepped.nodes == whole.nodes and stepped.generation == whole.generation


def test_the_receive_buffer_is_sized_and_its_drops_are_counted() -> None:
    listening = bind("127.0.0.1", 0, receive_buffer=1 << 20)
    try:
        assert listening.receive_buffer >= 1 << 20
        assert listening.drops() == 0
    finally:
        listening.close()
    # A tiny buffer nobody reads: the kernel drops, and the counter says how many.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as full:
        full.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        full.bind(("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(500):
                sender.sendto(struct.pack("!H", 0) + b"x" * 40, full.getsockname())
        assert drops(full) > 400


async def test_stop_lets_a_tcp_query_in_flight_finish(inventory: Inventory) -> None:
    pool = DnsWorkers(1, inventory, planned(inventory), ("127.0.0.1", 0))
    await pool.start()
    port = pool.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    wire = dns.message.make_query("foo.example.com", "A").to_wire()
    data = struct.pack("!H", len(wire)) + wire
    writer.write(data[:7])  # half a query is in flight when the member stops
    await writer.drain()
    await asyncio.sleep(0.2)
    stopping = asyncio.create_task(pool.stop())
    await asyncio.sleep(0.2)
    writer.write(data[7:])
    await writer.drain()
    size = struct.unpack("!H", await reader.readexactly(2))[0]
    assert dns.message.from_wire(await reader.readexactly(size)).answer
    assert await reader.read() == b""  # then the worker closes, and exits
    await stopping
    writer.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # the port is free again
        s.bind(("127.0.0.1", port))


def test_a_retired_generation_is_freed_by_reference_counting(inventory: Inventory) -> None:
    """The answer processes freeze what they serve (no cycle collection over it): a retired
    generation and its caches must then go with their last reference, without the collector."""
    answers = Answers.build(inventory, planned(inventory))
    respond = responder(answers)
    ecs = dns.edns.ECSOption("127.0.2.0", 24)
    for q in (
        dns.message.make_query("foo.example.com", "A"),
        dns.message.make_query("foo.example.com", "A", use_edns=0, options=[ecs]),
        dns.message.make_query("nope.example.com", "A"),
    ):
        for _ in range(3):  # the slow path, then learned, then from the cache
            assert respond(q.to_wire(), "127.0.0.1", True) is not None
    alive = weakref.ref(answers)
    gc.disable()
    try:
        del answers, respond
        assert alive() is None
    finally:
        gc.enable()


def test_a_new_generation_counts_into_the_slots_of_the_one_it_replaces(
    inventory: Inventory,
) -> None:
    """No counters fold at a swap (a fold over a 4,000-service tally held the loop 15 ms)."""
    old = Answers.build(inventory, planned(inventory))
    steps = Answers.building(inventory, without_dc3(planned(inventory), 2), tally=old.tally)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            new: Answers = done.value
            break
    assert new.tally is old.tally and new.generation == 2
    assert len(set(old.tally.labels)) == len(old.tally.labels)  # a label keeps its one slot


async def test_a_worker_never_waits_for_its_parent_to_read() -> None:
    """Frames to a parent whose loop is busy wait in the worker (a 170 KB counters snapshot
    at 4,000 services would block on a full pipe); snapshots are skipped past the backlog."""
    read_end, write_end = os.pipe()
    try:
        out = await Frames.pipe(os.fdopen(write_end, "wb"))
        big = ("stats", b"x" * (256 << 10), True)
        started = time.perf_counter()
        sent = [out.send(big, droppable=True) for _ in range(8)]
        assert out.send(("serving", 7))  # never dropped
        assert time.perf_counter() - started < 0.5  # nobody reads: still no wait
        assert sent[:4] == [True] * 4 and not all(sent)  # the backlog limit skips snapshots
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_end, "rb")
        )
        closing = asyncio.create_task(out.close())
        frames = [await read_frame(reader) for _ in range(sum(sent) + 1)]
        await closing
        assert frames[-1] == ("serving", 7) and await read_frame(reader) is None
    finally:
        with contextlib.suppress(OSError):
            os.close(read_end)
