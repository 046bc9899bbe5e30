"""`gtm accesspoint render|plan|apply`: what AccessPoints make in clusters, and making it so.

`render` needs no cluster: it prints the objects for one cluster.

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

`plan` and `apply` work on the estate's clusters (`kubernetes.clusters`, their
kubeconfig and context): each AP's VIPs are discovered from its Service's status
in every cluster of its scope, then per cluster the objects are rendered, what
the cluster holds is read (under the rendered names, and everything labelled as
the AP's), and the plan printed: create / update with the changed fields /
delete / conflict / hold. `apply` then applies it (a new WorkloadEntry gets its
Healthy condition at once: out until gtm's reconciler brings it in when it is
a gtm service's; in otherwise). While a cluster of an upstream's scope cannot
be read, its VIPs are unknown, not gone: nothing of the downstream AP is
deleted (each such delete is printed as `hold … : why`). Exit 1 when a change
failed, else 3 when a cluster was refused, an object is someone else's or a
delete was held.

    gtm accesspoint plan examples/accesspoints/two-tier.yaml -c estate.yaml
    gtm accesspoint apply examples/accesspoints/two-tier.yaml -c estate.yaml --cluster dc2-k8s
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import click
import yaml

from accesspoints import AccessPoint, Cluster, UpstreamVip, plan_cluster, render
from accesspoints.render import object_key
from gtm.config import ConfigError, Inventory, load
from gtm.config.accesspoints import cluster_regions, read_accesspoints
from gtm.config.checks import split_of
from gtm.config.source import read
from gtm.exits import ExitCode
from gtm.service.accesspoint_apply import (
    ClusterObjects,
    Discovered,
    apply_plan,
    current_objects,
    discover,
    until_gtm_decides,
)
from gtm.service.backends import retry_settings
from kube import Client, load_configuration


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
        weights = _weights(ap, aps, inventory)
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


def _weights(ap: AccessPoint, aps: list[AccessPoint], inventory: Inventory) -> tuple[int, int]:
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


@accesspoint.command("plan")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-c", "--config", "config", required=True, type=click.Path(dir_okay=False))
@click.option("--cluster", "only", multiple=True, help="Only these clusters (default: all).")
def plan_(file: str, config: str, only: tuple[str, ...]) -> None:
    """Print what applying FILE's AccessPoints would change in each cluster."""
    sys.exit(asyncio.run(_run(file, config, only, apply=False)))


@accesspoint.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-c", "--config", "config", required=True, type=click.Path(dir_okay=False))
@click.option("--cluster", "only", multiple=True, help="Only these clusters (default: all).")
def apply_(file: str, config: str, only: tuple[str, ...]) -> None:
    """Apply FILE's AccessPoints to the estate's clusters: plan, then apply, per cluster."""
    sys.exit(asyncio.run(_run(file, config, only, apply=True)))


async def _run(file: str, config: str, only: tuple[str, ...], *, apply: bool) -> int:
    try:
        inventory = load(config)
        aps = read_accesspoints(file, inventory)
    except ConfigError as e:
        for p in e.problems:
            click.echo(str(p), err=True)
        return ExitCode.INPUT
    settings = {c.name: c for c in inventory.config.kubernetes.clusters}
    if not settings:
        click.echo(f"{config}: lists no kubernetes.clusters to apply to", err=True)
        return ExitCode.INPUT
    unknown = sorted(set(only) - set(settings))
    if unknown:
        click.echo(f"--cluster {', '.join(unknown)}: not in {config}", err=True)
        return ExitCode.INPUT
    regions = cluster_regions(inventory)
    clusters = {name: _cluster(name, regions, inventory) for name in settings}
    refused = failed = False
    async with AsyncExitStack() as stack:
        objects: dict[str, ClusterObjects] = {}
        for name, c in settings.items():
            client = Client(
                await load_configuration(c),
                timeout=c.timeout,
                retry=retry_settings(c.retry),
                qps=c.qps,
                burst=c.burst,
                concurrency=c.concurrency,
                context={"cluster": name},
            )
            await stack.enter_async_context(client)
            objects[name] = ClusterObjects(client, name)
        found = {ap.name: await discover(ap, objects, clusters) for ap in aps}
        services = {a.name: a.name for a in aps if a.spec.gtm is not None}
        for ap in aps:
            upstreams = {
                u.access_point: found.get(u.access_point, Discovered()) for u in ap.spec.upstreams
            }
            ups = {name: list(d.vips) for name, d in upstreams.items()}
            held = [why for name, d in upstreams.items() if (why := d.held(name))]
            for name in ap.spec.scope.clusters:
                if name not in objects or (only and name not in only):
                    continue
                target = clusters[name]
                weights = _weights(ap, aps, inventory)
                rendered = render(ap, target, ups, weights, services=services)
                keys = [object_key(o) for o in rendered.objects]
                current = await current_objects(objects[name], ap, keys)
                overwrite = ap.spec.conflict_resolution == "Overwrite"
                plan = plan_cluster(
                    ap.name,
                    rendered,
                    current,
                    overwrite=overwrite,
                    hold_deletes="; ".join(held) or None,
                )
                click.echo(f"{ap.namespace}/{ap.name}: " + "\n  ".join(plan.lines()))
                for missing in rendered.unresolved:
                    click.echo(f"  upstream {missing}: no VIP discovered yet", err=True)
                refused = refused or bool(plan.problems or plan.of("conflict") or plan.of("hold"))
                if not apply or plan.problems:
                    continue
                done = await apply_plan(objects[name], plan, current, until_gtm_decides)
                for line in done.failed:
                    click.echo(f"  failed: {line}", err=True)
                failed = failed or bool(done.failed)
                click.echo(f"  applied {len(done.done)} change(s) in {name}")
    return ExitCode.FAILED if failed else ExitCode.REFUSED if refused else ExitCode.OK
