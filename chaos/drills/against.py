"""A practice run: a drill's operator actions against a real deployment, aborted on a failed check.

    gtm drill run --against practice.yaml chaos/drills/library/region-exit.yaml

The config names the deployment and what to practise:

    server: https://gtm-dc1.example.net:8080   # any member's API
    token_file: /etc/gtm/operator.token        # an operator token
    ca_file: /etc/gtm/ca.pem                   # optional
    region: dc2                                # the region to exit
    reenter_after: 10m                         # the automatic re-entry
    ramp: 5m                                   # optional: the re-entry's ramp (else the drill's)
    dns: {dc1-a: "10.1.0.53:53"}               # optional: where to ask each member's DNS
    estate: /etc/gtm/estate.yaml               # optional: the policies, for the bounds check
    sample_every: 2s
    reason: quarterly failover practice
    ticket: CHG-1234

From the drill file it takes the first `region_exit` (now of `region`, a few
seconds after the start), the `region_enter` that follows it (now
`reenter_after` later) and the `measure_split` steps between them; every
fault and every other action is left out. The members are found from the
server's `/v1/status` (its peers); DNS is asked at each member's `dns.listen`
unless `dns` says otherwise. The drill's checks on those steps run live
after every sample, with `bounds`, `no_flip_flop`, `answers` (and at the end
`nothing_lost`): the first that fails aborts the practice — the region is
entered again at once (with the ramp) and watched until that converges —
and the run exits non-zero. WorkloadEntries are judged from the members'
reported mesh progress (the practice run has no access to the clusters).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chaos.drills.assertions import drill_passed, evaluate
from chaos.drills.checks import Check, Converged, NoFlipFlop, Reflects, Split
from chaos.drills.facts import MemberEndpoint, client_subnets, estate_facts, facts_from_api
from chaos.drills.faults import Injector
from chaos.drills.model import Drill, DrillFile
from chaos.drills.observe import Sampler
from chaos.drills.report import write_report
from chaos.drills.runbook import Runbook
from chaos.drills.runner import DrillResult
from chaos.drills.samples import Record, Sample, StepRecord
from chaos.drills.steps import MeasureSplit, RegionEnter, RegionExit, Step
from chaos.drills.timeline import Played, play
from chaos.drills.verdict import Verdict, failed
from gtm.api.tokens import TokenFileError, read_token
from gtm.config import load
from gtm.config.values import Duration

LEAD = 3.0  # seconds of baseline before the exit
SETTLE = 10.0  # seconds watched after the re-entry, at least (longer: the drill's deadlines)
ABORT_WATCH = 600.0  # the longest an aborted practice watches its re-entry


class AgainstError(ValueError):
    """A practice-run config or drill that cannot be used."""


class AgainstConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    server: str = Field(pattern=r"^https?://")
    token_file: str
    ca_file: str | None = None
    region: str
    reenter_after: Duration = Field(gt=0)
    ramp: Duration | None = None
    dns: dict[str, str] = {}  # member -> HOST:PORT
    estate: str | None = None
    sample_every: Duration = Field(default=2.0, gt=0)
    dns_queries: int = Field(default=1, ge=1, le=20)
    reason: str = "practice run"
    ticket: str | None = None
    lease_duration: Duration = 15.0
    exit_margin: Duration = 5.0  # the deployment's dns.exit_margin when no estate file is given


def load_against(path: Path) -> AgainstConfig:
    try:
        data = yaml.safe_load(path.read_text())
        config = AgainstConfig.model_validate(data)
    except (OSError, yaml.YAMLError) as e:
        raise AgainstError(f"{path}: cannot read: {e}") from None
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors()
        )
        raise AgainstError(f"{path}: {problems}") from None
    base = path.parent
    fix = {
        k: str((base / v).resolve())
        for k in ("token_file", "ca_file", "estate")
        if (v := getattr(config, k)) is not None and not Path(v).is_absolute()
    }
    return config.model_copy(update=fix)


def practice_plan(
    drill: Drill, config: AgainstConfig, stretch: float = 0.0
) -> tuple[Drill, list[str]]:
    """The drill cut down to what a practice run does, and what it left out (for people).

    `stretch`: how much longer the deployment's hold (DNS TTL + exit margin) is than the
    drill estate's; every deadline of the checks kept grows by it, as every one of them
    waits out a hold.
    """
    steps = drill.schedule(short=False)
    exit_ = next((s for s in steps if isinstance(s, RegionExit)), None)
    if exit_ is None:
        raise AgainstError(f"drill {drill.name} has no region_exit to practise")
    enter = next(
        (
            s
            for s in steps
            if isinstance(s, RegionEnter) and s.region == exit_.region and s.at > exit_.at
        ),
        None,
    )
    enter_at = LEAD + config.reenter_after
    kept: list[Step] = [
        exit_.model_copy(
            update={
                "region": config.region,
                "at": LEAD,
                "short_at": None,
                "reason": config.reason,
                "ticket": config.ticket,
                "expect": "accepted",
                "rule": None,
            }
        )
    ]
    ramp = config.ramp if config.ramp is not None else (enter.ramp if enter is not None else None)
    entered = RegionEnter(
        id=enter.id if enter is not None else "reenter",
        at=enter_at,
        do="region_enter",
        region=config.region,
        ramp=ramp,
        reason=config.reason,
        ticket=config.ticket,
    )
    for s in steps:
        if isinstance(s, MeasureSplit) and s.at > exit_.at and LEAD + s.at - exit_.at < enter_at:
            kept.append(s.model_copy(update={"at": LEAD + s.at - exit_.at, "short_at": None}))
    kept.append(entered)
    ids = {s.id for s in kept}
    left = [f"step {s.id} ({s.describe()})" for s in steps if s.id not in ids]
    checks: list[Check] = []
    for c in drill.assertions:
        refs = [r for r in (getattr(c, f, None) for f in ("step", "start", "until")) if r]
        if isinstance(c, Reflects | Converged | Split | NoFlipFlop) and all(r in ids for r in refs):
            checks.append(_stretched(c, stretch))
        else:
            left.append(f"check {c.label()}")
    settle = max(
        [SETTLE] + [c.within for c in checks if isinstance(c, Converged) and c.step == entered.id]
    )
    plan = Drill(
        name=drill.name,
        title=f"practice: {drill.title} ({config.region})",
        description=drill.description,
        duration=enter_at + settle,
        sample_every=config.sample_every,
        dns_queries=config.dns_queries,
        timeline=kept,  # type: ignore[arg-type]
        assertions=checks,  # type: ignore[arg-type]
    )
    return plan, left


def _stretched(c: Check, by: float) -> Check:
    if by <= 0:
        return c
    if isinstance(c, Converged):
        return c.model_copy(update={"within": c.within + by})
    if isinstance(c, Reflects):
        grown = {
            k: getattr(c, k) + by
            for k in ("dns_within", "wles_within")
            if getattr(c, k) is not None
        }
        return c.model_copy(update=grown)
    return c


def hold_of(config: AgainstConfig, status: Mapping[str, Any]) -> float:
    """The deployment's hold: TTL + exit margin, from its estate file or its status."""
    if config.estate is not None:
        dns = load(config.estate).config.dns
        return dns.ttl + dns.exit_margin
    return float((status.get("dns") or {}).get("ttl") or 0) + config.exit_margin


async def discover(
    server: str, token: str, dns: Mapping[str, str], ca_file: str | None
) -> tuple[list[MemberEndpoint], dict[str, Any], dict[str, Any]]:
    """Every member (the server and the peers its status lists), its status and table."""
    from gtm.client.http import ApiClient, ApiError, Connection

    async with ApiClient(Connection(server, token, ca_file, "practice"), timeout=10.0) as api:
        try:
            first = await api.get("/v1/status")
            table = await api.get("/v1/table")
        except ApiError as e:
            raise AgainstError(f"{server}: {e.error}") from None
        docs = [(server, first)]
        for peer in first.get("peers", []):
            url = str(peer.get("url", "")).rstrip("/")
            try:
                docs.append((url, await api.get("/v1/status", base=url)))
            except ApiError as e:
                raise AgainstError(f"peer {url}: {e.error}") from None
    members = []
    seen: set[str] = set()
    for url, doc in docs:
        name = str(doc.get("identity"))
        if name in seen:
            continue
        seen.add(name)
        members.append(
            MemberEndpoint(name, str(doc.get("region")), url, _dns(url, doc, dns.get(name)))
        )
    return members, first, table


def _dns(url: str, status: Mapping[str, Any], override: str | None) -> tuple[str, int]:
    listen = override or str((status.get("dns") or {}).get("listen", ""))
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = urlsplit(url).hostname or "127.0.0.1"
    return host, int(port or 53)


async def run_against(
    file: DrillFile,
    config: AgainstConfig,
    report_dir: Path,
    *,
    on_step: Callable[[StepRecord], None] | None = None,
) -> DrillResult:
    started = time.monotonic()
    try:
        token = read_token(Path(config.token_file))
    except TokenFileError as e:
        raise AgainstError(str(e)) from None
    members, status, table = await discover(config.server, token, config.dns, config.ca_file)
    drill_dns = file.inventory.config.dns
    stretch = hold_of(config, status) - (drill_dns.ttl + drill_dns.exit_margin)
    plan, left = practice_plan(file.drill, config, stretch)
    if stretch > 0:
        left.append(f"(every deadline kept is {stretch:g}s longer: the deployment's hold is)")
    names = {m.name: m.region for m in members}
    if config.region not in {m.region for m in members}:
        raise AgainstError(f"no member runs in region {config.region!r}")
    if config.estate is not None:
        inventory = load(config.estate)
        facts, subnets = estate_facts(inventory, names), dict(client_subnets(inventory))
    else:
        facts, subnets = facts_from_api(status, table, names, lease_duration=config.lease_duration)
    runbook = Runbook([config.server] + [m.api for m in members], token, ca_file=config.ca_file)
    played = Played()
    aborted: list[Verdict] = []
    sampler = Sampler(
        members, facts, subnets, token=token, queries=plan.dns_queries, ca_file=config.ca_file
    )
    async with sampler:
        injector = Injector(
            plan.name,
            facts,
            members,
            runbook=runbook,
            sampler=sampler,
            records=lambda: played.steps,
        )

        def snapshot(samples: Sequence[Sample], steps: Sequence[StepRecord]) -> Record:
            return _record(plan, facts, played, samples, steps)

        def guard(samples: Sequence[Sample], steps: Sequence[StepRecord]) -> str | None:
            now = samples[-1].t
            bad = [v for v in evaluate(plan, snapshot(samples, steps), now=now) if v.failed]
            return None if not bad else f"{bad[0].check}: {bad[0].measured}"

        schedule = [(s.at, s) for s in plan.schedule(short=False)]
        await play(
            schedule,
            injector,
            sampler,
            period=plan.sample_every,
            duration=plan.duration,
            played=played,
            on_step=on_step,
            guard=guard,
        )
        if played.aborted is not None:
            aborted.append(
                failed("practice run", "abort", f"aborted: {played.aborted}", "no failure")
            )
            await _reenter(plan, config, injector, sampler, played, on_step)
        final = await sampler.final([m.name for m in members])
    record = _record(plan, facts, played, played.samples, played.steps, final, left)
    verdicts = evaluate(plan, record) + aborted
    write_report(report_dir / plan.name, plan, record, verdicts)
    return DrillResult(
        drill=plan.name,
        title=plan.title,
        variant="practice",
        passed=drill_passed(verdicts),
        verdicts=tuple(verdicts),
        stages=(),
        took=time.monotonic() - started,
        record=record,
        report=report_dir / plan.name / "report.html",
        samples=report_dir / plan.name / "samples.json",
    )


async def _reenter(
    plan: Drill,
    config: AgainstConfig,
    injector: Injector,
    sampler: Sampler,
    played: Played,
    on_step: Callable[[StepRecord], None] | None,
) -> None:
    """After an abort: enter the region again at once (unless it was) and watch it converge."""
    exited = any(r.do == "region_exit" and r.status == 200 for r in played.steps)
    entered = any(r.do == "region_enter" and r.status == 200 for r in played.steps)
    if not exited or entered:
        return
    loop = asyncio.get_running_loop()
    now = loop.time() - played.t0
    enter = next(s for s in plan.timeline if isinstance(s, RegionEnter))
    step = enter.model_copy(
        update={
            "id": "abort-reenter",
            "at": now,
            "reason": f"{config.reason}: aborted, re-entering",
        }
    )
    check = Converged(check="converged", step="abort-reenter", within=ABORT_WATCH)
    watch = plan.model_copy(update={"timeline": [*plan.timeline, step], "assertions": [check]})

    def done(samples: Sequence[Sample], steps: Sequence[StepRecord]) -> str | None:
        record = _record(watch, sampler.facts, played, samples, steps)
        verdicts = evaluate(watch, record, now=samples[-1].t, only=["converged"])
        return "re-entered" if any(v.passed for v in verdicts if v.kind == "converged") else None

    await play(
        [(now, step)],
        injector,
        sampler,
        period=plan.sample_every,
        duration=now + ABORT_WATCH,
        played=played,
        on_step=on_step,
        guard=done,
    )


def _record(
    plan: Drill,
    facts: Any,
    played: Played,
    samples: Sequence[Sample],
    steps: Sequence[StepRecord],
    final: Mapping[str, Any] | None = None,
    left: Sequence[str] = (),
) -> Record:
    return Record(
        drill=plan.name,
        title=plan.title,
        variant="full",
        mode="against",
        started=time.time() - (asyncio.get_event_loop().time() - played.t0),
        sample_every=plan.sample_every,
        estate=facts,
        samples=tuple(samples),
        steps=tuple(steps),
        splits=tuple(played.splits),
        final=dict(final or {}),
        notes=tuple(f"left out of the practice run: {x}" for x in left),
    )
