"""The sampler's own stalls are not charged to the member it asked.

A query that timed out while the sampler's process did not run (a full
collection over a big heap, a starved CPU) was not given its time: the reply
may have sat unread in the socket. Such a query is asked once more; a member
that does not answer at all is still reported unanswered. The member here is
gtm's own DNS server on loopback, in a thread, so it answers while the test's
loop is blocked.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from chaos.drills.facts import MemberEndpoint, client_subnets, estate_facts
from chaos.drills.observe import Sampler
from gtm.config import load
from gtm.dns import Answers, DnsServer
from gtm.what_if import what_if
from policies import Health

FAST = Path(__file__).resolve().parents[3] / "chaos" / "drills" / "estates" / "fast.yaml"
STALL = 0.6  # longer than the sampler's 0.4 s DNS timeout


@pytest.fixture(scope="module")
def dns_port() -> Iterator[int]:
    inventory = load(FAST)
    table = what_if(inventory, Health(), [], 0.0).planned.table
    loop = asyncio.new_event_loop()
    bound: list[int] = []
    ready, stop = threading.Event(), asyncio.Event()

    async def main() -> None:
        server = DnsServer(inventory.config.dns, Answers.build(inventory, table), ("127.0.0.1", 0))
        async with server:
            bound.append(server.port)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield bound[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


@pytest_asyncio.fixture
async def sampler() -> AsyncIterator[Sampler]:
    inventory = load(FAST)
    facts = estate_facts(inventory, {"m": "dc1"})
    async with Sampler([], facts, client_subnets(inventory), token="t") as s:
        yield s


def member(port: int) -> MemberEndpoint:
    return MemberEndpoint("m", "dc1", "http://127.0.0.1:9", ("127.0.0.1", port))


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A UDP port bound by nobody who answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


async def test_a_query_that_timed_out_while_the_sampler_stalled_is_asked_again(
    sampler: Sampler, dns_port: int
) -> None:
    service = next(iter(sampler.facts.services))
    asyncio.get_running_loop().call_soon(time.sleep, STALL)  # the stall, once the query is out
    got = await sampler.ask(member(dns_port), service, "dc1")
    assert got in sampler.facts.services[service].vips
    assert sampler.reasked == 1


async def test_a_member_that_does_not_answer_is_unanswered_stall_or_not(
    sampler: Sampler, silent_port: int
) -> None:
    service = next(iter(sampler.facts.services))
    assert await sampler.ask(member(silent_port), service, "dc1") == "error:timeout"
    assert sampler.reasked == 0
    asyncio.get_running_loop().call_soon(time.sleep, STALL)
    assert await sampler.ask(member(silent_port), service, "dc1") == "error:timeout"
    assert sampler.reasked == 1  # asked again, and again not answered


async def test_without_a_stall_an_answer_is_asked_once(sampler: Sampler, dns_port: int) -> None:
    service = next(iter(sampler.facts.services))
    got = await sampler.ask(member(dns_port), service, "dc2")
    assert got in sampler.facts.services[service].vips
    assert sampler.reasked == 0
