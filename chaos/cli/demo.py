"""`gtm demo`: the main job on an embedded default, all on 127.0.0.1.

Starts a simulated three-region estate — a VIP HTTP server per VIP, one
simulated Kubernetes cluster per region holding the WorkloadEntries — and a
real HA pair of `gtm serve` processes per region with embedded DNS, applies
one AccessPoint (`examples/accesspoints/one-tier.yaml`, beside the estate) in
the home cluster, which every member onboards as a service of its L4 VIPs, then
shows a live table until Ctrl-C (`chaos.cli.demo_view`: it refreshes every
`REFRESH` seconds whatever member is gone). Every port is checked before
anything starts. A second terminal drives it with the runbook commands the
demo prints (`gtm region exit dc2 --reason demo --wait`): in the same
directory with the default work dir they find the API and token in
`.gtm-demo/cli.yaml`; otherwise the printed lines carry `GTM_SERVER` and
`GTM_TOKEN_FILE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

import aiohttp
import click
import yaml
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel

from chaos.cli.demo_view import Observer, view
from chaos.estate import PortInUse, PortPlan, SimulatedEstate, ephemeral_range
from chaos.estate.ports import BLOCK
from gtm.config import load
from gtm.exits import ExitCode
from gtm.status import MemberStatus, StatusError, read_status
from kube import KubeError

REFRESH = 2.0  # seconds between two refreshes of the live table
ONBOARD = Path("accesspoints") / "one-tier.yaml"  # beside the estate: onboarded live
STOP_GRACE = 5.0  # seconds a member has to stop on SIGTERM before it is killed

DEFAULT_WORK_DIR = ".gtm-demo"  # where the runbook CLI looks for cli.yaml by itself


@click.command()
@click.option(
    "--estate",
    "estate_path",
    default="examples/estate.yaml",
    show_default=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The estate to simulate.",
)
@click.option(
    "--work-dir", default=DEFAULT_WORK_DIR, show_default=True, help="Configs, state and logs."
)
@click.option(
    "--base-port",
    type=int,
    default=None,
    help=f"Move every port into the {BLOCK} ports from this one: members' DNS and API, "
    "the simulated clusters, the VIPs (default: DNS 5353, API 8080, VIPs as the estate says).",
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
        ports = PortPlan() if base_port is None else PortPlan.from_base(base_port)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--base-port") from None
    _warn_ephemeral(ports, base_port)
    try:
        asyncio.run(_demo(console, estate_path, work_dir, base_port, duration, not no_live))
    except KeyboardInterrupt:
        pass
    except PortInUse as e:
        click.echo(f"gtm demo: {e}; stop what holds it or pick another --base-port", err=True)
        sys.exit(ExitCode.INPUT)
    console.print("demo stopped; configs, state and logs stay in " + work_dir)


def _warn_ephemeral(ports: PortPlan, base_port: int | None) -> None:
    """Warn when the block lies in the kernel's range for outgoing connections."""
    if base_port is None:
        return
    ephemeral = ephemeral_range()
    block = range(base_port, base_port + BLOCK)
    if block.start <= ephemeral[-1] and ephemeral[0] <= block[-1]:
        click.echo(
            f"gtm demo: warning: ports {block.start}..{block[-1]} lie in the kernel's ephemeral "
            f"range {ephemeral[0]}..{ephemeral[-1]} (net.ipv4.ip_local_port_range): an outgoing "
            "connection may take one of them while the demo runs; a base below "
            f"{ephemeral[0] - BLOCK} avoids it",
            err=True,
        )


async def _demo(
    console: Console,
    estate_path: str,
    work_dir: str,
    base_port: int | None,
    duration: float | None,
    live: bool,
) -> None:
    """Run the demo until it ends, Ctrl-C or SIGTERM (which cancels whatever it awaits)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    run = asyncio.create_task(_run(console, estate_path, work_dir, base_port, duration, live))
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({run, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not run.done():
            console.print("\nstopping …")
            run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _run(
    console: Console,
    estate_path: str,
    work_dir: str,
    base_port: int | None,
    duration: float | None,
    live: bool,
) -> None:
    console.print(f"starting the simulated estate from {estate_path} in {work_dir} …")
    estate = SimulatedEstate(estate_path, work_dir, base_port=base_port)
    await estate.start()
    try:
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
        onboarded = await _onboard(console, estate, Path(estate_path))
        console.print(_where_to_look(estate, work_dir, onboarded))
        deadline = None if duration is None else time.monotonic() + duration
        if live:
            await _live_table(console, estate, deadline)
        else:
            await asyncio.sleep(float("inf") if deadline is None else deadline - time.monotonic())
    finally:
        await estate.stop(STOP_GRACE)


async def _onboard(
    console: Console, estate: SimulatedEstate, estate_path: Path
) -> tuple[str, str, str] | None:
    """Apply `ONBOARD` (beside the estate file) in the home cluster, when the estate has an
    `accesspoints` section: the members onboard it within seconds. (namespace, name, fqdn)."""
    path = estate_path.parent / ONBOARD
    config = load(next(iter(estate.member_configs.values()))).config
    if config.accesspoints.cluster is None or not path.is_file():
        return None
    doc = yaml.safe_load(path.read_text())
    meta, gtm = doc.get("metadata") or {}, (doc.get("spec") or {}).get("gtm") or {}
    try:
        await estate.apply_accesspoint(doc)
    except KubeError as e:
        console.print(f"[yellow]AccessPoint {escape(str(path))} not applied: {escape(str(e))}")
        return None
    return str(meta.get("namespace")), str(meta.get("name")), str(gtm.get("fqdn"))


async def _until_led(estate: SimulatedEstate, within: float = 30.0) -> None:
    """Until every region's pair has elected its leader: then the runbook works at once."""
    regions = {r.name for r in estate.inventory.config.regions}
    headers = {"Authorization": f"Bearer {estate.viewer_token}"}
    deadline = time.monotonic() + within
    led: set[str] = set()
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


async def _status(session: aiohttp.ClientSession, url: str) -> MemberStatus | None:
    try:
        async with session.get(url + "/v1/status") as resp:
            if resp.status != 200:
                return None
            return read_status(await resp.json(), url)
    except (aiohttp.ClientError, TimeoutError, ValueError, StatusError):
        return None


def _here(path: Path) -> str:
    """`path` as typed in the current directory: relative below it, else absolute."""
    full = Path(os.path.abspath(path))
    with contextlib.suppress(ValueError):
        return str(full.relative_to(Path.cwd()))
    return str(full)


def gtm_command() -> str:
    """How to run this gtm from the current directory (`gtm`, `.venv/bin/gtm`, `… -m gtm`)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "gtm" and argv0.is_file():
        found = shutil.which("gtm")
        if found is not None and os.path.samefile(found, argv0):
            return "gtm"
        return shlex.quote(_here(argv0))
    return f"{shlex.quote(_here(Path(sys.executable)))} -m gtm"


def runbook_prefix(estate: SimulatedEstate) -> str:
    """What a runbook line needs in front to reach the demo from the current directory:
    nothing when the CLI finds `.gtm-demo/cli.yaml` here, else the server and token file."""
    here = Path.cwd() / DEFAULT_WORK_DIR / "cli.yaml"
    with contextlib.suppress(OSError):
        if here.exists() and here.samefile(estate.cli_config):
            return ""
    server = next(iter(estate.api_urls.values()))
    token = shlex.quote(_here(estate.tokens.operator_file))
    return f"GTM_SERVER={server} GTM_TOKEN_FILE={token} "


def _where_to_look(
    estate: SimulatedEstate, work_dir: str, onboarded: tuple[str, str, str] | None = None
) -> Panel:
    first = next(iter(estate.api_urls))
    api = estate.api_urls[first]
    dns_port = estate.dns_ports[first]
    regions = estate.inventory.config.regions
    service = estate.inventory.config.services[0]
    fqdn = service.fqdn
    members = ", ".join(
        f"{n} (DNS :{estate.dns_ports[n]}, API {estate.api_urls[n]})" for n in estate.api_urls
    )
    other = regions[1] if len(regions) > 1 else regions[0]
    subnet = other.client_cidrs[0] if other.client_cidrs else None
    vips = [v for vs in service.vips.values() for v in vs]
    gtm = gtm_command()
    prefix = runbook_prefix(estate)
    viewer = shlex.quote(_here(estate.tokens.viewer_file))
    lines = [
        f"[bold]gtm demo[/bold]: {len(regions)} regions, {len(estate.api_urls)} gtm members "
        f"(an HA pair per region), {len(estate.inventory.estate.services)} services; "
        f"everything on 127.0.0.1, work dir {escape(work_dir)}",
        "",
        f"DNS      dig @127.0.0.1 -p {dns_port} {fqdn}",
    ]
    if subnet is not None:
        lines.append(
            f"         dig @127.0.0.1 -p {dns_port} {fqdn} +subnet={subnet}   (as a client in {other.name})"
        )
    if vips:
        lines.append(
            f"VIPs     curl http://{vips[0].address}:{vips[0].port}/healthz   "
            f"({len(vips)} VIPs of {service.name}, each on its own address, port {vips[0].port})"
        )
    runbook = [
        f"{prefix}{gtm} region exit {other.name} --reason demo --wait",
        f"{prefix}{gtm} region enter {other.name} --wait",
        f"{prefix}{gtm} status",
        f"{prefix}{gtm} history",
    ]
    if onboarded is not None:
        ns, name, ap_fqdn = onboarded
        config = shlex.quote(_here(estate.member_configs[first]))
        lines += [
            f"AccessPoint {ns}/{name} applied in the home cluster: every member onboards it",
            f"         dig @127.0.0.1 -p {dns_port} {ap_fqdn}   (its L4 VIPs, in seconds)",
            f"         {gtm} accesspoint status {name} -n {ns} -c {config}",
        ]
    lines += [
        f'API      curl -H "Authorization: Bearer $(cat {viewer})" {api}/v1/status',
        f"Metrics  {api}/metrics",
        "Runbook  in a second terminal, in this directory:",
        *(f"         {escape(line)}" for line in runbook),
        f"Logs     {escape(work_dir)}/logs/   members: {members}",
        "Ctrl-C stops everything.",
    ]
    return Panel("\n".join(lines), title="where to look", expand=False)


async def _live_table(console: Console, estate: SimulatedEstate, deadline: float | None) -> None:
    """Refresh every `REFRESH` s until the deadline: in place on a terminal, else one
    view after another (a log keeps every refresh)."""
    headers = {"Authorization": f"Bearer {estate.viewer_token}"}
    regions = [r.name for r in estate.inventory.config.regions]
    fqdn = estate.inventory.estate.services[0].fqdn
    launcher = estate.launcher

    def exit_code(name: str) -> int | None:
        return launcher.returncode(name) if name in launcher.names else None

    async with aiohttp.ClientSession(headers=headers) as session:
        observer = Observer(estate, session, exit_code)
        with contextlib.ExitStack() as stack:
            live = (
                stack.enter_context(Live(console=console, refresh_per_second=2))
                if console.is_terminal
                else None
            )
            while deadline is None or time.monotonic() < deadline:
                tick = time.monotonic()
                shown = view(await observer.snapshot(), regions, fqdn, REFRESH)
                if live is not None:
                    live.update(shown)
                else:
                    console.print(shown)
                    console.file.flush()
                left = REFRESH - (time.monotonic() - tick)
                if deadline is not None:
                    left = min(left, deadline - time.monotonic())
                await asyncio.sleep(max(left, 0.0))
