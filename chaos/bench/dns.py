"""`gtm bench dns`: dnsperf against the embedded server, gdnsd and PowerDNS, in one run.

Every server answers the same weighted name (98/1/1 over three addresses)
under the same query mix, replayed by dnsperf from a binary query file
(`-B`) so that plain, EDNS0 and EDNS0 + Client Subnet queries interleave:

- gtm: `gtm dns serve` (uvloop, `--workers N`), topology by ECS/source
  address, weighted pick from the table; UDP on the compiled path where it
  is built (`--python-path` also measures the pure-Python one,
  `GTM_DNS_FAST_PATH=0`);
- gdnsd: the `weighted` plugin (DYNA, 98/1/1), in the foreground;
- PowerDNS: a LUA record `pickwrandom({{98,…},{1,…},{1,…}})`, bind backend,
  packet and query caches off so every query runs the pick (as it does on
  the other two).

Each is measured by dnsperf's queries/s and latency, and by the server's CPU
(psutil, user + system of its processes over the run); the figure compared
is queries/s per core of server CPU. The goals: gtm ≥ 1.0 x gdnsd and
≥ 30 x PowerDNS LUA per core. A server that cannot start is reported as
such, and the others' figures still print.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import dns.edns
import dns.message
import dns.query
import psutil
from rich.console import Console
from rich.table import Table

from gtm.dns.fast import ENV as FAST_PATH_ENV

NAME = "foo.example.com"
ADDRESSES = {"dc1": "192.0.2.1", "dc2": "198.51.100.1", "dc3": "203.0.113.1"}
WEIGHTS = {"dc1": 98, "dc2": 1, "dc3": 1}

ESTATE = """
regions:
  - {name: dc1, locality: r1/az1, client_cidrs: [127.0.0.0/24, 10.1.0.0/16]}
  - {name: dc2, locality: r2/az1, client_cidrs: [10.2.0.0/16]}
  - {name: dc3, locality: r3/az1, client_cidrs: [10.3.0.0/16]}
services:
  - name: foo
    fqdn: foo.example.com
    vips:
      dc1: [{address: 192.0.2.1}]
      dc2: [{address: 198.51.100.1}]
      dc3: [{address: 203.0.113.1}]
dns: {zones: [example.com], ttl: 30, default_region: dc1}
"""

GDNSD_CONFIG = """options => {{
  listen => [ 127.0.0.1:{port} ]
  run_dir => {dir}/run
  state_dir => {dir}/state
  edns_client_subnet => true
}}
plugins => {{ weighted => {{ foo => {{
{entries}
}} }} }}
"""

ZONE = """$ORIGIN example.com.
@ 30 IN SOA ns1 hostmaster 1 7200 1800 259200 30
@ 30 IN NS ns1
ns1 30 IN A 127.0.0.1
{foo}
"""

PDNS_CONFIG = """launch=bind
bind-config={dir}/named.conf
local-address=127.0.0.1
local-port={port}
socket-dir={dir}
enable-lua-records=yes
edns-subnet-processing=yes
daemon=no
guardian=no
disable-syslog=yes
loglevel=3
cache-ttl=0
query-cache-ttl=0
negquery-cache-ttl=0
"""


@dataclass(frozen=True)
class Result:
    server: str
    qps: float
    latency_ms: float
    latency_sd_ms: float
    lost: float  # share of queries without a reply
    cpu: float  # cores of server CPU used during the run
    local_share: float  # share of answers naming dc1's address (the 98)

    @property
    def per_core(self) -> float:
        return self.qps / self.cpu if self.cpu > 0 else 0.0


@dataclass(frozen=True)
class Server:
    name: str
    argv: list[str]
    port: int
    env: dict[str, str] | None = None


def query_file(path: Path, mix: Sequence[str]) -> None:
    """dnsperf's binary input (-B): 2-octet length, then the query (dnsperf sets the ID)."""
    queries = []
    for kind in mix:
        if kind == "plain":
            msg = dns.message.make_query(NAME, "A")
        elif kind == "edns":
            msg = dns.message.make_query(NAME, "A", use_edns=0, payload=1232)
        elif kind.startswith("ecs:"):
            subnet, _, prefix = kind[4:].partition("/")
            option = dns.edns.ECSOption(subnet, int(prefix))
            msg = dns.message.make_query(NAME, "A", use_edns=0, payload=1232, options=[option])
        else:
            raise click.BadParameter(f"unknown query kind {kind!r}", param_hint="--mix")
        msg.id = 0
        queries.append(msg.to_wire())
    path.write_bytes(b"".join(struct.pack("!H", len(q)) + q for q in queries))


def free_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port: int = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise OSError("no free port")


def gtm_server(workdir: Path, workers: int, use_uvloop: bool, python_path: bool = False) -> Server:
    config = workdir / "estate.yaml"
    config.write_text(ESTATE)
    port = free_port()
    argv = [sys.executable, "-m", "gtm", "dns", "serve", "-c", str(config)]
    argv += ["--listen", f"127.0.0.1:{port}", "--workers", str(workers)]
    argv += [] if use_uvloop else ["--no-uvloop"]
    name = "gtm" + (f" x{workers}" if workers > 1 else "") + ("" if use_uvloop else " (asyncio)")
    if python_path:  # the pure-Python UDP loop (gtm.dns.fast's switch)
        return Server(name + " (python path)", argv, port, {**os.environ, FAST_PATH_ENV: "0"})
    return Server(name, argv, port)


def gdnsd_server(workdir: Path) -> Server:
    d = workdir / "gdnsd"
    for sub in ("zones", "run", "state"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    port = free_port()
    entries = "\n".join(f"  {r} = [ {ADDRESSES[r]}, {WEIGHTS[r]} ]" for r in ADDRESSES)
    (d / "config").write_text(GDNSD_CONFIG.format(port=port, dir=d, entries=entries))
    (d / "zones" / "example.com").write_text(ZONE.format(foo="foo 30 DYNA weighted!foo"))
    return Server("gdnsd weighted", ["gdnsd", "-c", str(d), "-D", "start"], port)


def pdns_server(workdir: Path) -> Server:
    d = workdir / "pdns"
    d.mkdir(parents=True, exist_ok=True)
    port = free_port()
    picks = ",".join(f"{{{WEIGHTS[r]},'{ADDRESSES[r]}'}}" for r in ADDRESSES)
    foo = f'foo 30 IN LUA A "pickwrandom({{{picks}}})"'
    (d / "example.com.zone").write_text(ZONE.format(foo=foo))
    (d / "named.conf").write_text(
        f'zone "example.com" {{ type master; file "{d}/example.com.zone"; }};\n'
    )
    (d / "pdns.conf").write_text(PDNS_CONFIG.format(port=port, dir=d))
    return Server("PowerDNS LUA", ["pdns_server", f"--config-dir={d}"], port)


@contextlib.contextmanager
def running(server: Server, log: Path) -> Iterator[psutil.Process]:
    with log.open("w") as out:
        proc = subprocess.Popen(
            server.argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=server.env,
            start_new_session=True,
        )
        try:
            wait_answering(server.port, proc)
            yield psutil.Process(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_answering(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(Exception):
            r = dns.query.udp(
                dns.message.make_query(NAME, "A"), "127.0.0.1", port=port, timeout=0.3
            )
            if r.answer:
                return
        time.sleep(0.1)
    raise click.ClickException(f"{proc.args!r} did not answer on port {port}")


def local_share(port: int, n: int = 300) -> float:
    counts: Counter[str] = Counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for _ in range(n):
            s.sendto(dns.message.make_query(NAME, "A").to_wire(), ("127.0.0.1", port))
            r = dns.message.from_wire(s.recv(4096))
            counts.update(x.to_text() for rrset in r.answer for x in rrset)
    return counts[ADDRESSES["dc1"]] / n


def cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def dnsperf(port: int, queries: Path, seconds: float, clients: int, extra: Sequence[str]) -> str:
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-B"]
    argv += ["-c", str(clients), "-l", str(seconds), "-t", "2", *extra]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    if out.returncode != 0:
        raise click.ClickException(f"dnsperf failed: {out.stderr or out.stdout}")
    return out.stdout


def _field(text: str, label: str) -> float:
    m = re.search(rf"{re.escape(label)}:\s+([0-9.]+)", text)
    if m is None:
        raise click.ClickException(f"dnsperf printed no {label!r}:\n{text}")
    return float(m.group(1))


def _log(workdir: Path, server: Server) -> Path:
    return workdir / f"{server.name.split()[0]}-{server.port}.log"


def _tail(workdir: Path, server: Server, lines: int = 5) -> str:
    try:
        return "\n".join(_log(workdir, server).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def measure(
    server: Server, workdir: Path, queries: Path, seconds: float, clients: int, extra: Sequence[str]
) -> Result:
    with running(server, _log(workdir, server)) as proc:
        share = local_share(server.port)
        dnsperf(server.port, queries, 1, clients, extra)  # warm up
        cpu0, t0 = cpu_seconds(proc), time.monotonic()
        out = dnsperf(server.port, queries, seconds, clients, extra)
        cpu = (cpu_seconds(proc) - cpu0) / (time.monotonic() - t0)
    sent = _field(out, "Queries sent")
    completed = _field(out, "Queries completed")
    return Result(
        server=server.name,
        qps=_field(out, "Queries per second"),
        latency_ms=_field(out, "Average Latency (s)") * 1000,
        latency_sd_ms=_field(out, "Latency StdDev (s)") * 1000,
        lost=(sent - completed) / sent if sent else 0.0,
        cpu=cpu,
        local_share=share,
    )


def servers_table(title: str, columns: Sequence[str]) -> Table:
    """A results table: the server in the first column, figures right-aligned after it."""
    t = Table(title=title)
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i == 0 else "right")
    return t


def report(results: Sequence[Result], console: Console) -> dict[str, float]:
    t = servers_table(
        f"dnsperf on {NAME} (weighted 98/1/1)",
        (
            "server",
            "queries/s",
            "latency ms (sd)",
            "lost",
            "server CPU",
            "q/s per core",
            "local share",
        ),
    )
    for r in results:
        t.add_row(
            r.server,
            f"{r.qps:,.0f}",
            f"{r.latency_ms:.3f} ({r.latency_sd_ms:.3f})",
            f"{r.lost:.2%}",
            f"{r.cpu:.2f} cores",
            f"{r.per_core:,.0f}",
            f"{r.local_share:.1%}",
        )
    console.print(t)
    ratios: dict[str, float] = {}
    gtm = [r for r in results if r.server.startswith("gtm")]
    peers = {r.server: r for r in results if not r.server.startswith("gtm")}
    goals = {"gdnsd weighted": 1.0, "PowerDNS LUA": 30.0}
    for g in gtm:
        for name, peer in peers.items():
            if not peer.per_core or not peer.qps:
                continue
            per_core = g.per_core / peer.per_core
            ratios[f"{g.server} / {name} per core"] = per_core
            ratios[f"{g.server} / {name} q/s"] = g.qps / peer.qps
            goal = goals.get(name)
            verdict = (
                ""
                if goal is None
                else (" meets" if per_core >= goal else " misses") + f" the goal ≥ {goal:g}x"
            )
            console.print(
                f"{g.server} vs {name}: {per_core:.2f}x per core of server CPU, "
                f"{g.qps / peer.qps:.2f}x queries/s —{verdict}"
            )
    return ratios


@click.command()
@click.option(
    "--duration",
    "-d",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds of load per server.",
)
@click.option(
    "--clients", "-c", type=int, default=4, show_default=True, help="dnsperf clients (sockets)."
)
@click.option(
    "--workers",
    "-w",
    "workers",
    type=int,
    multiple=True,
    help="gtm worker processes; repeat to compare (default 1).",
)
@click.option("--asyncio-loop", is_flag=True, help="Also measure gtm on the default asyncio loop.")
@click.option(
    "--python-path",
    is_flag=True,
    help="Also measure gtm on its pure-Python UDP path (GTM_DNS_FAST_PATH=0).",
)
@click.option(
    "--mix",
    default="plain,edns,ecs:127.0.0.0/24,ecs:10.2.0.0/24,ecs:10.3.0.0/24,edns",
    show_default=True,
    help="Comma-separated query kinds, replayed in turn: plain, edns, ecs:SUBNET/PREFIX.",
)
@click.option("--no-gdnsd", is_flag=True, help="Skip gdnsd.")
@click.option("--no-pdns", is_flag=True, help="Skip PowerDNS.")
@click.option(
    "--dnsperf-arg", "extra", multiple=True, help="Extra dnsperf argument (repeatable), e.g. -T 2."
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Also write the results as JSON."
)
def command(
    duration: float,
    clients: int,
    workers: tuple[int, ...],
    asyncio_loop: bool,
    python_path: bool,
    mix: str,
    no_gdnsd: bool,
    no_pdns: bool,
    extra: tuple[str, ...],
    json_path: str | None,
) -> None:
    """dnsperf against `gtm dns serve`, gdnsd (weighted) and PowerDNS (LUA), same query mix.

    Reports queries/s, latency and server CPU for each, and gtm's ratios to
    the peers per core of server CPU. The defaults take about a minute.
    """
    if shutil.which("dnsperf") is None:
        raise click.ClickException(
            "dnsperf is not installed (Debian package dnsperf; scripts/setup)"
        )
    console = Console()
    with tempfile.TemporaryDirectory(prefix="gtm-bench-dns-") as tmp:
        workdir = Path(tmp)
        queries = workdir / "queries.bin"
        kinds = [k.strip() for k in mix.split(",") if k.strip()]
        query_file(queries, kinds)
        servers = [gtm_server(workdir, w, True) for w in (workers or (1,))]
        if python_path:
            servers.append(gtm_server(workdir, 1, True, python_path=True))
        if asyncio_loop:
            servers.append(gtm_server(workdir, 1, False))
        if not no_gdnsd and shutil.which("gdnsd"):
            servers.append(gdnsd_server(workdir))
        if not no_pdns and shutil.which("pdns_server"):
            servers.append(pdns_server(workdir))
        console.print(
            f"{len(servers)} servers x {duration:g} s, dnsperf -c {clients}, "
            f"mix: {', '.join(kinds)}; {os.cpu_count()} CPUs"
        )
        results = []
        failed: dict[str, str] = {}
        for s in servers:
            console.print(f"… {s.name}")
            try:
                results.append(measure(s, workdir, queries, duration, clients, extra))
            except click.ClickException as e:  # a peer that cannot start: say so, go on
                failed[s.name] = f"{e.message}\n{_tail(workdir, s)}"
                console.print(f"[red]{s.name} did not run: {e.message}[/red]")
    ratios = report(results, console)
    for name, why in failed.items():
        console.print(f"[red]not measured: {name}[/red] — {why}")
    if json_path:
        doc = {
            "name": NAME,
            "mix": kinds,
            "duration": duration,
            "clients": clients,
            "results": [{**asdict(r), "per_core": r.per_core} for r in results],
            "ratios": ratios,
            "failed": failed,
        }
        Path(json_path).write_text(json.dumps(doc, indent=2))
