"""FileLease across two processes on one file: SIGSTOP, SIGCONT, SIGKILL, SIGTERM.

Each member process journals its would-be writes with CLOCK_MONOTONIC
(system-wide on Linux), so the journals of both can be merged and checked
for overlap.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from pathlib import Path

import election_member
from election_harness import Entry, assert_one_writer_at_a_time, eventually

from gtm.ha import FileLease

TIMINGS = {"duration": 0.6, "renew_deadline": 0.4, "retry_period": 0.1}
SLACK = 0.3


def journal(path: Path) -> list[Entry]:
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        at, name, epoch = line.split()
        entries.append(Entry(float(at), name, int(epoch)))
    return entries


async def stored(lease: Path) -> dict[str, object]:
    record = await FileLease(lease).get()
    assert record is not None
    return {"holder": record.holder, "transitions": record.transitions}


async def test_two_processes_on_one_lease_file(tmp_path: Path) -> None:
    lease = tmp_path / "dc1.lease"
    context = multiprocessing.get_context("spawn")
    names = ("dc1-a", "dc1-b")
    journals = {name: tmp_path / f"{name}.journal" for name in names}
    processes = {
        name: context.Process(
            target=election_member.main,
            args=(str(lease), name, str(journals[name]), TIMINGS),
            name=name,
        )
        for name in names
    }
    for process in processes.values():
        process.start()
    try:
        await eventually(lambda: any(journal(j) for j in journals.values()), 15, every=0.01)
        first = next(name for name in names if journal(journals[name]))
        second = next(name for name in names if name != first)
        await asyncio.sleep(TIMINGS["duration"])  # the standby is up and following

        # the leader freezes (SIGSTOP): the standby takes over once the lease expired
        # at any instant, even inside a write: FileLease holds no lock a pause could keep
        os.kill(processes[first].pid or 0, signal.SIGSTOP)
        stopped = time.monotonic()
        await eventually(lambda: bool(journal(journals[second])), 2 * TIMINGS["duration"] + SLACK)
        assert time.monotonic() - stopped < TIMINGS["duration"] + TIMINGS["retry_period"] + SLACK

        # it wakes up (SIGCONT) and does not write: it knows its term ended
        os.kill(processes[first].pid or 0, signal.SIGCONT)
        await asyncio.sleep(0.3)
        taken_over = min(e.at for e in journal(journals[second]))
        assert all(e.at < taken_over for e in journal(journals[first]))
        assert (await stored(lease))["holder"] == second

        # the new leader dies (SIGKILL): the first one takes the lease back, a newer epoch
        epoch = max(e.epoch for e in journal(journals[second]))
        processes[second].kill()
        killed = time.monotonic()
        await eventually(
            lambda: any(e.epoch > epoch for e in journal(journals[first])),
            TIMINGS["duration"] + TIMINGS["retry_period"] + SLACK,
        )
        assert time.monotonic() - killed > TIMINGS["duration"] - TIMINGS["retry_period"] - SLACK

        # SIGTERM: it releases the lease on the way out
        processes[first].terminate()
        await asyncio.to_thread(processes[first].join, 5)
        assert processes[first].exitcode == 0
        released = await stored(lease)
        assert released["holder"] is None
        assert released["transitions"] == max(e.epoch for e in journal(journals[first]))
    finally:
        for process in processes.values():
            if process.is_alive():
                os.kill(process.pid or 0, signal.SIGCONT)
                process.kill()
            await asyncio.to_thread(process.join, 5)

    entries = journal(journals[first]) + journal(journals[second])
    assert_one_writer_at_a_time(entries)
    terms = [e.member for e in sorted(entries, key=lambda e: e.at)]
    changes = [m for i, m in enumerate(terms) if i == 0 or terms[i - 1] != m]
    assert changes == [first, second, first]
