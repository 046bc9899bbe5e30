"""`gtm explain SERVICE [REGION]` and `gtm answer NAME --subnet CIDR`: why, and what clients get.

gtm explain foo dc3        # which vantages say what of foo's dc3 VIPs, since when, and
                           # which rule then moved which cell of the table
gtm answer foo.example.com --subnet 10.20.0.0/16
                           # the row those clients get, each VIP's chance, and what the
                           # member's DNS is observed to answer them
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import click
import dns.exception
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gtm.cli.region import utc_time
from gtm.client.answers_check import answer_of
from gtm.client.http import ApiClient, ApiError, CliError, connection_options, run
from gtm.exits import ExitCode
from gtm.status import StatusError, read_status


@click.command()
@click.argument("service")
@click.argument("region", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@connection_options
def explain(service: str, region: str | None, as_json: bool, **opts: Any) -> None:
    """Why SERVICE (in REGION) is up or down and weighted as it is."""

    async def work(api: ApiClient) -> int:
        status = read_status(await api.get("/v1/status"), api.base)
        doc = await api.get("/v1/explain", service=service, region=region)
        if not doc["decisions_known"] and status.holder.address:
            leader = str(status.holder.address).rstrip("/")
            try:  # the leader evaluates: its decisions say which rule moved each cell
                doc = await api.get("/v1/explain", base=leader, service=service, region=region)
                doc["asked"] = f"{status.holder.identity} (the leader)"
            except ApiError as e:  # the standby's view still explains health
                doc["leader_unreachable"] = e.error
        if as_json:
            click.echo(json.dumps(doc, indent=2))
            return 0
        _print_explain(doc, doc.get("asked") or f"{status.identity} ({status.role})")
        return 0

    run(work, opts)


def _print_explain(doc: Mapping[str, Any], asked: str) -> None:
    console = Console(highlight=False)
    now = time.time()
    where = f" in {doc['region']}" if doc.get("region") else ""
    head = f"{doc['service']}{where}: table generation {doc.get('generation')} as {asked} serves it"
    console.print(f"[bold]{escape(head)}[/bold]")
    if doc.get("impaired_vantages"):
        impaired = ", ".join(doc["impaired_vantages"])
        console.print(escape(f"impaired vantages (their votes do not count): {impaired}"))
    for region, h in doc.get("regions", {}).items():
        line = (
            f"region {region}: {h['state']} since {utc_time(h['since'])} — {h['up']}/{h['total']}"
            f" VIPs up (needs {h['needed']}): {h['reason']}"
        )
        console.print(escape(line))
    for v in doc.get("vips", ()):
        state = v["state"] or "unknown"
        since = utc_time(v["since"]) if v["since"] is not None else "—"
        console.print(
            escape(
                f"  VIP {v['id']} ({v['probe']}, rise {v['rise']} / fall {v['fall']}):"
                f" {state} since {since}: {v['reason']}"
            )
        )
        if v.get("damped"):
            until = utc_time(v["damped_until"]) if v.get("damped_until") else "—"
            console.print(
                escape(f"    flapping: held down (penalty {v['flap_penalty']}) until {until}")
            )
        elif v.get("flap_penalty"):
            console.print(escape(f"    flap penalty {v['flap_penalty']} (not held down)"))
        for vote in v.get("vantages", ()):
            console.print(f"    {escape(_vote(vote, now))}")
    cells = doc.get("cells", ())
    if not cells:
        return
    t = Table(title="cells (the weight clients in a region give each target region)")
    for col in ("clients in", "target", "weight", "why", "decided"):
        t.add_column(col)
    for c in cells:
        why = c["out"] or ("ramping back" if c["ramping"] else "")
        d = c.get("decision")
        decided = (
            "—"
            if d is None
            else f"{d['rule']}: {d['input']} ({d['old']} → {d['new']}, {utc_time(d['at'])})"
        )
        t.add_row(
            *(escape(str(x)) for x in (c["clients_in"], c["target"], c["weight"], why, decided))
        )
    console.print(t)
    if not doc.get("decisions_known"):
        reason = doc.get("leader_unreachable")
        console.print(
            "decisions: only the leader evaluates"
            + (f"; it could not be asked: {escape(reason)}" if reason else "")
        )


def _vote(vote: Mapping[str, Any], now: float) -> str:
    name = f"vantage {vote['vantage']}"
    if vote["impaired"]:
        return f"{name}: impaired — its votes do not count (latest: {vote['reason']})"
    if vote["at"] is None:
        return f"{name}: no result yet"
    ago = f"{now - float(vote['at']):.1f}s ago"
    runs = (
        f"{vote['ok_run']} success(es) in a row"
        if vote["ok_run"]
        else f"{vote['fail_run']} failure(s) in a row"
    )
    stale = "; stale, does not count" if vote["stale"] else ""
    return f"{name}: {vote['state']} — {vote['reason']}, {runs}, latest {ago}{stale}"


@click.command()
@click.argument("name")
@click.option("--subnet", required=True, help="The clients' subnet, as ECS sends it (10.1.0.0/16).")
@click.option(
    "--ask",
    type=click.IntRange(0, 10_000),
    default=50,
    show_default=True,
    help="Also ask the member's DNS this many times with that subnet (0: don't).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the lookup (and answers) as JSON.")
@connection_options
def answer(name: str, subnet: str, ask: int, as_json: bool, **opts: Any) -> None:
    """What the live table answers clients in SUBNET for NAME, and what DNS really says."""

    async def work(api: ApiClient) -> int:
        doc = await api.get("/v1/answer", name=name, subnet=subnet)
        observed: Counter[str] = Counter()
        problem = None
        if ask:
            observed, problem = await _observe(api, name, subnet, ask)
        if as_json:
            click.echo(json.dumps({**doc, "observed": dict(observed), "problem": problem}))
            return 0
        _print_answer(doc, observed, ask, problem)
        return 0

    run(work, opts)


async def _observe(
    api: ApiClient, name: str, subnet: str, n: int
) -> tuple[Counter[str], str | None]:
    try:
        status = read_status(await api.get("/v1/status"), api.base)
    except StatusError as e:
        raise CliError(str(e), ExitCode.FAILED) from None
    if status.dns is None:
        return Counter(), "the member's status has no dns.listen"
    server = status.dns.address(urlsplit(api.base).hostname or "127.0.0.1")
    net = ipaddress.ip_network(subnet, strict=False)
    gate = asyncio.Semaphore(16)

    async def one() -> str:
        async with gate:
            try:
                got = await answer_of(name, server, net, 1.0)
            except (OSError, dns.exception.DNSException) as e:
                return f"(no answer: {type(e).__name__})"
            return got or "(empty)"

    return Counter(await asyncio.gather(*(one() for _ in range(n)))), None


def _print_answer(
    doc: Mapping[str, Any], observed: Counter[str], asked: int, problem: str | None
) -> None:
    console = Console(highlight=False)
    matched = f"{doc['region']}'s client_cidrs" if doc["matched"] else "no region's CIDRs: default"
    head = (
        f"{doc['name']} for clients in {doc['subnet']}: row {doc['region']} ({matched};"
        f" ECS scope /{doc['scope']}), table generation {doc['generation']}, TTL {doc['ttl']}s"
    )
    console.print(escape(head))
    if doc.get("fail_open"):
        console.print("[yellow]every region is down: the row fails open (last known good)[/yellow]")
    t = Table()
    for col in ("target region", "weight", "why", "VIP", "chance", "observed"):
        t.add_column(col)
    for target in doc["targets"]:
        why = target["out"] or ("ramping back" if target["ramping"] else "")
        vips = target["vips"] or {"—": 0.0}
        for address, chance in vips.items():
            seen = observed.get(address, 0)
            shown = f"{seen} ({100 * seen / asked:.0f}%)" if asked else ""
            t.add_row(
                *(escape(str(x)) for x in (target["region"], target["weight"], why, address)),
                f"{100 * chance:.1f}%",
                shown,
            )
    console.print(t)
    others = {a: n for a, n in observed.items() if not _listed(doc, a)}
    if problem:
        console.print(f"DNS not asked: {escape(problem)}")
    elif asked:
        line = f"asked the member's DNS {asked} times with ECS {doc['subnet']}"
        if others:
            line += "; also answered: " + ", ".join(f"{a} ({n})" for a, n in others.items())
        console.print(escape(line))


def _listed(doc: Mapping[str, Any], address: str) -> bool:
    return any(address in t["vips"] for t in doc["targets"])
