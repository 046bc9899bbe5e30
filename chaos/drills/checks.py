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
| `accesspoint_ready` | after an `accesspoint_apply` step, each of its APs with `spec.gtm` is answered in DNS with its discovered VIPs (every member's table weighs each, the wire answers only them and each of them), within `dns_within`; each AP with upstreams holds, in every cluster of its scope, one WorkloadEntry per VIP of each upstream, Healthy=True, within `wles_within` (`accesspoints`: only these) |
| `withdrawn` | after `l4_withdraw`, every WorkloadEntry of the withdrawn VIP goes Healthy=False within `within`, stays so, and is deleted no sooner than the hold (DNS TTL + exit margin, less a sample) after that and within `deleted_within` of the step |
| `swept` | after `accesspoint_delete`, nothing labelled as the AP's own (`gtm.io/managed=true`, `gtm.io/accesspoint=<name>`) is left in any cluster within `within`, and every other object the AP namespaces held before the step is still there (same uid) at every later look |
| `accesspoint_status` | after `step`, the AccessPoint's status (in the home cluster) holds `equals` at `path` within `within`: `rollout.phase`, `conditions[type=Degraded].status`, `clusters[name=dc2].applied`, `vips[0].ip` (compared as text, case aside: `true` matches `True`); or, `unchanged: true`, what it held just before the step at every look until `until` (or the end) |
| `untouched` | after `step`, in each of `clusters`, the objects labelled as the AP's own keep their spec, labels and annotations (a WorkloadEntry's weight aside), none goes and none appears, until `until` (or the end) |

`bounds`, `no_flip_flop`, `answers` and `nothing_lost` run on every drill; list
them to set their options.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

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


class AccesspointReady(Check):
    check: Literal["accesspoint_ready"]
    step: StepId
    dns_within: Duration | None = None
    wles_within: Duration | None = None
    accesspoints: list[str] | None = None  # names (or namespace/name); None: every AP of the step

    def label(self) -> str:
        return f"accesspoint ready after {self.step}"


class Withdrawn(Check):
    check: Literal["withdrawn"]
    step: StepId
    within: Duration  # every WLE of the VIP Healthy=False
    deleted_within: Duration | None = None  # None: by the end of the drill

    def label(self) -> str:
        return f"withdrawn after {self.step}"


class Swept(Check):
    check: Literal["swept"]
    step: StepId
    within: Duration

    def label(self) -> str:
        return f"swept after {self.step}"


StatusValue = str | int | float | bool | None
Segment = str | int | tuple[str, str]  # a key, a list index, or a list item whose key equals
_SEGMENT = re.compile(r"\.?([A-Za-z0-9_-]+)|\[(\d+)\]|\[([A-Za-z0-9_-]+)=([^\]]*)\]")


def status_path(path: str) -> list[Segment]:
    """`conditions[type=Degraded].status` -> ['conditions', ('type', 'Degraded'), 'status']."""
    out: list[Segment] = []
    at = 0
    while at < len(path):
        m = _SEGMENT.match(path, at)
        if m is None or (m.group(0).startswith(".") and not out) or m.end() == at:
            raise ValueError(f"cannot read a field path at {path[at:]!r}")
        key, index, item, value = m.groups()
        if key is not None:
            if out and not m.group(0).startswith("."):
                raise ValueError(f"a '.' goes before {key!r}")
            out.append(key)
        elif index is not None:
            out.append(int(index))
        else:
            out.append((item, value))
        at = m.end()
    if not out or not isinstance(out[0], str):
        raise ValueError("a field path starts with a field name")
    return out


class AccesspointStatus(Check):
    check: Literal["accesspoint_status"]
    step: StepId
    accesspoint: str | None = None  # name or namespace/name; None: the one AP the step names
    path: Annotated[str, Field(min_length=1)]
    equals: StatusValue = None
    within: Duration | None = None  # with `equals`
    unchanged: bool = False  # the value before the step holds at every look until `until`
    until: StepId | None = None  # with `unchanged`; None: the end

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        status_path(value)
        return value

    @model_validator(mode="after")
    def _one_way(self) -> AccesspointStatus:
        if self.unchanged == ("equals" in self.model_fields_set):
            raise ValueError("give `equals` (with `within`) or `unchanged: true`")
        if "equals" in self.model_fields_set and self.within is None:
            raise ValueError("`equals` needs `within`")
        if self.unchanged and self.within is not None:
            raise ValueError("`unchanged` holds to `until` (or the end): no `within`")
        return self

    def label(self) -> str:
        ap = f"{self.accesspoint} " if self.accesspoint else ""
        how = "unchanged" if self.unchanged else f"= {self.equals}"
        return f"status {ap}{self.path} {how} after {self.step}"


class Untouched(Check):
    check: Literal["untouched"]
    step: StepId
    accesspoint: str | None = None  # name or namespace/name; None: the one AP the step names
    clusters: Annotated[list[str], Field(min_length=1)]
    until: StepId | None = None  # None: the end

    def label(self) -> str:
        ap = f"{self.accesspoint} " if self.accesspoint else ""
        return f"untouched {ap}in {', '.join(self.clusters)} after {self.step}"


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
    | NothingLost
    | AccesspointReady
    | Withdrawn
    | Swept
    | AccesspointStatus
    | Untouched,
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
    "accesspoint_ready",
    "withdrawn",
    "swept",
    "accesspoint_status",
    "untouched",
)
