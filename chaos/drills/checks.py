"""The assertions of a drill file: what must hold, with its bound, named by `check`.

    assertions:
      - {check: reflects, step: outage, dns_within: 4s, wles_within: 6s}
      - {check: converged, step: exit, within: 12s}
      - {check: no_flip_flop, from: flap, until: unflap, max_reversals: 0}

| check | passes when |
|---|---|
| `reflects` | after a fault or action `step` (or each of a list), the DNS answers (the served tables of every member and the answers on the wire) and the WorkloadEntries reflect it within `dns_within` / `wles_within` (max over the affected services; p50 reported) |
| `converged` | an operator `step` is admitted in both layers on every member, every cluster in sync, DNS answers and WLEs agree, within `within` (`settled`: and every table is back to its baseline, ramps done) |
| `ordered` | after an exit or drain (enter), in every region the members' DNS dropped the region (the cluster's WorkloadEntries took it back) at least the hold (DNS TTL + exit margin, less `slack` and one sample) before the cluster's WorkloadEntries followed (DNS followed): DNS first out, last in |
| `takeover` | after `kill_leader`/`pause_leader`, another member of the region leads within `within` (default: the lease duration) |
| `impaired` | after `vantage_impaired`, every member reports that vantage impaired within `within` |
| `steady` | from `from` until `until`, no DNS weight and no WorkloadEntry changes (no traffic moves) |
| `fail_open` | after `step`, the rows of `service` fail open within `within` and its DNS answers never run dry |
| `split` | the answers counted by a `measure_split` step match the `expected` split: `table` (what each member serves) or weights per client region and target; per cell, the count is within `z` standard deviations of the binomial expectation |
| `bounds` | at every sample, every cell of every served table is within its policy's bounds (rollout bounds in a rollout window, ramp caps while ramping), rows sum to their total, out cells are 0 |
| `no_flip_flop` | between `from` and `until` (default: per fault, from one step to the next) no cell of any table and no WorkloadEntry reverses its direction of change more than `max_reversals` times |
| `answers` | every DNS query to a running member is answered with an address |
| `nothing_lost` | every accepted action is in every member's intent (in force or ended) and accepted once in each region's history; refused ones left no trace; the tables admit what is in force |

`bounds`, `no_flip_flop`, `answers` and `nothing_lost` run on every drill; list
them to set their options.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from chaos.drills.steps import Model, StepId
from gtm.config.values import Duration


class Check(Model):
    def label(self) -> str:
        return str(getattr(self, "check", "?"))


class Reflects(Check):
    check: Literal["reflects"]
    step: StepId | list[StepId]  # several: p50 and max over all their services
    dns_within: Duration | None = None
    wles_within: Duration | None = None
    services: list[str] | None = None  # None: every affected service

    @property
    def steps(self) -> list[str]:
        return [self.step] if isinstance(self.step, str) else list(self.step)

    def label(self) -> str:
        return f"reflects {'+'.join(self.steps)}"


class Converged(Check):
    check: Literal["converged"]
    step: StepId
    within: Duration
    settled: bool = False  # also every table back to its baseline (a ramp done)

    def label(self) -> str:
        return f"{'settled' if self.settled else 'converged'} {self.step}"


class Ordered(Check):
    check: Literal["ordered"]
    step: StepId
    slack: Duration = 0.0  # how much less than the hold a region's lead may be

    def label(self) -> str:
        return f"ordered {self.step}"


class Takeover(Check):
    check: Literal["takeover"]
    step: StepId
    within: Duration | None = None  # None: the lease duration

    def label(self) -> str:
        return f"takeover after {self.step}"


class Impaired(Check):
    check: Literal["impaired"]
    step: StepId
    within: Duration

    def label(self) -> str:
        return f"impaired after {self.step}"


class Steady(Check):
    check: Literal["steady"]
    start: StepId | None = Field(default=None, alias="from")  # None: the start
    until: StepId | None = None  # None: the end
    services: list[str] | None = None

    def label(self) -> str:
        return f"steady {self.start or 'start'}..{self.until or 'end'}"


class FailOpen(Check):
    check: Literal["fail_open"]
    step: StepId
    service: str
    within: Duration

    def label(self) -> str:
        return f"fail open {self.service} after {self.step}"


class Split(Check):
    check: Literal["split"]
    step: StepId
    expected: Literal["table"] | dict[str, dict[str, int]] = "table"  # source -> target -> weight
    z: float = Field(default=4.0, gt=0)

    def label(self) -> str:
        return f"split {self.step}"


class Bounds(Check):
    check: Literal["bounds"]


class NoFlipFlop(Check):
    check: Literal["no_flip_flop"]
    start: StepId | None = Field(default=None, alias="from")
    until: StepId | None = None
    max_reversals: int = Field(default=1, ge=0)

    def label(self) -> str:
        if self.start is None and self.until is None:
            return "no flip-flop"
        return f"no flip-flop {self.start or 'start'}..{self.until or 'end'}"


class Answers(Check):
    check: Literal["answers"]


class NothingLost(Check):
    check: Literal["nothing_lost"]


AnyCheck = Annotated[
    Reflects
    | Converged
    | Ordered
    | Takeover
    | Impaired
    | Steady
    | FailOpen
    | Split
    | Bounds
    | NoFlipFlop
    | Answers
    | NothingLost,
    Field(discriminator="check"),
]

ALWAYS: tuple[type[Check], ...] = (Bounds, NoFlipFlop, Answers, NothingLost)
CHECKS: tuple[str, ...] = (
    "reflects",
    "converged",
    "ordered",
    "takeover",
    "impaired",
    "steady",
    "fail_open",
    "split",
    "bounds",
    "no_flip_flop",
    "answers",
    "nothing_lost",
)
