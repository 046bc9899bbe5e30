"""`gtm bench dns-under-load`: DNS latency while the member works, beside gdnsd at the same rate.

One run, on loopback only:

1. a generated estate of `--services` services in three regions (one VIP per
   service and region: 12,000 VIPs at 4,000 services) is started as the
   simulated estate (`chaos.estate`): the VIP farm, a simulated cluster per
   region with its WorkloadEntries, and one real `gtm serve` member per region,
   each probing every VIP (TCP, every 30 s) and pulling its peers;
2. phase gtm: a load generator (a process of its own) sends `--rate` queries a
   second to dc1's member for `--duration` seconds (plain, EDNS and EDNS +
   Client Subnet of each region, over every name) and records every query's
   latency; meanwhile the bench has the member exit dc2, reload its config
   (SIGHUP, with a changed TTL: the answer processes are replaced) and enter
   dc2 again;
3. phase gdnsd: gdnsd (`weighted`, 98/1/1) serves the same names, queried by the
   same generator at the same rate, while the members keep running and the
   same actions are played again.

Reported per phase: queries sent and answered, lost (no reply within 2 s),
latency p50 / p99 / p99.9 / max, and for the member its event loop's lag
(`gtm_member_loop_lag_seconds`: p99 from the histogram, max) and the kernel's
UDP drops. Goals (issue 13): 0 lost, p99 ≤ 2 ms, max ≤ 50 ms, and p99 within
2 x gdnsd's.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import random
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import click
import dns.edns
import dns.message
import dns.query
import yaml
from rich.console import Console

from chaos.bench.dns import GDNSD_CONFIG, ZONE, free_port, servers_table
from chaos.estate import SimulatedEstate

SOCKETS = 16  # the generator's sockets: 16-bit IDs each, so no ID repeats within a run
LATE = 2.0  # seconds after which a query counts as lost
REGIONS = ("dc1", "dc2", "dc3")
VIP_PORT = 18443


@dataclass(frozen=True)
class Latency:
    server: str
    sent: int
    answered: int
    lost: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    loop_lag_p99_ms: float | None = None  # the member's loop, during the phase
    loop_lag_max_ms: float | None = None
    loop_lag_max_exact: bool = False  # else a histogram bucket's bound
    gc_runs: int | None = None  # the member's cycle collections during the phase
    gc_max_ms: float | None = None  # the longest, as a bucket bound
    gc_full_runs: int | None = None  # of them, full collections (the oldest generation)
    gc_full_max_ms: float | None = None
    udp_drops: int | None = None


# -- the estate ------------------------------------------------------------------------------


def vip_address(region: int, i: int) -> str:
    return f"127.{region}.{i // 250}.{i % 250 + 1}"


def estate(services: int) -> dict[str, Any]:
    """`services` services, one VIP per region each, probed over TCP every 30 s."""
    return {
        "regions": [
            {
                "name": name,
                "locality": f"region0{r}/az01",
                "client_cidrs": [f"127.0.{r}.0/24", f"10.{r}.0.0/16"],
            }
            for r, name in enumerate(REGIONS, start=1)
        ],
        "policies": [
            {
                "name": "default",
                "total": 100,
                "split": {"local": 98, "remote": 1},
                "max_step": 50,
                "ramp": "10s",
                "guardrails": {"min_active_regions": 2, "max_concurrent_exits": 1},
            }
        ],
        "services": [
            {
                "name": f"s{i}",
                "fqdn": f"s{i}.example.com",
                "policy": "default",
                "probe": {"kind": "tcp", "interval": "30s", "timeout": "2s", "rise": 1, "fall": 2},
                "vips": {
                    name: [{"address": vip_address(r, i), "port": VIP_PORT}]
                    for r, name in enumerate(REGIONS, start=1)
                },
            }
            for i in range(services)
        ],
        "dns": {"zones": ["example.com"], "ttl": 30, "default_region": "dc1", "exit_margin": "2s"},
        "safety": {"max_unhealthy_share": 0.5, "max_traffic_share": 0.4},
    }


# -- the load generator (its own process) ------------------------------------------------------


def queries(services: int, count: int = 8192, seed: int = 1) -> list[bytes]:
    """A mix over every name: plain, EDNS, and EDNS + ECS of each region's clients."""
    rng = random.Random(seed)
    out = []
    for k in range(count):
        name = f"s{rng.randrange(services)}.example.com"
        kind = k % 5
        if kind == 0:
            q = dns.message.make_query(name, "A", use_edns=False)
        elif kind == 1:
            q = dns.message.make_query(name, "A", use_edns=0)
        else:
            ecs = dns.edns.ECSOption(f"10.{kind - 1}.0.0", 24)
            q = dns.message.make_query(name, "A", use_edns=0, options=[ecs])
        out.append(q.to_wire())
    return out


def generate(port: int, wires: list[bytes], rate: float, seconds: float) -> dict[str, Any]:
    """Send `rate` queries/s for `seconds`; every reply's latency, and the queries never answered."""
    socks = []
    for _ in range(SOCKETS):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        socks.append(s)
    by_fd = {s.fileno(): i for i, s in enumerate(socks)}
    poller = select.epoll()
    for s in socks:
        poller.register(s.fileno(), select.EPOLLIN)
    sent_at = [[0.0] * 65536 for _ in socks]
    pending = [bytearray(65536) for _ in socks]
    latencies: list[float] = []
    target = ("127.0.0.1", port)
    total = int(rate * seconds)
    n = 0
    start = time.perf_counter()
    end = start + seconds + LATE
    while True:
        now = time.perf_counter()
        due = min(total, int((now - start) * rate) + 1)
        while n < due:
            k = n % SOCKETS
            qid = (n // SOCKETS) & 0xFFFF
            wire = wires[n % len(wires)]
            try:
                socks[k].sendto(qid.to_bytes(2, "big") + wire[2:], target)
            except BlockingIOError:
                pass  # counted as lost: it never left
            sent_at[k][qid] = time.perf_counter()
            pending[k][qid] = 1
            n += 1
        if n >= total and now >= end:
            break
        wait = (start + n / rate) - time.perf_counter() if n < total else end - now
        for fd, _ in poller.poll(max(0.0, min(wait, 0.001))):
            k = by_fd[fd]
            while True:
                try:
                    data = socks[k].recv(4096)
                except BlockingIOError:
                    break
                t = time.perf_counter()
                qid = int.from_bytes(data[:2], "big")
                if pending[k][qid] and t - sent_at[k][qid] <= LATE:
                    pending[k][qid] = 0
                    latencies.append(t - sent_at[k][qid])
    for s in socks:
        s.close()
    latencies.sort()
    return {"sent": total, "answered": len(latencies), "latencies": _quantiles(latencies)}


def _quantiles(sorted_values: list[float]) -> dict[str, float]:
    if not sorted_values:
        return {"p50": math.nan, "p99": math.nan, "p999": math.nan, "max": math.nan}

    def q(p: float) -> float:
        return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]

    return {"p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": sorted_values[-1]}


def _generator(conn: Connection, port: int, services: int, rate: float, seconds: float) -> None:
    conn.send(generate(port, queries(services), rate, seconds))
    conn.close()


# -- the member's side ---------------------------------------------------------------------------


class Member:
    """dc1's member, through its API: actions, reloads, and its metrics."""

    def __init__(self, estate: SimulatedEstate, name: str) -> None:
        self.estate = estate
        self.name = name
        self.api = estate.api_urls[name]
        self.config = estate.member_configs[name]

    async def act(self, session: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> str:
        headers = {"Authorization": f"Bearer {self.estate.operator_token}"}
        async with session.post(self.api + path, json=body, headers=headers) as r:
            return f"{path}: HTTP {r.status}"

    def reload(self, ttl: int) -> str:
        """Rewrite the member's config with another TTL and SIGHUP it: DNS gets new workers."""
        data = yaml.safe_load(self.config.read_text())
        data["dns"]["ttl"] = ttl
        self.config.write_text(yaml.safe_dump(data, sort_keys=False))
        os.kill(self.estate.running_members()[self.name], signal.SIGHUP)
        return f"SIGHUP with dns.ttl {ttl}"

    async def metrics(self, session: aiohttp.ClientSession) -> dict[str, list[tuple[str, float]]]:
        async with session.get(self.api + "/metrics") as r:
            text = await r.text()
        out: dict[str, list[tuple[str, float]]] = {}
        for line in text.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            key, value = line.rsplit(" ", 1)
            name = key.split("{", 1)[0]
            out.setdefault(name, []).append((key, float(value)))
        return out


def histogram_delta(
    before: dict[str, Any], after: dict[str, Any], name: str, where: str = ""
) -> dict[float, float]:
    """Observations of histogram `name` between two scrapes, per bucket bound (the label
    sets whose text holds `where` added up)."""

    def buckets(m: dict[str, Any]) -> dict[float, float]:
        out: dict[float, float] = {}
        for key, value in m.get(f"{name}_bucket", []):
            if where not in key:
                continue
            le = key.split('le="', 1)[1].split('"', 1)[0]
            bound = math.inf if le == "+Inf" else float(le)
            out[bound] = out.get(bound, 0.0) + value
        return out

    b0, b1 = buckets(before), buckets(after)
    return {le: b1[le] - b0.get(le, 0.0) for le in sorted(b1)}


def bounds(delta: dict[float, float], share: float) -> float:
    """The bucket bound `share` of the observations were within, in ms (nan: none)."""
    count = delta.get(math.inf, 0.0)
    if not count:
        return math.nan
    return 1000 * next(le for le, n in delta.items() if n >= share * count)


def loop_lag(before: dict[str, Any], after: dict[str, Any]) -> tuple[float, float, bool]:
    """(p99, max, whether max is exact) of the member's loop lag between two scrapes, in ms.

    p99 is a histogram bucket bound: the lag was at most this much (inf: beyond the
    largest bucket). The max is exact when the member's largest lag since it started
    (`gtm_member_loop_lag_max_seconds`) grew between the scrapes, else a bucket bound.
    """
    delta = histogram_delta(before, after, "gtm_member_loop_lag_seconds")
    p99, worst = bounds(delta, 0.99), bounds(delta, 1.0)
    if math.isnan(worst):
        return math.nan, math.nan, False
    grown = [
        max(v for _, v in m.get("gtm_member_loop_lag_max_seconds", [(None, 0.0)]))
        for m in (before, after)
    ]
    if grown[1] > grown[0]:
        return p99, grown[1] * 1000, True
    return p99, worst, False


def gc_pauses(
    before: dict[str, Any], after: dict[str, Any], generation: int | None = None
) -> tuple[int, float]:
    """(collections, the longest one's bucket bound in ms) of the member between two
    scrapes: of every generation, or of `generation` only (2: the full ones)."""
    where = "" if generation is None else f'generation="{generation}"'
    delta = histogram_delta(before, after, "gtm_member_gc_pause_seconds", where)
    return int(delta.get(math.inf, 0.0)), bounds(delta, 1.0)


def drops(m: dict[str, Any]) -> int:
    return int(sum(v for _, v in m.get("gtm_dns_udp_receive_drops_total", [])))


async def wait_healthy(estate: SimulatedEstate, vips: int, within: float) -> None:
    """Until every member leads its region and sees every VIP up."""
    headers = {"Authorization": f"Bearer {estate.viewer_token}"}
    deadline = time.monotonic() + within
    seen: list[Any] = []
    async with aiohttp.ClientSession(
        headers=headers, timeout=aiohttp.ClientTimeout(total=10)
    ) as session:
        while time.monotonic() < deadline:
            seen = []
            for url in estate.api_urls.values():
                try:
                    async with session.get(url + "/v1/status") as r:
                        seen.append(await r.json())
                except (aiohttp.ClientError, TimeoutError):
                    seen.append(None)
            if all(
                s is not None
                and s.get("role") == "leader"
                and (s.get("health") or {}).get("vips", {}).get("up") == vips
                for s in seen
            ):
                return
            await asyncio.sleep(2.0)
    summary = [
        None if s is None else (s.get("role"), (s.get("health") or {}).get("vips")) for s in seen
    ]
    raise click.ClickException(f"the estate was not healthy within {within:g}s: {summary}")


async def phase(
    name: str,
    port: int,
    member: Member,
    services: int,
    rate: float,
    seconds: float,
    console: Console,
    ttl: int,
) -> Latency:
    """Load `port` for `seconds` while the member exits dc2, reloads, and enters dc2 again."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_generator, args=(theirs, port, services, rate, seconds))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as session:
        before = await member.metrics(session)
        child.start()
        theirs.close()
        t0 = time.monotonic()

        async def timed(at: float, what: str, action: Awaitable[str]) -> None:
            try:
                did = await action
            except (aiohttp.ClientError, TimeoutError) as e:
                did = f"{what}: {type(e).__name__} {e}"
            console.print(f"  t={at:5.1f}s {did}, took {time.monotonic() - t0 - at:.1f}s")

        actions = []
        for share, what in ((0.15, "exit"), (0.40, "reload"), (0.65, "enter")):
            await asyncio.sleep(max(0.0, t0 + share * seconds - time.monotonic()))
            at = time.monotonic() - t0
            if what == "reload":
                console.print(f"  t={at:5.1f}s {member.reload(ttl)}")
                continue
            body = {"region": "dc2", "reason": "bench"}
            action = member.act(session, f"/v1/region/{what}", body)
            actions.append(asyncio.create_task(timed(at, what, action)))
        result = await asyncio.to_thread(ours.recv)
        await asyncio.to_thread(child.join, 30)
        await asyncio.gather(*actions)
        after = await member.metrics(session)
    p99, worst, exact = loop_lag(before, after)
    collections, longest = gc_pauses(before, after)
    full, longest_full = gc_pauses(before, after, 2)
    lat = result["latencies"]
    return Latency(
        server=name,
        sent=result["sent"],
        answered=result["answered"],
        lost=result["sent"] - result["answered"],
        p50_ms=lat["p50"] * 1000,
        p99_ms=lat["p99"] * 1000,
        p999_ms=lat["p999"] * 1000,
        max_ms=lat["max"] * 1000,
        loop_lag_p99_ms=p99,
        loop_lag_max_ms=worst,
        loop_lag_max_exact=exact,
        gc_runs=collections,
        gc_max_ms=longest,
        gc_full_runs=full,
        gc_full_max_ms=longest_full,
        udp_drops=drops(after) - drops(before) if name == "gtm" else None,
    )


def gdnsd(work: Path, services: int) -> tuple[list[str], int]:
    d = work / "gdnsd"
    for sub in ("zones", "run", "state"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    port = free_port()
    weights = {"dc1": 98, "dc2": 1, "dc3": 1}
    resources = "\n".join(
        f"  s{i} => {{ "
        + " ".join(
            f"{name} = [ {vip_address(r, i)}, {weights[name]} ]"
            for r, name in enumerate(REGIONS, start=1)
        )
        + " }"
        for i in range(services)
    )
    config = GDNSD_CONFIG.format(port=port, dir=d, entries="").replace(
        "foo => {\n\n}", resources.strip()
    )
    (d / "config").write_text(config)
    names = "\n".join(f"s{i} 30 DYNA weighted!s{i}" for i in range(services))
    (d / "zones" / "example.com").write_text(ZONE.format(foo=names))
    return ["gdnsd", "-c", str(d), "-D", "start"], port


def wait_answering(port: int, alive: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive():
            raise click.ClickException("gdnsd exited (its log: gdnsd.log in the work directory)")
        try:
            r = dns.query.udp(
                dns.message.make_query("s0.example.com", "A"), "127.0.0.1", port=port, timeout=0.5
            )
            if r.answer:
                return
        except Exception:  # not answering yet
            pass
        time.sleep(0.2)
    raise click.ClickException(f"gdnsd did not answer on port {port}")


def report(results: Sequence[Latency], console: Console, rate: float) -> dict[str, Any]:
    t = servers_table(
        f"DNS under load: {rate:,.0f} queries/s while the member works",
        (
            "server",
            "sent",
            "lost",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "member loop lag p99 / max ms",
            "member GC runs / max ms (full ones)",
            "UDP drops",
        ),
    )
    for r in results:
        t.add_row(
            r.server,
            f"{r.sent:,}",
            f"{r.lost:,}",
            f"{r.p50_ms:.3f}",
            f"{r.p99_ms:.3f}",
            f"{r.p999_ms:.3f}",
            f"{r.max_ms:.1f}",
            f"≤{r.loop_lag_p99_ms:g} / "
            + (f"{r.loop_lag_max_ms:.0f}" if r.loop_lag_max_exact else f"≤{r.loop_lag_max_ms:g}"),
            f"{r.gc_runs} / ≤{r.gc_max_ms:g} ({r.gc_full_runs} / ≤{r.gc_full_max_ms:g})",
            "" if r.udp_drops is None else f"{r.udp_drops:,}",
        )
    console.print(t)
    doc: dict[str, Any] = {}
    gtm = next((r for r in results if r.server == "gtm"), None)
    peer = next((r for r in results if r.server != "gtm"), None)
    if gtm is not None:
        goals = {
            "0 lost": gtm.lost == 0,
            "p99 ≤ 2 ms": gtm.p99_ms <= 2.0,
            "max ≤ 50 ms": gtm.max_ms <= 50.0,
        }
        if peer is not None and peer.p99_ms > 0:
            doc["p99 ratio to gdnsd"] = gtm.p99_ms / peer.p99_ms
            goals["p99 within 2x gdnsd's"] = gtm.p99_ms <= 2 * peer.p99_ms
            console.print(f"gtm p99 / gdnsd p99: {gtm.p99_ms / peer.p99_ms:.2f}")
        for goal, met in goals.items():
            console.print(f"{'meets' if met else 'misses'}: {goal}")
        doc["goals"] = goals
    return doc


@click.command()
@click.option("--services", type=click.IntRange(3, 20000), default=4000, show_default=True)
@click.option("--rate", type=float, default=5000.0, show_default=True, help="Queries per second.")
@click.option(
    "--duration", "-d", type=float, default=60.0, show_default=True, help="Seconds per phase."
)
@click.option("--no-gdnsd", is_flag=True, help="Skip the gdnsd phase.")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Also write the results as JSON."
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False),
    help="Work directory to keep (default: a temporary one).",
)
def command(
    services: int,
    rate: float,
    duration: float,
    no_gdnsd: bool,
    json_path: str | None,
    keep: str | None,
) -> None:
    """DNS latency at a fixed query rate while the member exits a region, reloads, and pulls
    its peers; then gdnsd at the same rate from the same generator. About 4 minutes at the
    defaults (the estate's start, two phases)."""
    console = Console()
    if not no_gdnsd and shutil.which("gdnsd") is None:
        raise click.ClickException("gdnsd is not installed (Debian package gdnsd; scripts/setup)")
    with tempfile.TemporaryDirectory(prefix="gtm-bench-dns-load-") as tmp:
        work = Path(keep) if keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results, extra = asyncio.run(_run(work, services, rate, duration, no_gdnsd, console))
    extra.update(report(results, console, rate))
    if json_path:
        doc = {"services": services, "rate": rate, "duration": duration, "cpus": os.cpu_count()}
        doc |= {"results": [asdict(r) for r in results], **extra}
        Path(json_path).write_text(json.dumps(doc, indent=2))


async def _run(
    work: Path, services: int, rate: float, duration: float, no_gdnsd: bool, console: Console
) -> tuple[list[Latency], dict[str, Any]]:
    source = work / "estate-source.yaml"
    source.write_text(yaml.safe_dump(estate(services), sort_keys=False))
    console.print(
        f"{services} services x 3 regions ({3 * services:,} VIPs), {rate:,.0f} q/s for "
        f"{duration:g}s per phase; {os.cpu_count()} CPUs"
    )
    started = time.monotonic()
    async with SimulatedEstate(source, work / "estate", pair=("a",), ready_timeout=300) as sim:
        sim.start_members(
            None, lambda name, path: [sys.executable, "-m", "gtm", "serve", "--config", str(path)]
        )
        await sim.wait_members(path="/readyz", within=300.0)
        await wait_healthy(sim, 3 * services, within=300.0)
        console.print(f"estate up and healthy after {time.monotonic() - started:.0f}s")
        member = Member(sim, "dc1-a")
        results = [
            await phase(
                "gtm", sim.dns_ports["dc1-a"], member, services, rate, duration, console, 31
            )
        ]
        if not no_gdnsd:
            argv, port = gdnsd(work, services)
            sim.launcher.start("gdnsd", argv, None, work / "gdnsd.log")
            try:
                await asyncio.to_thread(wait_answering, port, lambda: sim.launcher.alive("gdnsd"))
                results.append(
                    await phase("gdnsd", port, member, services, rate, duration, console, 32)
                )
            finally:
                await sim.launcher.terminate("gdnsd")
    return results, {}
