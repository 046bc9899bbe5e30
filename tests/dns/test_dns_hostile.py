"""Hostile clients: slow and idle TCP connections, cache-filling queries, odd large datagrams,
malformed Client Subnet options, runt TCP messages. Each one broke the server once."""

from __future__ import annotations

import socket
import struct
import threading
import time
import tracemalloc

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
from dns_estate import Running, running

from gtm.config import Inventory
from gtm.dns import Answers
from gtm.dns.wire import responder
from policies import WeightTable

PADDING = dns.edns.OptionType.PADDING


def frame(msg: dns.message.Message) -> bytes:
    wire = msg.to_wire()
    return struct.pack("!H", len(wire)) + wire


def ask_tcp(port: int, source: str = "127.0.0.1", timeout: float = 2.0) -> dns.message.Message:
    with socket.create_connection(("127.0.0.1", port), timeout, (source, 0)) as s:
        s.sendall(frame(dns.message.make_query("foo.example.com", "A")))
        size = struct.unpack("!H", s.recv(2))[0]
        data = b""
        while len(data) < size:
            chunk = s.recv(size - len(data))
            assert chunk, "closed before the reply"
            data += chunk
        return dns.message.from_wire(data)


def closed_within(s: socket.socket, seconds: float) -> bool:
    s.settimeout(seconds)
    try:
        return s.recv(10) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_trickling_clients_neither_keep_their_connections_nor_lock_others_out(
    inventory: Inventory, table: WeightTable
) -> None:
    """16 clients sending a byte every 0.1 s fill every slot: a newcomer still gets in, and the
    tricklers are cut at the message deadline although bytes keep arriving."""
    with running(
        inventory, table, tcp_clients=16, tcp_per_client=4, tcp_message=0.6, tcp_idle=30
    ) as srv:
        slow = [
            socket.create_connection(("127.0.0.1", srv.port), 3, (f"127.0.9.{i + 1}", 0))
            for i in range(16)
        ]
        stop = threading.Event()

        def trickle() -> None:
            query = frame(dns.message.make_query("foo.example.com", "A"))
            for k in range(len(query) - 1):  # never the last octet
                if stop.wait(0.1):
                    return
                for s in slow:
                    try:
                        s.send(query[k : k + 1])
                    except OSError:
                        pass

        t = threading.Thread(target=trickle)
        t.start()
        try:
            time.sleep(0.25)
            started = time.monotonic()
            assert ask_tcp(srv.port).answer  # every slot was taken: it took the longest waiter's
            assert time.monotonic() - started < 1.0
            assert all(closed_within(s, 2.0) for s in slow[1:])  # the deadline, not the idle 30 s
        finally:
            stop.set()
            t.join()
            for s in slow:
                s.close()


def test_one_address_holds_a_bounded_number_of_connections(
    inventory: Inventory, table: WeightTable
) -> None:
    with running(inventory, table, tcp_clients=64, tcp_per_client=4) as srv:
        held = [
            socket.create_connection(("127.0.0.1", srv.port), 3, ("127.0.9.9", 0)) for _ in range(4)
        ]
        try:
            extra = socket.create_connection(("127.0.0.1", srv.port), 3, ("127.0.9.9", 0))
            assert closed_within(extra, 1.0)  # a fifth from the same address: closed at once
            extra.close()
            assert ask_tcp(srv.port, source="127.0.9.10").answer  # another address gets in
        finally:
            for s in held:
                s.close()


def test_many_idle_connections_do_not_lock_tcp_out(
    inventory: Inventory, table: WeightTable
) -> None:
    with running(inventory, table, tcp_clients=32, tcp_per_client=2, tcp_idle=30) as srv:
        idle = [
            socket.create_connection(("127.0.0.1", srv.port), 3, (f"127.0.10.{i // 2 + 1}", 0))
            for i in range(200)
        ]
        try:
            for _ in range(5):  # each newcomer is answered at once, none waits for a reap
                started = time.monotonic()
                assert ask_tcp(srv.port).answer
                assert time.monotonic() - started < 1.0
        finally:
            for s in idle:
                s.close()


def test_runt_tcp_messages_close_the_connection_at_once(served: Running) -> None:
    for runt in (b"\x00\x01\x00", b"\x00\x0b" + b"\x12" * 11, b"\x00\x00"):
        with socket.create_connection(("127.0.0.1", served.port), timeout=3) as s:
            s.sendall(runt)
            assert closed_within(s, 1.0)  # not after the 10 s idle timeout
    # twelve octets of garbage are a header: FORMERR, and the connection goes on
    with socket.create_connection(("127.0.0.1", served.port), timeout=3) as s:
        good = dns.message.make_query("foo.example.com", "A")
        s.sendall(b"\x00\x0c" + b"\x12\x34" + b"\x01" * 10 + frame(good))
        replies = []
        while len(replies) < 2:
            size = struct.unpack("!H", s.recv(2))[0]
            replies.append(dns.message.from_wire(s.recv(size)))
        assert replies[0].rcode() == dns.rcode.FORMERR and replies[0].id == 0x1234
        assert replies[1].id == good.id and replies[1].answer


def test_the_answer_caches_are_bounded_by_bytes(inventory: Inventory, table: WeightTable) -> None:
    """Large queries varied in case and flags, each seen once: the caches keep to their budget."""
    budget = 2 << 20
    respond = responder(Answers.build(inventory, table), cache_bytes=budget)
    pad = dns.edns.GenericOption(PADDING, b"\x00" * 30_000)
    queries = []
    for i in range(300):
        name = "".join(c.upper() if i >> (k % 9) & 1 else c for k, c in enumerate("foo"))
        q = dns.message.make_query(f"{name}.example.com", "A", use_edns=0, options=[pad])
        q.flags = dns.flags.Flag(q.flags | (dns.flags.CD if i % 2 else 0))
        q.id = i
        wire = bytearray(q.to_wire(max_size=65535))
        wire[-2:] = struct.pack("!H", i)  # a different last padding octet each time
        queries.append(bytes(wire))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for q in queries:
            assert respond(q, "127.0.0.1", False) is not None
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 2 * budget  # 300 x 30 KB = 9 MB without the bound


def test_a_large_udp_query_is_answered_in_full_with_its_opt(served: Running) -> None:
    padded = dns.message.make_query(
        "LoCaL.example.com",
        "A",
        use_edns=0,
        options=[dns.edns.GenericOption(PADDING, b"\x00" * 700)],
    )
    reply = served.raw(padded.to_wire())
    assert reply is not None
    r = dns.message.from_wire(reply)
    assert not r.flags & dns.flags.TC and r.answer and r.edns == 0
    assert reply[12 : 12 + 23] == padded.to_wire()[12 : 12 + 23]  # the question, case and all
    # A long datagram without a readable question is a FORMERR.
    garbage = served.raw(padded.to_wire()[:12] + b"\xff" * 600)
    assert garbage is not None and garbage[3] & 0x0F == dns.rcode.FORMERR


def test_large_udp_datagrams_get_the_answer_their_header_asks_for(served: Running) -> None:
    pad = dns.edns.GenericOption(PADDING, b"\x00" * 600)
    notify = dns.message.make_query("example.com", "SOA", use_edns=0, options=[pad])
    notify.set_opcode(dns.opcode.NOTIFY)
    r = dns.message.from_wire(served.raw(notify.to_wire()) or b"")
    assert r.rcode() == dns.rcode.NOTIMP and not r.flags & dns.flags.TC
    no_question = bytearray(
        dns.message.make_query("example.com", "SOA", use_edns=0, options=[pad]).to_wire()
    )
    # QDCOUNT 0, the question's bytes dropped: only the OPT record remains
    question_end = 12 + len(b"\x07example\x03com\x00") + 4
    wire = bytes(no_question[:4]) + b"\x00\x00" + bytes(no_question[6:12])
    wire += bytes(no_question[question_end:])
    reply = served.raw(wire)
    assert reply is not None and reply[3] & 0x0F == dns.rcode.FORMERR and not reply[2] & 0x02


def test_malformed_client_subnet_options_are_formerr(served: Running) -> None:
    ecs = dns.edns.ECSOption("127.0.2.0", 24)
    twice = dns.message.make_query("foo.example.com", "A", use_edns=0, options=[ecs, ecs])
    assert served.query(twice).rcode() == dns.rcode.FORMERR
    scoped = dns.message.make_query(
        "foo.example.com", "A", use_edns=0, options=[dns.edns.ECSOption("127.0.2.0", 24, 16)]
    )
    assert served.query(scoped).rcode() == dns.rcode.FORMERR
    fine = dns.message.make_query("foo.example.com", "A", use_edns=0, options=[ecs])
    assert served.query(fine).rcode() == dns.rcode.NOERROR
