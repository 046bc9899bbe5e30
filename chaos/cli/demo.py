"""`gtm demo`: the main job on an embedded default, all on 127.0.0.1.

Starts a simulated three-region estate — a VIP HTTP server per VIP, one
simulated Kubernetes cluster per region holding the WorkloadEntries — and a
real HA pair of `gtm serve` processes per region with embedded DNS, then
shows a live table until Ctrl-C. A second terminal in the same directory
drives it with the runbook commands (`gtm region exit dc2 --reason demo
--wait`), which find the demo's API and token in `.gtm-demo/cli.yaml`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections import Counter
from typing import Any

import aiohttp
import click
import dns.asyncquery
import dns.edns
import dns.exception
import dns.message
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from chaos.estate import SimulatedEstate
from gtm.cli.render import table_view
from gtm.status import MemberStatus, StatusError, read_status
from policies import WeightTable


@click.command()
@click.option(
    "--estate",
    "estate_path",
    default="examples/estate.yaml",
    show_default=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The estate to simulate.",
)
@click.option("--work-dir", default=".gtm-demo", show_default=True, help="Configs, state and logs.")
@click.option(
    "--base-port", type=int, default=None, help="Move every port (default: DNS 5353, API 8080)."
)
@click.option(
    "--duration", type=float, default=None, help="Stop after this many seconds (default: Ctrl-C)."
)
@click.option(
    "--no-live", is_flag=True, help="Print where to look, then wait without the live table."
)
def demo(
    estate_path: str, work_dir: str, base_port: int | None, duration: float | None, no_live: bool
) -> None:
    """Start a simulated three-region estate with an HA pair of gtm per region."""
    console = Console()
    try:
        asyncio.run(_demo(console, estate_path, work_dir, base_port, duration, not no_live))
    except KeyboardInterrupt:
        pass
    console.print("demo stopped; configs, state and logs stay in " + work_dir)


async def _demo(
    console: Console,
    estate_path: str,
    work_dir: str,
    base_port: int | None,
    duration: float | None,
    live: bool,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    console.print(f"starting the simulated estate from {estate_path} in {work_dir} …")
    async with SimulatedEstate(estate_path, work_dir, base_port=base_port) as estate:
        estate.start_members(
            None, lambda name, path: [sys.executable, "-m", "gtm", "serve", "--config", str(path)]
        )
        try:
            await estate.wait_members(path="/readyz", within=60.0)
        except TimeoutError:
            for name in estate.member_configs:
                console.print(f"[red]{name}[/red]: " + estate.launcher.log_tail(name)[-2000:])
            raise click.ClickException("the gtm members did not get ready within 60 s") from None
        await _until_led(estate)
        console.print(_where_to_look(estate, work_dir))
        deadline = None if duration is None else time.monotonic() + duration
        if live:
            await _live_table(console, estate, stop, deadline)
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(
                    None if deadline is None else deadline - time.monotonic()
                ):
                    await stop.wait()
        console.print("\nstopping …")


async def _until_led(estate: SimulatedEstate, within: float = 30.0) -> None:
    """Until every region's pair has elected its leader: then the runbook works at once."""
    regions = {r.name for r in estate.inventory.config.regions}
    headers = {"Authorization": f"Bearer {estate.viewer_token}"}
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession(
        headers=headers, timeout=aiohttp.ClientTimeout(total=2.0)
    ) as s:
        while time.monotonic() < deadline:
            statuses = await asyncio.gather(*(_status(s, url) for url in estate.api_urls.values()))
            led = {d.region for d in statuses if d is not None and d.role == "leader"}
            if led >= regions:
                return
            await asyncio.sleep(0.5)
    raise click.ClickException(f"no leader elected within {within:g}s in {sorted(regions - led)}")


def _where_to_look(estate: SimulatedEstate, work_dir: str) -> Panel:
    first = next(iter(estate.api_urls))
    api = estate.api_urls[first]
    dns_port = estate.dns_ports[first]
    regions = estate.inventory.config.regions
    fqdn = estate.inventory.config.services[0].fqdn
    members = ", ".join(
        f"{n} (DNS :{estate.dns_ports[n]}, API {estate.api_urls[n]})" for n in estate.api_urls
    )
    other = regions[1] if len(regions) > 1 else regions[0]
    subnet = other.client_cidrs[0] if other.client_cidrs else None
    lines = [
        f"[bold]gtm demo[/bold]: {len(regions)} regions, {len(estate.api_urls)} gtm members "
        f"(an HA pair per region), {len(estate.inventory.estate.services)} services; "
        f"everything on 127.0.0.1, work dir {work_dir}",
        "",
        f"DNS      dig @127.0.0.1 -p {dns_port} {fqdn}",
    ]
    if subnet is not None:
        lines.append(
            f"         dig @127.0.0.1 -p {dns_port} {fqdn} +subnet={subnet}   (as a client in {other.name})"
        )
    lines += [
        f'API      curl -H "Authorization: Bearer $(cat {work_dir}/viewer.token)" {api}/v1/status',
        f"Metrics  {api}/metrics",
        "Runbook  in a second terminal, in this directory:",
        f"         .venv/bin/gtm region exit {other.name} --reason demo --wait",
        f"         .venv/bin/gtm region enter {other.name} --wait",
        "         .venv/bin/gtm status    .venv/bin/gtm history",
        f"Logs     {work_dir}/logs/   members: {members}",
        "Ctrl-C stops everything.",
    ]
    return Panel("\n".join(lines), title="where to look", expand=False)


async def _live_table(
    console: Console, estate: SimulatedEstate, stop: asyncio.Event, deadline: float | None
) -> None:
    headers = {"Authorization": f"Bearer {estate.viewer_token}"}
    timeout = aiohttp.ClientTimeout(total=2.0)
    regions = [r.name for r in estate.inventory.config.regions]
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        with Live(console=console, refresh_per_second=2, transient=False) as live:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                statuses = await asyncio.gather(
                    *(_status(session, url) for url in estate.api_urls.values())
                )
                leader_url = _leader_url(estate, statuses)
                table_doc = await _get(session, leader_url + "/v1/table") if leader_url else None
                answers = await _sample_answers(estate)
                live.update(_view(estate, regions, statuses, table_doc, answers))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await stop.wait()


async def _status(session: aiohttp.ClientSession, url: str) -> MemberStatus | None:
    doc = await _get(session, url + "/v1/status")
    try:
        return None if doc is None else read_status(doc, url)
    except StatusError:
        return None


async def _get(session: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    try:
        async with session.get(url) as resp:
            if resp.status != 200:
                return None
            return await resp.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


SAMPLES = 40  # DNS queries per client region and refresh


async def _sample_answers(estate: SimulatedEstate) -> dict[str, Counter[str]]:
    """Ask the first member's DNS for the first service as a client of each region
    (ECS), and count the answers by the region of the VIP: what clients get."""
    first = next(iter(estate.dns_ports))
    port = estate.dns_ports[first]
    service = estate.inventory.estate.services[0]
    region_of = {v.address: r for r, vips in service.vips.items() for v in vips}
    out: dict[str, Counter[str]] = {}
    for region in estate.inventory.config.regions:
        counts: Counter[str] = Counter()
        if region.client_cidrs:
            subnet = region.client_cidrs[0]
            ecs = dns.edns.ECSOption(str(subnet.network_address), subnet.prefixlen)
            for _ in range(SAMPLES):
                query = dns.message.make_query(service.fqdn, "A", use_edns=0, options=[ecs])
                try:
                    reply = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=1.0)
                except (TimeoutError, dns.exception.DNSException, OSError):
                    counts["no answer"] += 1
                    continue
                for rrset in reply.answer:
                    for rr in rrset:
                        counts[region_of.get(rr.to_text(), "?")] += 1
        out[region.name] = counts
    return out


def _leader_url(estate: SimulatedEstate, statuses: list[MemberStatus | None]) -> str | None:
    for url, status in zip(estate.api_urls.values(), statuses, strict=True):
        if status is not None and status.role == "leader":
            return url
    return next(iter(estate.api_urls.values()))


def _view(
    estate: SimulatedEstate,
    regions: list[str],
    statuses: list[MemberStatus | None],
    table_doc: dict[str, Any] | None,
    answers: dict[str, Counter[str]],
) -> Group:
    members = Table(title="members", show_edge=False)
    for col in ("member", "role", "DNS generation", "WLEs in sync", "health", "overrides"):
        members.add_column(col)
    for name, status in zip(estate.api_urls, statuses, strict=True):
        if status is None:
            members.add_row(name, "[red]not answering[/red]", "", "", "", "")
            continue
        mesh = ", ".join(f"{c} {m.in_sync}/{m.desired}" for c, m in status.mesh.items())
        down = status.health.get("down", [])
        active = [f"{o['kind']} {o['region']}" for o in status.intent.active]
        members.add_row(
            name,
            status.role,
            str(status.generation),
            mesh or "—",
            f"[red]down: {', '.join(down)}[/red]" if down else "all up",
            ", ".join(active) or "—",
        )
    parts: list[Any] = [members]
    if table_doc is not None:
        table = WeightTable.from_dict(table_doc)
        parts.append(
            table_view(table, regions, title=f"weight table served, generation {table.generation}")
        )
    service = estate.inventory.estate.services[0]
    observed = Table(
        title=f"DNS answers observed for {service.fqdn} ({SAMPLES} queries per client region)",
        show_edge=False,
    )
    observed.add_column("clients in")
    for r in regions:
        observed.add_column(f"→ {r}", justify="right")
    for source, counts in answers.items():
        total = sum(counts.values()) or 1
        observed.add_row(source, *(f"{100 * counts[r] / total:.0f}%" for r in regions))
    parts.append(observed)
    return Group(*parts)
