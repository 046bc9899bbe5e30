"""A drill as a workflow of named steps, after k8gb's test workflows.

    flow = (
        Workflow("vip-outage")
        .step("start the simulated estate", start_estate)
        .step("start 3 gtm members", start_members)
        .step("play the timeline", play_timeline)
        .step("stop every process", stop, always=True)
    )
    stages = await flow.run(on_stage=print)

Steps run in order; the first that fails skips the rest except those marked
`always` (stopping processes, writing the report), and the failure is kept
with its reason. Cancellation (Ctrl-C) still runs the `always` steps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class Stage:
    """One workflow step as it ran."""

    name: str
    outcome: Outcome
    took: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class _Planned:
    name: str
    run: Callable[[], Awaitable[object]]
    always: bool


class Workflow:
    def __init__(self, title: str) -> None:
        self.title = title
        self._steps: list[_Planned] = []

    def step(
        self, name: str, run: Callable[[], Awaitable[object]], *, always: bool = False
    ) -> Workflow:
        self._steps.append(_Planned(name, run, always))
        return self

    @property
    def names(self) -> list[str]:
        return [s.name for s in self._steps]

    async def run(self, on_stage: Callable[[Stage], None] | None = None) -> list[Stage]:
        done: list[Stage] = []
        broken = False
        cancelled: BaseException | None = None

        def report(stage: Stage) -> None:
            done.append(stage)
            if on_stage is not None:
                on_stage(stage)

        for planned in self._steps:
            if (broken or cancelled is not None) and not planned.always:
                report(Stage(planned.name, "skipped"))
                continue
            started = time.monotonic()
            try:
                await planned.run()
            except asyncio.CancelledError as e:
                cancelled = e
                report(Stage(planned.name, "failed", time.monotonic() - started, "cancelled"))
                continue
            except Exception as e:
                broken = True
                error = f"{type(e).__name__}: {e}"
                report(Stage(planned.name, "failed", time.monotonic() - started, error))
                continue
            report(Stage(planned.name, "ok", time.monotonic() - started))
        if cancelled is not None:
            raise cancelled
        return done
