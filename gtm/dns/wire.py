"""From a query's bytes to the reply's bytes, for one generation of answers.

A query seen before — the same bytes after its ID — is answered from a
cache of what its reply needs. Otherwise, the fast path handles the common query — QUERY opcode, one question, no
answer or authority records, at most an OPT record already seen — with a few
slices and one dict lookup: the question bytes (name, type, class) as sent,
lowercased, are the key of the precomputed entries, and the reply is the
query's ID, flags, the variant's counts, the question *copied from the query*
(so its case is echoed exactly) and the variant's records. Anything else
— a first-seen OPT record, a name without an entry, malformed bytes, other
opcodes, oversized replies — goes to the slow path, which parses the whole
message with dnspython and answers every case RFC 1035/6891/7871 asks for.

`replies()` returns these pieces as a `Replies` value, which the compiled
UDP path (`gtm.dns.fast`, gtm/dns/_fast.c) shares: it answers the queries in
`seen` itself, byte for byte and draw for draw as `respond`, and calls back
into `respond` and `slow` for the rest.
"""

from __future__ import annotations

import struct
from bisect import bisect_right as bisect
from collections.abc import Callable
from dataclasses import dataclass
from random import random

import dns.exception
import dns.message
import dns.opcode
import dns.rdatatype

from gtm.dns import edns
from gtm.dns.answers import FORMERR, NOERROR, NOTIMP, REFUSED, Answers
from gtm.dns.picks import Pick, Rand, Variant, choose, counts, uniform
from gtm.dns.records import ANY, IN

# (query bytes, client address, over UDP?) -> reply bytes, or None to stay silent
Respond = Callable[[bytes, str, bool], bytes | None]
# What a known query's reply needs: picks per row, reply flags, which counts
# (0: without OPT, 1: with), the question as sent, the reply's OPT record, the
# UDP size limit, and the row fixed by ECS (or -1: by the source address).
_Known = tuple[tuple[Pick, ...], bytes, int, bytes, bytes, int, int]

ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00\x00"  # QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT < 256
# The caches of queries seen (e.g. 0x20 case variants) and of OPT records are
# bounded by the bytes of their keys: past the budget they start over, so no
# mix of queries (64 KB TCP queries with large options, varied in flags and
# case) grows a worker past it.
CACHE_BYTES = 32 << 20
_AA = 0x04
_TC = 0x02
# Reply flags of a NOERROR answer, indexed by the query's RD bit | CD bit (0x10).
_FLAGS = [bytes((0x80 | _AA | (i & 0x01), i & 0x10)) for i in range(0x12)]
_ENTRY_OVERHEAD = 200  # bytes a cache entry costs beyond its key (dict slot, tuple, objects)
_REFUSED_TYPES = {251, 252, 253, 254}  # IXFR, AXFR, MAILB, MAILA: no zone transfers here


@dataclass(frozen=True)
class Replies:
    """The answer path of one generation: `respond`, and what a compiled path shares with it.

    `gtm.dns.fast` answers UDP queries from the same `seen` cache, row cache
    (`rows`, filled by `row_for`), tally slots (`hits`) and draws (`rand`),
    and hands every query it does not find in `seen` to `respond` and every
    reply too big for the client to `slow`, as `respond` itself does.
    """

    respond: Respond
    slow: Respond
    seen: dict[bytes, _Known]
    rows: dict[str, int]
    row_for: Callable[[str], int]
    hits: list[int]
    rand: Rand


def responder(answers: Answers, cache_bytes: int = CACHE_BYTES, rand: Rand = random) -> Respond:
    """The reply function for one generation; swapping answers means swapping this function."""
    return replies(answers, cache_bytes, rand).respond


def replies(answers: Answers, cache_bytes: int = CACHE_BYTES, rand: Rand = random) -> Replies:
    """The answer path for one generation, its weighted picks drawn from `rand`.

    Three levels, cheapest first: `seen` maps a query's bytes after the ID
    to everything its reply needs (queries repeat byte for byte: same name,
    type, flags and OPT), so a repeated query costs one slice and one dict
    lookup before the weighted pick; `learn` is the fast parse that fills
    it; `_slow` is the full dnspython parse for everything else.
    """
    entries = answers.entries
    rows = answers.topology.cache
    row_for = answers.topology.row_for_address
    hits = answers.tally.hits
    # the query's OPT record -> (row, reply OPT, reply OPT with ECS scope 0, UDP limit)
    opts = _Cache(cache_bytes // 8)
    seen: dict[bytes, _Known] = {}
    seen_bytes = 0
    flags = _FLAGS
    join = b"".join

    def slow(data: bytes, ip: str, udp: bool) -> bytes | None:
        return _slow(answers, opts, data, ip, udp, rand)

    def respond(data: bytes, ip: str, udp: bool) -> bytes | None:
        known = seen.get(data[2:])
        if known is None:
            learned = learn(data, ip, udp)
            if learned.__class__ is not tuple:
                return learned  # type: ignore[return-value]  # the slow path's reply
            known = learned  # type: ignore[assignment]
        picks, head, counts, question, opt, limit, row = known
        if row < 0:
            known_row = rows.get(ip)
            row = row_for(ip) if known_row is None else known_row
        p = picks[row]
        if p[0] is not None:
            v = p[2][bisect(p[0], rand() * p[1])]
        elif p[3] is None:
            v = p[2][0]
        else:
            v = p[3](rand)
        reply = join((data[:2], head, v[1] if counts else v[0], question, v[2], opt))
        if udp and len(reply) > limit:
            return slow(data, ip, udp)
        hits[v[3]] += 1
        return reply

    def learn(data: bytes, ip: str, udp: bool) -> _Known | bytes | None:
        """What a first-seen query's reply needs (now in `seen`), or the slow path's reply.

        It does not call `respond` back: no reference cycle between the two,
        so a retired generation is freed by reference counting alone.
        """
        nonlocal seen_bytes
        try:
            if data[2] & 0xF8 or data[4:11] != ONE_QUESTION:
                return slow(data, ip, udp)
            qend = data.find(0, 12) + 5
            question = data[12:qend]
            picks = entries.get(question.lower())
            if picks is None:
                return slow(data, ip, udp)
            if data[11]:
                e = opts.get(data[qend:])
                if e is None or data[11] != 1:
                    return slow(data, ip, udp)
                row, opt, opt_global, limit = e
                if opt is not opt_global and uniform(picks):
                    opt = opt_global
                counts = 1
            else:
                if len(data) != qend:
                    return slow(data, ip, udp)
                row, opt, limit = -1, b"", 512
                counts = 0
        except IndexError:
            return slow(data, ip, udp)
        seen_bytes += len(data) + _ENTRY_OVERHEAD
        if seen_bytes > cache_bytes:
            seen.clear()
            seen_bytes = len(data) + _ENTRY_OVERHEAD
        head = flags[(data[2] & 1) | (data[3] & 0x10)]
        known = seen[data[2:]] = (picks, head, counts, question, opt, limit, row)
        return known

    return Replies(respond, slow, seen, rows, row_for, hits, rand)


def header(data: bytes, rcode: int, *, aa: bool = False, tc: bool = False) -> bytes:
    """ID and flags of a reply to `data`: QR set, opcode, RD and CD copied."""
    b2 = 0x80 | (data[2] & 0x79) | (_AA if aa else 0) | (_TC if tc else 0)
    return data[:2] + bytes((b2, (data[3] & 0x10) | (rcode & 0x0F)))


class _Cache(dict[bytes, tuple[int, bytes, bytes, int]]):
    """The OPT records seen: query OPT bytes -> (row, reply OPT, reply OPT scope 0, UDP limit)."""

    def __init__(self, budget: int) -> None:
        super().__init__()
        self.budget = budget
        self.used = 0

    def put(self, k: bytes, v: tuple[int, bytes, bytes, int]) -> None:
        size = len(k) + len(v[1]) + len(v[2]) + _ENTRY_OVERHEAD
        if self.used + size > self.budget:
            self.clear()
            self.used = 0
        self[k] = v
        self.used += size


def _slow(
    answers: Answers,
    opts: _Cache,
    data: bytes,
    ip: str,
    udp: bool,
    rand: Rand = random,
) -> bytes | None:
    tally = answers.tally
    if len(data) < 12 or data[2] & 0x80:
        return None  # not even a header, or a response: never answer those (no loops)
    try:
        msg = dns.message.from_wire(data)
    except Exception:  # dnspython raises many types (FormError, ValueError, …) on bad input
        tally.count(-1, FORMERR)
        return header(data, FORMERR) + b"\x00" * 8
    question, qname, qtype, qclass = _question(data, msg)
    opt = edns.opt_rr(do=bool(msg.ednsflags & edns.DO)) if msg.edns >= 0 else b""

    def fail(rcode: int, ext: int = 0) -> bytes:
        tally.count(qtype, ext or rcode)
        if ext:
            opt_ = edns.opt_rr(ext_rcode=ext, do=bool(msg.ednsflags & edns.DO))
        else:
            opt_ = opt
        qd = 1 if question else 0
        cnt = struct.pack("!HHHH", qd, 0, 0, 1 if opt_ else 0)
        return header(data, rcode) + cnt + question + opt_

    if msg.opcode() != dns.opcode.QUERY:
        return fail(NOTIMP)
    if msg.edns > 0:
        return fail(NOERROR, edns.BADVERS)
    if len(msg.question) != 1:
        return fail(FORMERR)
    if dns.rdatatype.is_metatype(dns.rdatatype.RdataType.make(qtype)) and qtype != ANY:
        return fail(REFUSED if qtype in _REFUSED_TYPES else FORMERR)
    if qclass not in (IN, ANY):
        return fail(REFUSED)
    e: edns.Edns | None = None
    if msg.edns == 0:
        try:
            e = edns.of(msg, answers.topology)
        except ValueError:
            return fail(FORMERR)
    res = answers.resolve(qname, qtype)
    if res.picks is None:
        return fail(res.rcode)
    row = answers.topology.row_for_address(ip) if e is None or e.row < 0 else e.row
    v: Variant = choose(res.picks[row], rand)
    if v[3] >= 0:
        tally.hits[v[3]] += 1
    else:
        tally.count(qtype, res.rcode)
    if e is not None and _fast_shaped(data, question):
        opts.put(data[12 + len(question) :], (e.row, e.opt, e.opt_global, e.limit))
    cnt = v[1] if e is not None else v[0]
    tail = b"" if e is None else e.opt_global if uniform(res.picks) else e.opt
    reply = header(data, res.rcode, aa=res.authoritative) + cnt + question + v[2] + tail
    if udp and len(reply) > (e.limit if e is not None else edns.MIN_PAYLOAD):
        plain, with_opt = counts(0, 0, 0)
        cnt = with_opt if e is not None else plain
        return header(data, res.rcode, aa=res.authoritative, tc=True) + cnt + question + tail
    return reply


def _question(data: bytes, msg: dns.message.Message) -> tuple[bytes, bytes, int, int]:
    """(question bytes to echo, lowercase wire name, qtype, qclass) of a parsed query.

    The bytes are copied from the query when its name is not compressed, so
    the case is echoed exactly; otherwise the name is written out again.
    """
    if not msg.question:
        return b"", b"", -1, -1
    rrset = msg.question[0]
    wire = rrset.name.to_wire()
    assert wire is not None
    tail = struct.pack("!HH", rrset.rdtype, rrset.rdclass)
    end = 12 + len(wire)
    if data[12:end].lower() == wire.lower() and data[end : end + 4] == tail:
        question = data[12 : end + 4]
    else:
        question = wire + tail
    return question, wire.lower(), int(rrset.rdtype), int(rrset.rdclass)


def _fast_shaped(data: bytes, question: bytes) -> bool:
    """Whether the fast path would find this query's OPT record right after the question."""
    qend = 12 + len(question)
    return (
        data[4:12] == ONE_QUESTION + b"\x01"
        and data[12:qend] == question
        and data[qend : qend + 3] == b"\x00\x00\x29"
    )
