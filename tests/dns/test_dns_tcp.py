"""TC on UDP and the TCP fallback; TCP connections: many queries, idle timeout, limits, draining."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
from dns_estate import Running, running

from gtm.config import Inventory
from gtm.dns import Answers, DnsServer
from policies import WeightTable


def frame(msg: dns.message.Message) -> bytes:
    wire = msg.to_wire()
    return struct.pack("!H", len(wire)) + wire


def read_reply(sock: socket.socket) -> dns.message.Message:
    size = struct.unpack("!H", _read(sock, 2))[0]
    return dns.message.from_wire(_read(sock, size))


def _read(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def test_udp_reply_too_big_is_truncated_then_complete_over_tcp(served: Running) -> None:
    query = dns.message.make_query("big.example.org", "AAAA")
    r = served.query(query)
    assert r.flags & dns.flags.TC
    assert not r.answer and r.question[0].name == query.question[0].name
    r, used_tcp = dns.query.udp_with_fallback(query, "127.0.0.1", port=served.port, timeout=3)
    assert used_tcp
    assert not r.flags & dns.flags.TC
    assert len(r.answer[0]) == 40


def test_edns_payload_size_decides_truncation(served: Running) -> None:
    small = dns.message.make_query("big.example.org", "AAAA", use_edns=0, payload=1024)
    r = served.query(small)
    assert r.flags & dns.flags.TC and r.edns == 0 and not r.answer
    large = dns.message.make_query("big.example.org", "AAAA", use_edns=0, payload=4096)
    r = served.query(large)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 40


def test_several_queries_on_one_tcp_connection(served: Running) -> None:
    names = ["local.example.com", "nope.example.com", "example.com", "local.example.com"]
    queries = [dns.message.make_query(n, "SOA" if n == "example.com" else "A") for n in names]
    with socket.create_connection(("127.0.0.1", served.port), timeout=3) as s:
        s.sendall(b"".join(frame(m) for m in queries[:3]))  # pipelined in one write
        replies = [read_reply(s) for _ in range(3)]
        s.sendall(frame(queries[3])[:5])  # a query split across two segments
        time.sleep(0.05)
        s.sendall(frame(queries[3])[5:])
        replies.append(read_reply(s))
    assert [r.id for r in replies] == [m.id for m in queries]
    assert [r.rcode() for r in replies] == [0, 3, 0, 0]
    assert replies[2].answer[0].rdtype == dns.rdatatype.SOA


def test_idle_connections_are_closed_and_clients_are_bounded(
    inventory: Inventory, table: WeightTable
) -> None:
    with running(inventory, table, tcp_clients=2, tcp_idle=0.4) as srv:
        a = socket.create_connection(("127.0.0.1", srv.port), timeout=3)
        b = socket.create_connection(("127.0.0.1", srv.port), timeout=3)
        a.sendall(frame(dns.message.make_query("foo.example.com", "A")))
        assert read_reply(a).answer
        time.sleep(0.1)
        c = socket.create_connection(("127.0.0.1", srv.port), timeout=3)  # over the limit:
        c.sendall(frame(dns.message.make_query("foo.example.com", "A")))
        assert read_reply(c).answer  # it takes the place of b, which has waited longest
        assert b.recv(10) == b""
        b.close()
        time.sleep(1.2)  # idle past the timeout
        assert a.recv(10) == b"" and c.recv(10) == b""
        a.close()
        c.close()
        d = socket.create_connection(("127.0.0.1", srv.port), timeout=3)  # room again
        d.sendall(frame(dns.message.make_query("foo.example.com", "A")))
        assert read_reply(d).answer
        d.close()


async def test_stop_drains_a_query_in_flight(inventory: Inventory, table: WeightTable) -> None:
    server = DnsServer(inventory.config.dns, Answers.build(inventory, table), ("127.0.0.1", 0))
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    data = frame(dns.message.make_query("foo.example.com", "A"))
    writer.write(data[:7])  # half a query is in flight when the server stops
    await writer.drain()
    await asyncio.sleep(0.05)
    stopping = asyncio.create_task(server.stop())
    await asyncio.sleep(0.05)
    writer.write(data[7:])
    await writer.drain()
    size = struct.unpack("!H", await reader.readexactly(2))[0]
    reply = dns.message.from_wire(await reader.readexactly(size))
    assert reply.answer
    assert await reader.read() == b""  # then the server closes
    await stopping
    writer.close()
    await writer.wait_closed()
    # The port is free again: UDP and TCP sockets are closed.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", server.port))


async def test_stop_gives_up_on_silent_clients(inventory: Inventory, table: WeightTable) -> None:
    server = DnsServer(
        inventory.config.dns,
        Answers.build(inventory, table),
        ("127.0.0.1", 0),
        drain_timeout=0.2,
    )
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x00\x40\x12")  # never finished
        await writer.drain()
        await asyncio.sleep(0.05)
    assert await reader.read() == b""
    writer.close()
