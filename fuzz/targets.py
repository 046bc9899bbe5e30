"""The fuzz targets: one input's bytes in, `Finding` raised when gtm misbehaves on it.

`dns`: the bytes are a query as the UDP (and TCP) path hands it to the answer
function (`gtm.dns.wire.responder`, what `DnsServer._on_udp` calls) of a
generation built from `fuzz/estate.yaml`. It must never raise, and it answers
as the server promises: silence exactly for what is not a query (shorter than
a header, or the QR bit set: no reply loops), otherwise a reply with the
query's ID and the QR bit, an rcode among NOERROR, FORMERR, NXDOMAIN, NOTIMP,
REFUSED (or BADVERS in the OPT record), that dnspython reads back, within 512
octets over UDP without EDNS and within the 64 KiB a TCP frame carries. Each
input is asked twice (the second time from the answer cache), over UDP and
TCP, from a client of each region in turn.

`config`: the bytes are a config file read on start or SIGHUP
(`gtm.config.load`). Only `ConfigError` may come out, never another
exception, within `CONFIG_BOUND` seconds.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG_BOUND = 5.0  # seconds one config may take to load or be refused
_CLIENTS = ("127.0.1.9", "127.0.2.9", "fd00:3::9", "192.0.2.1")
_RCODES = {0, 1, 3, 4, 5}  # NOERROR, FORMERR, NXDOMAIN, NOTIMP, REFUSED
_UDP_PLAIN = 512  # octets a UDP reply without an OPT record may take


class Finding(AssertionError):
    """An input on which gtm broke one of the target's promises."""


@dataclass(frozen=True)
class Target:
    name: str
    setup: Callable[[], Callable[[bytes], None]]  # builds the target once, returns the test

    @property
    def corpus(self) -> Path:
        return HERE / "corpus" / self.name

    @property
    def dictionary(self) -> Path | None:
        path = HERE / f"{self.name}.dict"
        return path if path.exists() else None


# --- dns ------------------------------------------------------------------------------------


def dns_target() -> Callable[[bytes], None]:
    from gtm.config import load
    from gtm.dns import Answers
    from gtm.dns.wire import responder
    from gtm.what_if import what_if
    from policies import Health

    inventory = load(HERE / "estate.yaml")
    table = what_if(inventory, Health(), [], 0.0).planned.table
    # a small cache budget, so the fuzzer also runs the caches' start-over path
    respond = responder(Answers.build(inventory, table), cache_bytes=64 << 10)

    turn = 0

    def test(data: bytes) -> None:
        nonlocal turn
        turn += 1
        client = _CLIENTS[turn % len(_CLIENTS)]  # each input from one region's client, in turn
        silent = len(data) < 12 or bool(data[2] & 0x80)
        for udp in (True, False):
            for _ in range(2):  # the second time from the cache of queries seen
                reply = respond(data, client, udp)
                _judge(data, reply, silent, udp)

    return test


def _judge(data: bytes, reply: bytes | None, silent: bool, udp: bool) -> None:
    import dns.message

    if silent:
        if reply is not None:
            raise Finding(f"answered what is not a query: {reply.hex()}")
        return
    if reply is None:
        raise Finding("dropped a query (only runts and responses are dropped)")
    if not isinstance(reply, bytes) or len(reply) < 12:
        raise Finding(f"a reply shorter than a header: {reply!r}")
    if reply[:2] != data[:2] or not reply[2] & 0x80:
        raise Finding(f"the reply's ID or QR bit is wrong: {reply[:4].hex()}")
    if reply[3] & 0x0F not in _RCODES:
        raise Finding(f"rcode {reply[3] & 0x0F} is none the server sends")
    if len(reply) > 65535:
        raise Finding(f"a reply of {len(reply)} octets does not fit a TCP frame")
    try:
        parsed = dns.message.from_wire(reply)
    except Exception as e:
        raise Finding(f"the reply does not parse ({type(e).__name__}: {e}): {reply.hex()}") from e
    if udp and parsed.edns < 0 and len(reply) > _UDP_PLAIN:
        raise Finding(f"a UDP reply without EDNS of {len(reply)} octets (> {_UDP_PLAIN})")


# --- config ---------------------------------------------------------------------------------


def config_target() -> Callable[[bytes], None]:
    from gtm.config import ConfigError, load

    path = Path(tempfile.gettempdir()) / "gtm-fuzz" / "config" / f"input-{os.getpid()}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)

    def test(data: bytes) -> None:
        path.write_bytes(data)
        started = time.monotonic()
        try:
            load(path)  # as on start and SIGHUP: bytes from the file, decoded, parsed, checked
        except ConfigError as e:
            if not e.problems:
                raise Finding("ConfigError without a problem") from e
        took = time.monotonic() - started
        if took > CONFIG_BOUND:
            raise Finding(f"took {took:.1f}s (> {CONFIG_BOUND:g}s) to load {len(data)} octets")

    return test


TARGETS = {t.name: t for t in (Target("dns", dns_target), Target("config", config_target))}
