"""Which row of the table a client gets: its address (or ECS subnet) -> a region.

Each region lists client CIDRs; the longest prefix that contains the client
wins, and clients that match none get the default row (`dns.default_region`,
else the first region). Rows are numbered in the estate's region order, so
the answers keep one precomputed entry per row index.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gtm.config import Config

# prefix length -> {network bits (address >> (width - prefix)): row}
_Level = tuple[int, Mapping[int, int]]

CACHE_LIMIT = 65536  # distinct client addresses remembered before the cache starts over


@dataclass(frozen=True)
class Match:
    """A subnet's row and the ECS scope prefix length the answer is valid for."""

    row: int
    scope: int


@dataclass(frozen=True)
class Topology:
    regions: tuple[str, ...]
    default: int  # row index for clients in no region's CIDRs
    v4: tuple[_Level, ...]  # longest prefix first
    v6: tuple[_Level, ...]
    # source address (as the socket reports it) -> row; read directly by the hot path
    cache: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: Config) -> Topology:
        regions = tuple(r.name for r in config.regions)
        default = config.dns.default_region
        levels: dict[int, dict[int, dict[int, int]]] = {4: {}, 6: {}}
        for row, region in enumerate(config.regions):
            for net in region.client_cidrs:
                width = net.max_prefixlen
                bits = int(net.network_address) >> (width - net.prefixlen)
                levels[net.version].setdefault(net.prefixlen, {}).setdefault(bits, row)
        return cls(
            regions=regions,
            default=regions.index(default) if default in regions else 0,
            v4=_sorted(levels[4]),
            v6=_sorted(levels[6]),
        )

    @classmethod
    def of(
        cls, regions: Sequence[str], cidrs: Mapping[str, Sequence[str]], default: str
    ) -> Topology:
        """For tests and tools: regions with CIDRs given as strings."""
        levels: dict[int, dict[int, dict[int, int]]] = {4: {}, 6: {}}
        for row, region in enumerate(regions):
            for c in cidrs.get(region, ()):
                net = ipaddress.ip_network(c)
                bits = int(net.network_address) >> (net.max_prefixlen - net.prefixlen)
                levels[net.version].setdefault(net.prefixlen, {}).setdefault(bits, row)
        return cls(
            tuple(regions), list(regions).index(default), _sorted(levels[4]), _sorted(levels[6])
        )

    def row_for_address(self, address: str) -> int:
        """The row for a resolver's source address; remembered for the next query."""
        row = self.cache.get(address)
        if row is not None:
            return row
        try:
            ip = ipaddress.ip_address(address.partition("%")[0])
        except ValueError:
            row = self.default
        else:
            if ip.version == 6 and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            found = self._lookup(ip.version, int(ip), ip.max_prefixlen, ip.max_prefixlen)
            row = self.default if found is None else found[0]
        if len(self.cache) >= CACHE_LIMIT:
            self.cache.clear()
        self.cache[address] = row
        return row

    def row_for_subnet(self, version: int, network: int, prefix: int) -> Match:
        """The row for an ECS subnet (`network` holds the full-width address).

        Only CIDRs no longer than the client's prefix can decide; the scope
        is the matched CIDR's length, or — when a longer CIDR lies inside the
        client's subnet and the answer would depend on bits the client did not
        send — that CIDR's length (RFC 7871 §7.2.1: scope longer than source).
        A source prefix of 0 gets the default row with scope 0.
        """
        if prefix == 0:
            return Match(self.default, 0)
        width = 32 if version == 4 else 128
        found = self._lookup(version, network, width, prefix)
        finer = self._finer(version, network, width, prefix)
        if finer:
            return Match(self.default if found is None else found[0], finer)
        if found is None:
            return Match(self.default, prefix)
        return Match(found[0], found[1])

    def _lookup(self, version: int, value: int, width: int, longest: int) -> tuple[int, int] | None:
        for plen, nets in self.v4 if version == 4 else self.v6:
            if plen > longest:
                continue
            row = nets.get(value >> (width - plen))
            if row is not None:
                return row, plen
        return None

    def _finer(self, version: int, value: int, width: int, prefix: int) -> int:
        """The longest CIDR longer than `prefix` that lies inside the subnet, else 0."""
        top = value >> (width - prefix)
        for plen, nets in self.v4 if version == 4 else self.v6:
            if plen <= prefix:
                return 0
            if any(bits >> (plen - prefix) == top for bits in nets):
                return plen
        return 0


def _sorted(levels: Mapping[int, dict[int, int]]) -> tuple[_Level, ...]:
    return tuple((plen, levels[plen]) for plen in sorted(levels, reverse=True))
