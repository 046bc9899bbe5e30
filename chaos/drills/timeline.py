"""Play a timeline: inject each step at its time while the sampler looks on a fixed period.

    played = await play(schedule, injector, sampler, period=0.5, duration=30.0, on_step=print)

Everything runs under one TaskGroup: the sampler, the steps in time order,
and what steps leave for later (a paused leader's SIGCONT, a killed
member's restart), each recorded as a step of its own (`<id>:<what>`) when
it runs. A `guard` looks at the record after every sample; when it names a
reason the timeline stops there (a practice run aborting). The clock is the
event loop's; `t` is seconds since the timeline started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from chaos.drills.faults import Injector, Later
from chaos.drills.observe import Sampler
from chaos.drills.samples import Sample, SplitCount, StepRecord
from chaos.drills.steps import ACTIONS, Step

OnStep = Callable[[StepRecord], None]
Guard = Callable[[Sequence[Sample], Sequence[StepRecord]], str | None]


@dataclass
class Played:
    """What a timeline observed (filled in as it runs)."""

    t0: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    splits: list[SplitCount] = field(default_factory=list)
    aborted: str | None = None


async def play(
    schedule: Sequence[tuple[float, Step]],
    injector: Injector,
    sampler: Sampler,
    *,
    period: float,
    duration: float,
    played: Played | None = None,
    on_step: OnStep | None = None,
    guard: Guard | None = None,
) -> Played:
    """Run `schedule` ((at, step) in time order) for `duration` seconds; see the module doc."""
    loop = asyncio.get_running_loop()
    out = played if played is not None else Played()
    if not out.t0:  # a timeline continued (a practice run's re-entry) keeps its clock
        out.t0 = loop.time()
    stop = asyncio.Event()
    pending: list[asyncio.Task[None]] = []

    def note(record: StepRecord) -> None:
        out.steps.append(record)
        if on_step is not None:
            on_step(record)

    async def later(step: Step, job: Later, after: float) -> None:
        await asyncio.sleep(max(0.0, after + job.delay - loop.time()))
        started = loop.time()
        try:
            detail, ok = await job.run(), True
        except Exception as e:  # recorded: the assertions see the step failed
            detail, ok = f"{type(e).__name__}: {e}", False
        kind = job.title.split()[0]
        note(
            StepRecord(
                id=f"{step.id}:{kind}",
                do=kind,
                title=job.title,
                planned=round(after - out.t0 + job.delay, 3),
                t=round(started - out.t0, 3),
                took=round(loop.time() - started, 3),
                ok=ok,
                detail=detail,
            )
        )

    async def steps(tasks: asyncio.TaskGroup) -> None:
        for at, step in schedule:
            await asyncio.sleep(max(0.0, out.t0 + at - loop.time()))
            if stop.is_set():
                return
            started = loop.time()
            try:
                got = await injector.apply(step)
            except Exception as e:
                note(_record(step, at, started - out.t0, loop.time() - started, False, f"{e!r}"))
                continue
            note(
                StepRecord(
                    id=step.id,
                    do=str(getattr(step, "do", "")),
                    title=step.describe(),
                    planned=at,
                    t=round(started - out.t0, 3),
                    took=round(loop.time() - started, 3),
                    ok=got.ok,
                    detail=got.detail,
                    status=got.status,
                    override_ids=got.override_ids,
                    rule=got.rule,
                    reason=got.reason,
                    member=got.member,
                    expect=getattr(step, "expect", None) if isinstance(step, ACTIONS) else None,
                )
            )
            out.splits += got.splits
            if got.later is not None:
                pending.append(tasks.create_task(later(step, got.later, started)))
        await asyncio.sleep(max(0.0, out.t0 + duration - loop.time()))
        stop.set()

    async def watch() -> None:
        seen = 0
        while not stop.is_set():
            await asyncio.sleep(period / 2)
            if guard is not None and len(out.samples) > seen:
                seen = len(out.samples)
                reason = guard(out.samples, out.steps)
                if reason is not None:
                    out.aborted = reason
                    stop.set()

    async with asyncio.TaskGroup() as tasks:
        timeline = tasks.create_task(steps(tasks))
        watcher = tasks.create_task(watch())
        await sampler.run(period, out.t0, out.samples, stop)
        timeline.cancel()
        watcher.cancel()
        for task in pending:
            task.cancel()  # resumes and restarts still waiting when the timeline ends
    return out


def _record(step: Step, at: float, t: float, took: float, ok: bool, detail: str) -> StepRecord:
    return StepRecord(
        id=step.id,
        do=str(getattr(step, "do", "")),
        title=step.describe(),
        planned=at,
        t=round(t, 3),
        took=round(took, 3),
        ok=ok,
        detail=detail,
    )
