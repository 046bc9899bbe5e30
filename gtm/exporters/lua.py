"""Render a service's rows into the body of a PowerDNS LUA record.

The record picks the row by the client's network, then an answer by weight:

    A ";--[[gtm]] if netmask({ '127.0.2.0/24', '10.2.0.0/16' }) then return
       pickwrandom({ {98,'127.0.2.1'}, {1,'127.0.1.1'}, {1,'127.0.3.1'} }) end
       return pickwrandom({ {98,'127.0.1.1'}, ... })"

`netmask()` tests `bestwho`: the EDNS Client Subnet when the query carries
one and pdns runs with `edns-subnet-processing=yes`, else the resolver's
address. A client matching no region's networks gets the default row.

The row of the most specific matching network wins (longest prefix, as a
routing table). The networks of one pick share one `netmask()` test, the
tests ordered so that a network comes before any broader network of another
pick; when picks nest both ways, the tests go by prefix length, longest
first. A network whose pick is the default one is left out when no broader
network would catch its clients with another pick.

The body is split into quoted strings of at most 255 bytes, cut after a
space, as PowerDNS asks for LUA records that travel by AXFR; pdns joins them
back. `--[[gtm]]` marks the records gtm owns.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gtm.exporters.weights import Pick

MARKER = "--[[gtm]]"
CHUNK = 255  # bytes of one character-string in the record's wire form

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Branch:
    """Clients in any of `networks` get `pick`."""

    networks: tuple[Network, ...]
    pick: Pick


def default_pick(
    picks: Mapping[str, Pick], order: Sequence[str], default_region: str
) -> Pick | None:
    """The default row's pick; when it has no answer, the first region's that has one."""
    chosen = picks.get(default_region)
    if chosen:
        return chosen
    for region in order:
        if picks.get(region):
            return picks[region]
    return None


def branches(
    picks: Mapping[str, Pick],
    networks: Mapping[str, Sequence[Network]],
    order: Sequence[str],
    default: Pick,
) -> tuple[Branch, ...]:
    """The `netmask()` tests, in an order whose first match is the longest prefix match."""
    entries: list[tuple[Network, Pick]] = []
    seen: set[Network] = set()
    for region in order:
        pick = picks.get(region) or default  # no answer in this row: the default row
        for net in networks.get(region, ()):
            if net not in seen:
                seen.add(net)
                entries.append((net, pick))
    kept = [
        (net, pick)
        for net, pick in entries
        if pick != default or any(_broader(other, net) and p != default for other, p in entries)
    ]
    return _grouped(kept) or _by_prefix(kept)


def _grouped(entries: Sequence[tuple[Network, Pick]]) -> tuple[Branch, ...] | None:
    """One test per pick, ordered so a network comes before any broader one of another pick.

    None when no such order exists (picks whose networks nest both ways).
    """
    groups: dict[Pick, list[Network]] = {}
    for net, pick in entries:
        groups.setdefault(pick, []).append(net)
    keys = list(groups)
    before: dict[Pick, set[Pick]] = {k: set() for k in keys}  # k must come after these
    for inner_pick, inner_nets in groups.items():
        for outer_pick, outer_nets in groups.items():
            if inner_pick != outer_pick and any(
                _broader(o, i) for o in outer_nets for i in inner_nets
            ):
                before[outer_pick].add(inner_pick)
    ordered: list[Pick] = []
    while len(ordered) < len(keys):
        ready = next((k for k in keys if k not in ordered and before[k] <= set(ordered)), None)
        if ready is None:
            return None
        ordered.append(ready)
    return tuple(Branch(tuple(groups[k]), k) for k in ordered)


def _by_prefix(entries: Sequence[tuple[Network, Pick]]) -> tuple[Branch, ...]:
    """Longest prefix first; consecutive networks with the same pick share a test."""
    first: dict[Pick, int] = {}
    for i, (_, pick) in enumerate(entries):
        first.setdefault(pick, i)
    # Same-length networks never overlap, so among them the order is free.
    ordered = sorted(entries, key=lambda e: (-e[0].prefixlen, first[e[1]], e[0].version))
    out: list[Branch] = []
    for net, pick in ordered:
        if out and out[-1].pick == pick:
            out[-1] = Branch((*out[-1].networks, net), pick)
        else:
            out.append(Branch((net,), pick))
    return tuple(out)


def _broader(outer: Network, inner: Network) -> bool:
    return (
        outer.version == inner.version
        and outer.prefixlen < inner.prefixlen
        and inner.subnet_of(outer)  # type: ignore[arg-type]
    )


def code(rules: Sequence[Branch], default: Pick) -> str:
    """The Lua statements (run as given: the leading ';' stops pdns prepending 'return')."""
    parts = [f";{MARKER}"]
    for b in rules:
        nets = ", ".join(f"'{n}'" for n in b.networks)
        parts.append(f"if netmask({{ {nets} }}) then return {_choose(b.pick)} end")
    parts.append(f"return {_choose(default)}")
    return " ".join(parts)


def _choose(pick: Pick) -> str:
    if len(pick.choices) == 1:
        return f"'{pick.choices[0][1]}'"
    items = ", ".join(f"{{{w},'{a}'}}" for w, a in pick)
    return f"pickwrandom({{ {items} }})"


def content(rtype: str, lua: str) -> str:
    """The LUA record's content: the type it answers, then the code as quoted strings."""
    return f"{rtype} " + " ".join(f'"{c}"' for c in chunks(lua))


def chunks(text: str, size: int = CHUNK) -> list[str]:
    """Cut `text` after spaces into pieces of at most `size` bytes; joined, they are `text`.

    A single word longer than `size` stays whole (gtm's code has none).
    """
    words = text.split(" ")
    tokens = [w + " " for w in words[:-1]] + [words[-1]]
    out: list[str] = []
    current = ""
    for token in tokens:
        if current and len((current + token).encode()) > size:
            out.append(current)
            current = token
        else:
            current += token
    out.append(current)
    return out


def render(
    rtype: str,
    picks: Mapping[str, Pick],
    networks: Mapping[str, Sequence[Network]],
    order: Sequence[str],
    default_region: str,
) -> str | None:
    """A LUA record answering `rtype` from the rows' picks; None when no row has an answer."""
    default = default_pick(picks, order, default_region)
    if default is None:
        return None
    return content(rtype, code(branches(picks, networks, order, default), default))


def is_managed(record: str) -> bool:
    """Whether a LUA record's content is one gtm wrote."""
    _, _, body = record.partition(" ")
    return body.lstrip('"').startswith(f";{MARKER}")
