"""Where a drill's processes listen: one block of `BLOCK` loopback ports per drill.

    ports = DrillPorts(26000)
    ports.plan          # PortPlan.from_base(26000): members' DNS and API, clusters, VIP control,
                        # with its VIP port on `vip_port`
    ports.links         # 26076…: the peer-link relays (partitions)
    ports.vip_port      # 26099: every VIP listens here, on its own 127.x address

Drills run one after another, each in the next block (`base + i * BLOCK`),
so a drill never meets what the previous one left in TIME_WAIT, and none of
them meets a demo (5353, 8080, 17400…, VIPs on 18080). `find_free_base`
looks for a block whose ports are all free.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace

from chaos.estate import PortPlan
from chaos.estate.ports import STRIDE
from gtm.config import Inventory

BLOCK = 100
DEFAULT_BASE = 26000
LINKS_OFFSET = 3 * STRIDE + 1  # right after the PortPlan block
LINKS_MAX = BLOCK - 1 - LINKS_OFFSET  # relays a block has room for


@dataclass(frozen=True)
class DrillPorts:
    base: int

    def __post_init__(self) -> None:
        if not 1024 <= self.base <= 65535 - BLOCK:
            raise ValueError(f"base port {self.base} must be in 1024..{65535 - BLOCK}")

    @property
    def plan(self) -> PortPlan:
        return replace(PortPlan.from_base(self.base), vips=self.vip_port)

    @property
    def links(self) -> int:
        return self.base + LINKS_OFFSET

    @property
    def vip_port(self) -> int:
        return self.base + BLOCK - 1

    def vip_offset(self, inventory: Inventory) -> int:
        """How far to move the estate's VIP ports so the lowest lands on `vip_port`."""
        ports = [v.port for s in inventory.config.services for vs in s.vips.values() for v in vs]
        return self.vip_port - min(ports) if ports else 0

    def nth(self, i: int) -> DrillPorts:
        """The block of the i-th drill of a run."""
        return DrillPorts(self.base + i * BLOCK)


def _free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def block_free(base: int, blocks: int = 1) -> bool:
    """Every port of `blocks` blocks from `base` is free on 127.0.0.1 (TCP and UDP)."""
    return all(
        _free(p, socket.SOCK_STREAM) and _free(p, socket.SOCK_DGRAM)
        for p in range(base, base + blocks * BLOCK)
    )


def find_free_base(start: int = DEFAULT_BASE, blocks: int = 1, tries: int = 200) -> int:
    """The first base from `start` (in steps of a block) whose `blocks` blocks are free."""
    base = start
    for _ in range(tries):
        if base + blocks * BLOCK > 65535:
            break
        if block_free(base, blocks):
            return base
        base += BLOCK
    raise RuntimeError(f"no {blocks} free block(s) of {BLOCK} ports from {start}")
