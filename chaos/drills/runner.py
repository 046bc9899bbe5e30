"""Run a drill against the simulated estate, for real: separate processes, HA pairs, faults.

    result = await run_drill(load_drill("chaos/drills/library/vip-outage.yaml"),
                             RunOptions(report_dir=Path("drill-reports"), short=True),
                             DrillPorts(26000))

The workflow (`chaos.drills.workflow`), step by step:

1. write the estate (overrides merged) into `<report>/<drill>/work/`;
2. start the simulated estate in the drill's port block: the VIP farm, a
   Kubernetes API server per region, peer-link relays when the drill
   partitions regions;
3. start the gtm members (`python -m gtm serve`), one or two per region;
4. wait until every VIP is up, every region has one leader and every
   cluster's WorkloadEntries are in sync: t = 0;
5. play the timeline while sampling (`chaos.drills.timeline`);
6. collect every member's intent and history;
7. stop every process (always);
8. check the assertions and write `report.html` and `samples.json` (always).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from chaos.drills.aps import ApDriver, ApObserver, move_ports
from chaos.drills.assertions import drill_passed, evaluate
from chaos.drills.facts import MemberEndpoint, client_subnets, estate_facts
from chaos.drills.faults import Injector
from chaos.drills.layout import LINKS_MAX, DrillPorts
from chaos.drills.links import PeerLinks
from chaos.drills.model import DrillFile
from chaos.drills.observe import Sampler
from chaos.drills.report import write_report
from chaos.drills.runbook import Runbook
from chaos.drills.samples import Record, Sample, StepRecord
from chaos.drills.steps import Heal, Partition
from chaos.drills.timeline import Played, play
from chaos.drills.verdict import Verdict, failed
from chaos.drills.workflow import Stage, Workflow
from chaos.estate import SimulatedEstate, plan_members
from chaos.estate.members import PAIR

READY_WITHIN = 60.0
HEALTHY_WITHIN = 60.0


@dataclass(frozen=True)
class RunOptions:
    report_dir: Path
    short: bool = False
    python: str = sys.executable


@dataclass(frozen=True)
class DrillResult:
    drill: str
    title: str
    variant: str
    passed: bool
    verdicts: tuple[Verdict, ...]
    stages: tuple[Stage, ...]
    took: float
    record: Record | None = None
    report: Path | None = None
    samples: Path | None = None


@dataclass
class _State:
    """What the workflow's steps hand each other."""

    estate: SimulatedEstate | None = None
    links: PeerLinks | None = None
    members: list[MemberEndpoint] = field(default_factory=list)
    played: Played = field(default_factory=Played)
    record: Record | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    killed: set[str] = field(default_factory=set)


def member_argv(python: str) -> Callable[[str, Path], list[str]]:
    return lambda name, path: [python, "-m", "gtm", "serve", "--config", str(path)]


async def run_drill(
    file: DrillFile,
    options: RunOptions,
    ports: DrillPorts,
    *,
    on_stage: Callable[[Stage], None] | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
) -> DrillResult:
    drill = file.drill
    variant = "short" if options.short else "full"
    out_dir = options.report_dir / drill.name
    work = out_dir / "work"
    state = _State()
    argv_for = member_argv(options.python)
    pair = PAIR[: drill.estate.members_per_region]
    schedule = [(s.when(options.short), s) for s in drill.schedule(options.short)]
    duration = drill.length(options.short)
    started = time.monotonic()
    stack = AsyncExitStack()

    async def start_estate() -> None:
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        source = work / "estate.source.yaml"
        source.write_text(file.estate_text())
        regions = list(file.inventory.region_names)
        if any(isinstance(s, Partition | Heal) for _, s in schedule):
            planned = plan_members(regions, work / "estate", ports.plan, pair)
            state.links = PeerLinks(planned, ports.links)
            if len(state.links.links) > LINKS_MAX:
                raise ValueError(f"{len(state.links.links)} peer links do not fit a port block")
            await stack.enter_async_context(state.links)
        state.estate = await stack.enter_async_context(
            SimulatedEstate(
                source,
                work / "estate",
                base_port=ports.base,
                vip_port_offset=offset,
                pair=pair,
                peer_url=None if state.links is None else state.links.url,
                python=options.python,
            )
        )

    async def start_members() -> None:
        estate = _estate(state)
        estate.start_members(None, argv_for)
        await estate.wait_members(path="/readyz", within=READY_WITHIN)
        state.members = [
            MemberEndpoint(m.name, m.region, m.api_url, ("127.0.0.1", m.dns_port))
            for m in estate.members.values()
        ]

    offset = ports.vip_offset(file.inventory)
    applied = {  # the AccessPoint documents as the steps apply them (their ports moved)
        sid: tuple(move_ports(d.doc, offset) for d in docs)
        for sid, docs in file.accesspoints.items()
    }

    def sampler() -> Sampler:
        estate = _estate(state)
        facts = estate_facts(estate.inventory, {m.name: m.region for m in state.members})
        observer = None
        if file.accesspoints:
            observer = ApObserver(file.accesspoints, estate.inventory, estate.cluster_urls)
        return Sampler(
            state.members,
            facts,
            client_subnets(estate.inventory),
            token=estate.viewer_token,
            wles=estate.wles,
            queries=drill.dns_queries,
            accesspoints=observer,
        )

    async def wait_healthy() -> None:
        async with sampler() as s:
            await healthy(s, HEALTHY_WITHIN)

    async def play_timeline() -> None:
        estate = _estate(state)
        async with sampler() as s:
            runbook = Runbook([m.api for m in state.members], estate.operator_token)
            driver = None
            if file.accesspoints:
                driver = ApDriver(estate, file.accesspoints, offset)
                stack.push_async_callback(driver.aclose)
            injector = Injector(
                drill.name,
                s.facts,
                state.members,
                runbook=runbook,
                sampler=s,
                estate=estate,
                links=state.links,
                argv_for=argv_for,
                records=lambda: state.played.steps,
                accesspoints=driver,
            )
            try:
                await play(
                    schedule,
                    injector,
                    s,
                    period=drill.sample_every,
                    duration=duration,
                    played=state.played,
                    on_step=on_step,
                )
            finally:  # what was observed is reported, even when the timeline broke off
                injector.release()  # no state directory left full after the drill
                state.killed = {r.member for r in state.played.steps if r.member}
                final = await s.final([m.name for m in state.members])
                state.record = Record(
                    drill=drill.name,
                    title=drill.title,
                    variant=variant,
                    mode="simulated",
                    started=time.time() - (asyncio.get_running_loop().time() - state.played.t0),
                    sample_every=drill.sample_every,
                    estate=s.facts,
                    samples=tuple(state.played.samples),
                    steps=tuple(state.played.steps),
                    splits=tuple(state.played.splits),
                    final=final,
                    accesspoints=applied,
                )

    async def stop() -> None:
        if state.estate is not None:
            state.verdicts += _crashes(state)
        await stack.aclose()

    async def check() -> None:
        if state.record is None:
            return
        state.verdicts = evaluate(drill, state.record) + state.verdicts

    async def report() -> None:
        if state.record is not None:
            write_report(out_dir, drill, state.record, state.verdicts)

    flow = (
        Workflow(drill.name)
        .step(f"start the simulated estate (ports {ports.base}..{ports.base + 99})", start_estate)
        .step(f"start {len(pair) * len(file.inventory.region_names)} gtm members", start_members)
        .step("wait until every VIP is up and every region has a leader", wait_healthy)
        .step(
            f"play {len(schedule)} steps over {duration:g}s, sampling every {drill.sample_every:g}s",
            play_timeline,
        )
        .step("stop every process", stop, always=True)
        .step(f"check {len(drill.checks())} assertions", check, always=True)
        .step("write report.html and samples.json", report, always=True)
    )
    try:
        stages = await flow.run(on_stage)
    finally:
        await stack.aclose()
    broken = [s for s in stages if s.outcome == "failed"]
    verdicts = list(state.verdicts) + [
        failed(f"workflow: {s.name}", "workflow", s.error or "failed") for s in broken
    ]
    return DrillResult(
        drill=drill.name,
        title=drill.title,
        variant=variant,
        passed=drill_passed(verdicts) and state.record is not None,
        verdicts=tuple(verdicts),
        stages=tuple(stages),
        took=time.monotonic() - started,
        record=state.record,
        report=out_dir / "report.html" if state.record is not None else None,
        samples=out_dir / "samples.json" if state.record is not None else None,
    )


def _estate(state: _State) -> SimulatedEstate:
    if state.estate is None:
        raise RuntimeError("the estate is not started")
    return state.estate


def _crashes(state: _State) -> list[Verdict]:
    """A member the drill did not kill that is not running is a crash."""
    estate = _estate(state)
    running = estate.running_members()
    out = []
    for m in state.members:
        if m.name not in running and m.name not in state.killed:
            code = estate.launcher.returncode(m.name)
            tail = estate.launcher.log_tail(m.name, 5)
            out.append(
                failed(f"process {m.name}", "process", f"exited with code {code}", "runs", [tail])
            )
    return out


async def healthy(sampler: Sampler, within: float) -> Sample:
    """Until every member answers, each region has one leader, every VIP is up, mesh in sync."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    vips = sum(len(s.vips) for s in sampler.facts.services.values())
    why = "no look yet"
    while True:
        sample = await sampler.sample(loop.time())
        why = _unhealthy(sample, vips, sampler.facts.regions)
        if why is None:
            return sample
        if loop.time() > deadline:
            raise TimeoutError(f"the estate is not healthy after {within:g}s: {why}")
        await asyncio.sleep(0.25)


def _unhealthy(sample: Sample, vips: int, regions: tuple[str, ...]) -> str | None:
    for m in sample.members.values():
        if not m.reachable:
            return f"{m.name} does not answer ({m.error})"
        if m.vips_up != vips:
            return f"{m.name} sees {m.vips_up}/{vips} VIPs up"
    for region in regions:
        leaders = [m for m in sample.members.values() if m.region == region and m.role == "leader"]
        if len(leaders) != 1:
            return f"{region} has {len(leaders)} leaders"
        for cluster, p in leaders[0].mesh.items():
            if p.in_sync != p.desired:
                return f"{cluster}: {p.in_sync}/{p.desired} WorkloadEntries in sync"
    return None
