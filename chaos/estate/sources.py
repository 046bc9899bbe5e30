"""Faults that only some clients see: a VIP fails for the processes of one vantage.

Every process of the simulated estate runs on one host and connects to the
VIPs from 127.0.0.1, so a VIP cannot tell its clients apart by address. It
tells them apart by the process that owns the client's socket, as the kernel
reports it: the connection's client port names a line of `/proc/net/tcp`
(`tcp6`) holding the socket's inode, and the process group whose open files
include `socket:[inode]` is the client. A source fault names process groups
(the `Launcher` starts each gtm member in a group of its own) and the fault
their connections get; every other client is served as the VIP's own fault
says. That is how a drill impairs one region's probers — everything fails as
seen from them, nothing as seen from the others — without root, iptables or
network namespaces.

    sources = SourceFaults()
    sources.set("vantage-dc3", groups={4242, 4250}, fault=Fault("error", status=503))
    group = sources.owner(peer=("127.0.0.1", 51234), local=("127.0.3.1", 18080))
    sources.fault_for(group)          # its SourceFault, or None for every other client

Linux only (`/proc`); elsewhere no connection matches and source faults do nothing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from chaos.estate.fault import Fault

log = structlog.get_logger(__name__)

PROC = "/proc"
GROUPS_TTL = 1.0  # seconds the processes of the faulted groups are cached


@dataclass(frozen=True)
class SourceFault:
    """`fault` for connections opened by any process of `groups` (process group ids)."""

    name: str
    groups: frozenset[int]
    fault: Fault
    since: float = 0.0  # when it was set (the clock of `SourceFaults`): a flap's phase

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "groups": sorted(self.groups), "fault": self.fault.to_dict()}


def _hex_endpoint(host: str, port: int) -> str:
    """An endpoint as `/proc/net/tcp*` writes it: the address's bytes in host order, hex."""
    address = ipaddress.ip_address(host)
    packed = address.packed
    if address.version == 4:
        text = packed[::-1].hex()
    else:  # four 32-bit words, each in host (little-endian) order
        text = "".join(packed[i : i + 4][::-1].hex() for i in range(0, 16, 4))
    return f"{text.upper()}:{port:04X}"


def socket_inode(peer: tuple[str, int], local: tuple[str, int], proc: str = PROC) -> int | None:
    """The inode of the client socket of a connection accepted here (peer -> local)."""
    host = peer[0].removeprefix("::ffff:")
    version = ipaddress.ip_address(host).version
    table = "tcp" if version == 4 else "tcp6"
    client = _hex_endpoint(host, peer[1])
    server = _hex_endpoint(local[0].removeprefix("::ffff:"), local[1])
    try:
        with open(f"{proc}/net/{table}") as lines:
            next(lines, None)  # the header
            for line in lines:
                fields = line.split()
                if len(fields) > 9 and fields[1] == client and fields[2] == server:
                    return int(fields[9])
    except OSError:
        return None
    return None


def process_group(pid: int, proc: str = PROC) -> int | None:
    """The process group of `pid` (field 5 of /proc/PID/stat), None when it is gone."""
    try:
        with open(f"{proc}/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses
    rest = stat.rsplit(")", 1)[-1].split()
    return int(rest[2]) if len(rest) > 2 else None


def holds_socket(pid: int, inode: int, proc: str = PROC) -> bool:
    target = f"socket:[{inode}]"
    try:
        fds = os.listdir(f"{proc}/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"{proc}/{pid}/fd/{fd}") == target:
                return True
    return False


class SourceFaults:
    """The source faults in force in one VIP farm, and who owns a connection."""

    def __init__(self, *, proc: str = PROC, clock: Callable[[], float] = time.monotonic) -> None:
        self._proc = proc
        self._clock = clock
        self._faults: dict[str, SourceFault] = {}
        self._members: dict[int, tuple[int, ...]] = {}  # group -> its pids, cached
        self._members_at = float("-inf")
        self.version = 0  # rises with every change: connections look their owner up again

    @property
    def active(self) -> bool:
        return bool(self._faults)

    def set(self, name: str, groups: Iterable[int], fault: Fault) -> SourceFault:
        """Put `fault` in force for `groups` under `name` (replacing it); `Fault()` clears it."""
        if fault == Fault():
            self.clear(name)
            return SourceFault(name, frozenset(groups), fault, self._clock())
        entry = SourceFault(name, frozenset(int(g) for g in groups), fault, self._clock())
        self._faults[name] = entry
        self._members_at = float("-inf")
        self.version += 1
        log.info("vips.source_fault", source=name, groups=sorted(entry.groups), **fault.to_dict())
        return entry

    def clear(self, name: str) -> bool:
        found = self._faults.pop(name, None) is not None
        if found:
            self.version += 1
            log.info("vips.source_fault_cleared", source=name)
        return found

    def states(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self._faults.values()]

    def fault_for(self, group: int | None) -> SourceFault | None:
        """The source fault a client of process group `group` gets (None: the VIP's own)."""
        if group is None:
            return None
        for entry in self._faults.values():
            if group in entry.groups:
                return entry
        return None

    def owner(self, peer: tuple[str, int], local: tuple[str, int]) -> int | None:
        """The faulted process group that opened this connection, or None (anyone else)."""
        if not self._faults:
            return None
        inode = socket_inode(peer, local, self._proc)
        if inode is None:
            return None
        for group, pids in self._groups().items():
            if any(holds_socket(pid, inode, self._proc) for pid in pids):
                return group
        return None

    def _groups(self) -> dict[int, tuple[int, ...]]:
        """The live processes of every faulted group (children of a member included)."""
        now = self._clock()
        if now - self._members_at < GROUPS_TTL:
            return self._members
        wanted = {g for entry in self._faults.values() for g in entry.groups}
        found: dict[int, list[int]] = {g: [] for g in wanted}
        with contextlib.suppress(OSError):
            for name in os.listdir(self._proc):
                if name.isdigit():
                    group = process_group(int(name), self._proc)
                    if group in found:
                        found[group].append(int(name))
        self._members = {g: tuple(p) for g, p in found.items()}
        self._members_at = now
        return self._members
