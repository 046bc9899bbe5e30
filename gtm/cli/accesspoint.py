"""`gtm accesspoint render`: the objects an AccessPoint makes in one cluster, without a cluster.

    gtm accesspoint render examples/accesspoints/two-tier.yaml --cluster dc2 \\
        --vips examples/accesspoints/discovered/vips.yaml -c examples/estate.yaml

Prints the rendered objects as YAML documents, as `kubectl apply -f -` takes them:
the template (with its overrides for that cluster, routes to `upstream:NAME`
resolved), and per upstream one WorkloadEntry per discovered VIP and one
ServiceEntry. `--vips` gives the VIPs that discovery would find, as
`{<accesspoint>: {<cluster>: [ip, …]}}`. Upstream weights default to the
estate policy's split (`spec.gtm.policy` of the upstream, else `default`).
Exit 2 with every problem (file:line field: message) when an input is bad or
the render is refused for that cluster (an override that fails).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import click
import yaml

from accesspoints import AccessPoint, Cluster, UpstreamVip, render
from gtm.config import ConfigError, Inventory, load
from gtm.config.accesspoints import cluster_regions, read_accesspoints
from gtm.config.checks import split_of
from gtm.config.source import read
from gtm.exits import ExitCode


@click.group()
def accesspoint() -> None:
    """AccessPoints: one resource per traffic entry, rendered into every cluster of its scope."""


@accesspoint.command("render")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--cluster", required=True, help="The cluster to render for.")
@click.option("--vips", "vips_file", type=click.Path(dir_okay=False), help="Discovered VIPs.")
@click.option(
    "-c", "--config", "config", required=True, type=click.Path(dir_okay=False), help="The estate."
)
def render_(file: str, cluster: str, vips_file: str | None, config: str) -> None:
    """Print the objects the AccessPoints of FILE make in CLUSTER."""
    try:
        inventory = load(config)
        aps = read_accesspoints(file, inventory)
        vips = _vips(vips_file, inventory) if vips_file else {}
    except ConfigError as e:
        for p in e.problems:
            click.echo(str(p), err=True)
        sys.exit(ExitCode.INPUT)
    regions = cluster_regions(inventory)
    if cluster not in regions:
        click.echo(
            f"--cluster {cluster}: not a cluster of {config} ({', '.join(regions)})", err=True
        )
        sys.exit(ExitCode.INPUT)
    target = _cluster(cluster, regions, inventory)
    docs: list[dict[str, Any]] = []
    refused = False
    for ap in aps:
        if cluster not in ap.spec.scope.clusters:
            click.echo(f"# {ap.namespace}/{ap.name}: {cluster} is not in its scope", err=True)
            continue
        services = {a.name: a.name for a in aps if a.spec.gtm is not None}
        weights = _weights(ap, aps, inventory, target)
        out = render(ap, target, _upstream_vips(ap, vips), weights, services=services)
        for problem in out.problems:
            click.echo(f"{file}: {ap.namespace}/{ap.name} in {cluster}: {problem}", err=True)
            refused = True
        for name in out.unresolved:
            click.echo(f"# {ap.name}: upstream {name} has no VIP discovered yet", err=True)
        if not out.problems:
            click.echo(
                f"# {ap.namespace}/{ap.name} in {cluster}: revision {out.revision}", err=True
            )
            docs += out.objects
    click.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)
    sys.exit(ExitCode.INPUT if refused else ExitCode.OK)


def _cluster(name: str, regions: Mapping[str, str], inventory: Inventory) -> Cluster:
    region = regions[name]
    return Cluster(name, region, inventory.regions[region].locality)


def _vips(path: str, inventory: Inventory) -> dict[str, list[UpstreamVip]]:
    """`{<accesspoint>: {<cluster>: [ip, …]}}` as VIPs with their clusters' regions."""
    src = read(path)
    data = src.data
    regions = cluster_regions(inventory)
    problems = []
    out: dict[str, list[UpstreamVip]] = {}
    if not isinstance(data, Mapping):
        raise ConfigError([src.problem((), "expected {<accesspoint>: {<cluster>: [ip, …]}}")])
    for ap, by_cluster in data.items():
        if not isinstance(by_cluster, Mapping):
            problems.append(src.problem((ap,), "expected {<cluster>: [ip, …]}"))
            continue
        for cluster, ips in by_cluster.items():
            if cluster not in regions:
                problems.append(src.problem((ap, cluster), f"{cluster!r} is not a cluster"))
                continue
            if not isinstance(ips, list) or not all(isinstance(i, str) for i in ips):
                problems.append(src.problem((ap, cluster), "expected a list of IP addresses"))
                continue
            c = _cluster(cluster, regions, inventory)
            out.setdefault(str(ap), []).extend(
                UpstreamVip(c.name, c.region, c.locality, i) for i in ips
            )
    if problems:
        raise ConfigError(problems)
    return out


def _upstream_vips(
    ap: AccessPoint, vips: Mapping[str, list[UpstreamVip]]
) -> dict[str, list[UpstreamVip]]:
    return {u.access_point: vips.get(u.access_point, []) for u in ap.spec.upstreams}


def _weights(
    ap: AccessPoint, aps: list[AccessPoint], inventory: Inventory, cluster: Cluster
) -> tuple[int, int]:
    """The default upstream split: the upstream's gtm policy (else `default`), never 0."""
    by_name = {a.name: a for a in aps}
    policy = "default"
    for u in ap.spec.upstreams:
        up = by_name.get(u.access_point)
        if up is not None and up.spec.gtm is not None:
            policy = up.spec.gtm.policy
            break
    found = next((p for p in inventory.config.policies if p.name == policy), None)
    if found is None:
        return 98, 1
    local, remote = split_of(found, len(inventory.regions))
    return max(1, local), max(1, remote)
