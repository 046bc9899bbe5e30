"""`gtm accesspoint render|plan|apply|list|status`: what AccessPoints make in clusters,
making it so, and what the leaders report of them.

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

`list` and `status` read the AccessPoints where the members render them from:
the estate's home cluster (`accesspoints.cluster`, `accesspoints.namespaces`).
`list` prints one line per AP (clusters applied, VIPs, conditions); `status NAME`
its clusters (region, revision, applied, message), VIPs and conditions with
their reasons and messages, as each region's leader last wrote them (`-o json`:
the status as stored). Exit 1 when the home cluster cannot be read, 2 when the
estate names none or the AP does not exist.

    gtm accesspoint list -c estate.yaml
    gtm accesspoint status pay-gw -n pay -c estate.yaml

`resume NAME` continues a staged rollout (`spec.policy.rollout`) that is paused
after a cluster of `pauseAfter`, or aborted because a gate did not hold in time
(every gate gets a new clock). It writes the annotation `gtm.io/rollout-resume`
for the revision and cluster the status shows, on the resourceVersion it read,
then waits until a leader has acted on it (`--wait`, seconds; 0: do not wait).
Refused (exit 3) when the rollout is neither paused nor aborted, or when its
status is of another revision than the AP's template now (the leaders have not
seen the change yet). Exit 4 when no leader acted within the wait.

    gtm accesspoint resume pay-gw -n pay -c estate.yaml
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import click
import yaml
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from accesspoints import AccessPoint, AccessPointError, UpstreamVip, parse_accesspoint, render
from accesspoints.rollout import RESUME, Resume, template_revision
from gtm.config import ConfigError, Inventory, load
from gtm.config.accesspoints import cluster_regions, read_accesspoints
from gtm.config.source import read
from gtm.exits import ExitCode
from gtm.service.accesspoint_apply import (
    Catalog,
    apply_plan,
    cluster_of,
    default_weights,
    discover,
    open_objects,
    plan_step,
    until_gtm_decides,
)
from gtm.service.accesspoints import HomeAccessPoints, open_home
from kube import Conflict, KubeError


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
    target = cluster_of(cluster, inventory)
    catalog = Catalog.of(aps)
    docs: list[dict[str, Any]] = []
    refused = False
    for ap in aps:
        if cluster not in ap.spec.scope.clusters:
            click.echo(f"# {ap.namespace}/{ap.name}: {cluster} is not in its scope", err=True)
            continue
        weights = default_weights(ap, catalog, inventory)
        out = render(ap, target, _upstream_vips(ap, vips), weights, services=catalog.services)
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
            c = cluster_of(cluster, inventory)
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
    clusters = {name: cluster_of(name, inventory) for name in settings}
    refused = failed = False
    async with AsyncExitStack() as stack:
        objects = await open_objects(inventory, stack)
        found = await discover(aps, objects, clusters)
        catalog = Catalog.of(aps)
        for ap in aps:
            for name in ap.spec.scope.clusters:
                if name not in objects or (only and name not in only):
                    continue
                step = await plan_step(ap, catalog, name, found, objects[name], inventory)
                plan = step.plan
                click.echo(f"{ap.namespace}/{ap.name}: " + "\n  ".join(plan.lines()))
                for missing in step.rendered.unresolved:
                    click.echo(f"  upstream {missing}: no VIP discovered yet", err=True)
                refused = refused or bool(plan.problems or plan.of("conflict") or plan.of("hold"))
                if not apply or plan.problems:
                    continue
                done = await apply_plan(objects[name], plan, step.current, until_gtm_decides)
                for line in done.failed:
                    click.echo(f"  failed: {line}", err=True)
                failed = failed or bool(done.failed)
                click.echo(f"  applied {len(done.done)} change(s) in {name}")
    return ExitCode.FAILED if failed else ExitCode.REFUSED if refused else ExitCode.OK


@accesspoint.command("list")
@click.option("-c", "--config", "config", required=True, type=click.Path(dir_okay=False))
def list_(config: str) -> None:
    """One line per AccessPoint of the home cluster: clusters applied, VIPs, conditions."""
    sys.exit(asyncio.run(_list(config)))


@accesspoint.command("status")
@click.argument("name")
@click.option("-n", "--namespace", default=None, help="Default: the first watched namespace.")
@click.option("-c", "--config", "config", required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
def status_(name: str, namespace: str | None, config: str, output: str) -> None:
    """An AccessPoint's clusters, VIPs and conditions, as the leaders wrote them."""
    sys.exit(asyncio.run(_status(name, namespace, config, output)))


@accesspoint.command("resume")
@click.argument("name")
@click.option("-n", "--namespace", default=None, help="Default: the first watched namespace.")
@click.option("-c", "--config", "config", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds to wait for a leader to act (default: two resyncs and 10 s; 0: no wait).",
)
def resume_(name: str, namespace: str | None, config: str, wait: float | None) -> None:
    """Continue a staged rollout that is paused, or aborted on a gate."""
    sys.exit(asyncio.run(_resume(name, namespace, config, wait)))


async def _resume(name: str, namespace: str | None, config: str, wait: float | None) -> int:
    async with AsyncExitStack() as stack:
        opened = await _home(config, stack)
        if isinstance(opened, int):
            return opened
        home, inventory = opened
        resync = inventory.config.accesspoints.resync
        ns = namespace or home.namespaces[0]
        doc = await _one(home, ns, name)
        if isinstance(doc, int):
            return doc
        try:
            ap = parse_accesspoint(doc)
        except AccessPointError as e:
            click.echo(f"AccessPoint {ns}/{name} does not parse: {e}", err=True)
            return ExitCode.REFUSED
        rollout = (doc.get("status") or {}).get("rollout") or {}
        revision, phase = template_revision(ap), rollout.get("phase")
        if ap.spec.policy.rollout is None:
            click.echo(f"AccessPoint {ns}/{name} has no spec.policy.rollout", err=True)
            return ExitCode.REFUSED
        if rollout.get("revision") != revision:
            click.echo(
                f"AccessPoint {ns}/{name}: its rollout status is of revision "
                f"{rollout.get('revision') or 'none'}, its template is now {revision}: "
                "the leaders have not acted on the change yet; nothing to resume",
                err=True,
            )
            return ExitCode.REFUSED
        if phase not in ("Paused", "Aborted") or not rollout.get("cluster"):
            click.echo(
                f"AccessPoint {ns}/{name}: the rollout of {revision} is {phase}, "
                "neither paused nor aborted: nothing to resume",
                err=True,
            )
            return ExitCode.REFUSED
        cluster = str(rollout["cluster"])
        mark = Resume(revision, cluster, datetime.now(UTC)).annotation()
        version = str((doc.get("metadata") or {}).get("resourceVersion"))
        try:
            await home.annotate(ns, name, RESUME, mark, version)
        except Conflict:
            click.echo(
                f"AccessPoint {ns}/{name} changed while resuming; nothing written: run it again",
                err=True,
            )
            return ExitCode.FAILED
        except KubeError as e:
            click.echo(f"cannot write the resume of {ns}/{name}: {e}", err=True)
            return ExitCode.FAILED
        click.echo(f"resume written: {ns}/{name} revision {revision}, {phase} at {cluster}")
        limit = 2 * resync + 10 if wait is None else wait
        if limit == 0:
            return ExitCode.OK
        deadline = asyncio.get_running_loop().time() + limit
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(min(1.0, limit))
            try:
                now = await home.get(ns, name)
            except KubeError:
                continue  # read again until the deadline
            after = ((now or {}).get("status") or {}).get("rollout") or {}
            if after.get("revision") != revision or (after.get("phase"), after.get("since")) != (
                phase,
                rollout.get("since"),
            ):
                click.echo(
                    f"rollout of {revision}: {after.get('phase')} at step {after.get('step')}"
                    f" ({after.get('message', '')})"
                )
                return ExitCode.OK
    click.echo(
        f"no leader acted on the resume within {limit:g}s (is a member leading? gtm status); "
        "the annotation stays: it is acted on at the next pass",
        err=True,
    )
    return ExitCode.TIMEOUT


async def _one(home: HomeAccessPoints, ns: str, name: str) -> dict[str, Any] | int:
    """The AP as the home cluster holds it, or the exit code (said why)."""
    try:
        doc = await home.get(ns, name)
    except KubeError as e:
        click.echo(f"cannot read AccessPoint {ns}/{name}: {e}", err=True)
        return ExitCode.FAILED
    if doc is None:
        click.echo(f"AccessPoint {ns}/{name}: not found", err=True)
        return ExitCode.INPUT
    return doc


async def _home(config: str, stack: AsyncExitStack) -> tuple[HomeAccessPoints, Inventory] | int:
    """The home cluster's AccessPoints and the estate (read once), or the exit code."""
    try:
        inventory = load(config)
    except ConfigError as e:
        for p in e.problems:
            click.echo(str(p), err=True)
        return ExitCode.INPUT
    opened = await open_home(inventory, stack, only_home=True)
    if opened is None:
        click.echo(f"{config}: accesspoints.cluster names no home cluster", err=True)
        return ExitCode.INPUT
    return opened[0], inventory


def _conditions(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = (doc.get("status") or {}).get("conditions") or []
    return {str(c.get("type")): c for c in found if isinstance(c, Mapping)}


async def _list(config: str) -> int:
    async with AsyncExitStack() as stack:
        opened = await _home(config, stack)
        if isinstance(opened, int):
            return opened
        home = opened[0]
        try:
            docs = await home.list()
        except KubeError as e:
            click.echo(f"cannot list the AccessPoints: {e}", err=True)
            return ExitCode.FAILED
    head = ("NAMESPACE", "NAME", "APPLIED", "ROLLOUT", "VIPS", "L4READY", "UPSTREAMS", "DEGRADED")
    rows = [head]
    for doc in docs:
        meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
        status = doc.get("status") or {}
        scope = (spec.get("scope") or {}).get("clusters") or []
        applied = sum(1 for e in status.get("clusters") or [] if e.get("applied"))
        conditions = _conditions(doc)
        rows.append(
            (
                str(meta.get("namespace")),
                str(meta.get("name")),
                f"{applied}/{len(scope)}",
                str((status.get("rollout") or {}).get("phase") or "-"),
                str(len(status.get("vips") or [])),
                *(
                    str((conditions.get(c) or {}).get("status", "-"))
                    for c in ("L4Ready", "UpstreamsResolved", "Degraded")
                ),
            )
        )
    Console(highlight=False).print(_table(rows))
    return ExitCode.OK


async def _status(name: str, namespace: str | None, config: str, output: str) -> int:
    async with AsyncExitStack() as stack:
        opened = await _home(config, stack)
        if isinstance(opened, int):
            return opened
        home = opened[0]
        ns = namespace or home.namespaces[0]
        doc = await _one(home, ns, name)
        if isinstance(doc, int):
            return doc
    status = doc.get("status") or {}
    if output == "json":
        click.echo(json.dumps(status, indent=2, sort_keys=True))
        return ExitCode.OK
    meta = doc.get("metadata") or {}
    console = Console(highlight=False)
    console.print(
        escape(
            f"AccessPoint {ns}/{name}: generation {meta.get('generation', '?')},"
            f" observed {status.get('observedGeneration', 'never')}"
        )
    )
    rollout = status.get("rollout")
    if rollout:
        console.print(
            escape(
                f"Rollout of template {rollout.get('revision')}: {rollout.get('phase')}"
                f" at step {rollout.get('step')} since {rollout.get('since')}"
                f" ({rollout.get('message', '')})"
            )
        )
    rows = [("CLUSTER", "REGION", "TEMPLATE", "REVISION", "APPLIED", "MESSAGE")]
    for e in status.get("clusters") or []:
        rows.append(
            (
                str(e.get("name")),
                str(e.get("region", "-")),
                str(e.get("template") or "-"),
                str(e.get("revision") or "-"),
                "yes" if e.get("applied") else "no",
                str(e.get("message", "")),
            )
        )
    console.print(_table(rows, "clusters"))
    vips = status.get("vips") or []
    shown = ", ".join(f"{v.get('ip')} ({v.get('cluster')})" for v in vips) or "none"
    console.print(escape(f"VIPs: {shown}"))
    rows = [("CONDITION", "STATUS", "REASON", "SINCE", "MESSAGE")]
    for kind, c in _conditions(doc).items():
        rows.append(
            (
                kind,
                str(c.get("status")),
                str(c.get("reason", "")),
                str(c.get("lastTransitionTime", "")),
                str(c.get("message", "")),
            )
        )
    console.print(_table(rows, "conditions"))
    return ExitCode.OK


def _table(rows: list[tuple[str, ...]], title: str | None = None) -> Table:
    """The first row as the columns' names; every cell escaped (messages are anyone's text)."""
    t = Table(title=title, box=box.SIMPLE)
    for name in rows[0]:
        t.add_column(name)
    for row in rows[1:]:
        t.add_row(*(escape(cell) for cell in row))
    return t
