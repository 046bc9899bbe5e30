"""What `gtm serve` needs of a valid config: the files it names, and where clients go.

Where clients go must also be plain: client CIDRs of two regions that
overlap are refused here, naming both and the one that wins.

`gtm validate` runs these rules with the others, so a config it passes does
not stop `gtm serve` at its start. They are not part of `load`: a member
reloading its config, a test's estate or a drill need no client CIDRs, and a
config validated in CI names files that exist only where the member runs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from gtm.config.errors import FieldPath
from gtm.config.model import Config

Found = Iterator[tuple[FieldPath, str]]


def serving(config: Config, *, files: bool = True) -> list[tuple[FieldPath, str]]:
    """Problems `gtm serve` would meet, or would hide; `files=False` leaves the files aside."""
    return [*_clients(config), *overlaps(config), *(_files(config) if files else ())]


def _clients(config: Config) -> Found:
    """Every region says which clients are its, unless a default region takes the rest."""
    if config.dns.default_region is not None:
        return
    for i, r in enumerate(config.regions):
        if not r.client_cidrs:
            yield (
                ("regions", i, "client_cidrs"),
                f"{r.name} lists no client CIDRs: list them, or name the region of clients "
                "that match none with dns.default_region",
            )


def overlaps(config: Config) -> Found:
    """Client CIDRs of two regions where one holds the other.

    DNS gives such clients the row of the longest prefix, so a member serves
    it; but it is more often a mistake than a carve-out, so `gtm validate`
    refuses it and says which region wins. Two CIDRs overlap only when one
    holds the other, so in address order each is checked against the chain
    of CIDRs that still hold it. (The same CIDR in two regions is refused by
    `load`.)
    """
    cidrs = sorted(
        (c.version, int(c.network_address), c.prefixlen, i, j, c)
        for i, r in enumerate(config.regions)
        for j, c in enumerate(r.client_cidrs)
    )
    holders: list[tuple[int, int, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    for version, start, _, i, j, cidr in cidrs:
        while holders and (
            holders[-1][2].version != version or int(holders[-1][2].broadcast_address) < start
        ):
            holders.pop()
        region = config.regions[i].name
        other = next((h for h in reversed(holders) if config.regions[h[0]].name != region), None)
        if other is not None:
            oi, oj, outer = other
            yield (
                ("regions", i, "client_cidrs", j),
                f"{cidr} of {region} overlaps {outer} of {config.regions[oi].name} "
                f"(regions[{oi}].client_cidrs[{oj}]): its clients get {region}'s row "
                "(the longest prefix wins)",
            )
        holders.append((i, j, cidr))


def _named(config: Config) -> Iterator[tuple[FieldPath, str]]:
    """Each file the config names (path in the config, file name), as `gtm serve` opens it."""
    api = config.api
    if api.tokens_file is not None:
        yield ("api", "tokens_file"), api.tokens_file
    if api.peer_token_file is not None:
        yield ("api", "peer_token_file"), api.peer_token_file
    if api.tls is not None:
        yield ("api", "tls", "cert"), api.tls.cert
        yield ("api", "tls", "key"), api.tls.key
    powerdns = config.dns.powerdns
    if powerdns is not None and powerdns.api_key_file is not None:
        yield ("dns", "powerdns", "api_key_file"), powerdns.api_key_file
    for i, c in enumerate(config.kubernetes.clusters):
        if c.kubeconfig is not None:
            yield ("kubernetes", "clusters", i, "kubeconfig"), c.kubeconfig
    for i, s in enumerate(config.services):
        if s.probe.ca_bundle is not None:
            yield ("services", i, "probe", "ca_bundle"), s.probe.ca_bundle


def _files(config: Config) -> Found:
    for path, name in _named(config):
        try:
            with open(name, "rb") as f:
                f.read(1)
        except OSError as e:
            yield path, f"cannot read {name}: {e.strerror or e}"
