"""The timeline of a drill file: named steps at times, each a fault, a repair or an operator action.

    timeline:
      - {id: outage, at: 4s, do: vip_fault, vips: [foo/dc2], mode: refuse}
      - {id: exit, at: 10s, short_at: 6s, do: region_exit, region: dc2}
      - {id: second-exit, at: 12s, do: region_exit, region: dc3, expect: refused,
         rule: max_concurrent_exits}

`at` counts from the moment the estate is healthy (every VIP up, a leader per
region); `short_at` replaces it in the `--short` variant. Pydantic models:
the drill file is an edge, validated here and read-only afterwards.

| do | what it does |
|---|---|
| `vip_fault` | `vips` (`service/region` or `service/region/address`) get a fault: `mode` refuse, blackhole, slow (`latency`), error (`status`), flap (`period`) |
| `vip_clear` | those VIPs (all when none are named) are healthy again |
| `region_down` / `region_up` | every VIP of `region` fails (`mode`, default refuse) / recovers |
| `vantage_impaired` / `vantage_clear` | every VIP fails as seen from `region`'s probers only |
| `partition` / `heal` | the peer exchange between two `regions` is cut (blackholed) / restored |
| `api_brownout` / `api_clear` | the Kubernetes API of `regions` gets latency, 5xx, 429s, dropped watches |
| `kill_leader` | SIGKILL the leader of `region` (started again after `restart_after`) |
| `pause_leader` | SIGSTOP the leader of `region` for `for`, then SIGCONT |
| `region_exit` / `region_enter` / `drain` / `rollout` / `remove` | operator actions through the API, with `expect: accepted` or `refused` (and the guardrail `rule`) |
| `measure_split` | `queries` DNS queries per service and client region, for a `split` check |
| `bad_reload` | a bad config (`kind`: alias_bomb, duplicate_key, tagged_scalar) and SIGHUP to `member` of `region`; checked and put back after `check_after` |
| `state_full` / `state_clear` | the state directory of `region` full (ENOSPC) / room again, the audit checked whole |
| `intent_delete` | the newest intent file of `region` moved aside, linked back after `restore_after` |
| `accesspoint_apply` | the AccessPoints of `file` (relative to the drill) or `accesspoints` (inline) created, or replaced, in the home cluster |
| `accesspoint_delete` | the AccessPoint `accesspoint` (`namespace`: default its own) deleted from the home cluster |
| `l4_withdraw` | the L4 controller of `cluster` withdraws the VIP of `accesspoint`'s Service (`restore_after`: gives it back) |
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gtm.config.values import Duration

StepId = Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")]
RegionName = Annotated[str, Field(min_length=1)]
VipRef = Annotated[str, Field(pattern=r"^[^/\s]+/[^/\s]+(/[^/\s]+)?$")]
Rate = Annotated[float, Field(ge=0, le=1)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Step(Model):
    id: StepId
    at: Duration
    short_at: Duration | None = None  # `at` in the --short variant
    name: str | None = None  # for people; default from the step itself

    def when(self, short: bool) -> float:
        return self.short_at if short and self.short_at is not None else self.at

    def describe(self) -> str:
        return self.name or self.summary()

    def summary(self) -> str:
        return self.id


# --- faults and repairs -----------------------------------------------------------------


class VipFault(Step):
    do: Literal["vip_fault"]
    vips: Annotated[list[VipRef], Field(min_length=1)]
    mode: Literal["refuse", "blackhole", "slow", "error", "flap"]
    latency: Duration = 0.0
    status: int = Field(default=503, ge=100, le=599)
    period: Duration = 1.0

    def summary(self) -> str:
        return f"{self.mode} on {', '.join(self.vips)}"


class VipClear(Step):
    do: Literal["vip_clear"]
    vips: list[VipRef] | None = None  # None: every VIP

    def summary(self) -> str:
        return f"{', '.join(self.vips) if self.vips else 'every VIP'} healthy again"


class RegionDown(Step):
    do: Literal["region_down"]
    region: RegionName
    mode: Literal["refuse", "blackhole", "error"] = "refuse"

    def summary(self) -> str:
        return f"region {self.region} down ({self.mode})"


class RegionUp(Step):
    do: Literal["region_up"]
    region: RegionName

    def summary(self) -> str:
        return f"region {self.region} up again"


class VantageImpaired(Step):
    do: Literal["vantage_impaired"]
    region: RegionName
    mode: Literal["refuse", "blackhole", "error"] = "error"
    status: int = Field(default=503, ge=100, le=599)

    def summary(self) -> str:
        return f"every VIP fails as seen from {self.region}'s probers ({self.mode})"


class VantageClear(Step):
    do: Literal["vantage_clear"]
    region: RegionName

    def summary(self) -> str:
        return f"{self.region}'s probers see the VIPs again"


class Partition(Step):
    do: Literal["partition"]
    regions: Annotated[list[RegionName], Field(min_length=2, max_length=2)]

    def summary(self) -> str:
        return f"peer exchange between {self.regions[0]} and {self.regions[1]} cut"


class Heal(Step):
    do: Literal["heal"]
    regions: Annotated[list[RegionName], Field(min_length=2, max_length=2)] | None = None

    def summary(self) -> str:
        return "peer exchange " + (
            f"between {self.regions[0]} and {self.regions[1]} restored"
            if self.regions
            else "restored everywhere"
        )


class ApiBrownout(Step):
    do: Literal["api_brownout"]
    regions: Annotated[list[RegionName], Field(min_length=1)]
    latency: Duration = 0.0
    jitter: Duration = 0.0
    error_rate: Rate = 0.0  # share of requests answered 500
    throttle_rate: Rate = 0.0  # share answered 429 with Retry-After
    retry_after: int = Field(default=1, ge=0)
    rate_limit: float | None = Field(default=None, gt=0)
    drop_watches: bool = False
    drop_watches_after: Duration | None = None

    def summary(self) -> str:
        parts = [
            f"{self.latency:g}s latency" if self.latency else "",
            f"{self.error_rate:.0%} 5xx" if self.error_rate else "",
            f"{self.throttle_rate:.0%} 429" if self.throttle_rate else "",
            f"{self.rate_limit:g} req/s" if self.rate_limit else "",
            "watches dropped" if self.drop_watches or self.drop_watches_after else "",
        ]
        what = ", ".join(p for p in parts if p) or "no faults"
        return f"Kubernetes API brownout in {', '.join(self.regions)}: {what}"


class ApiClear(Step):
    do: Literal["api_clear"]
    regions: list[RegionName] | None = None  # None: every cluster

    def summary(self) -> str:
        return f"Kubernetes API healthy again in {', '.join(self.regions or ['every region'])}"


class KillLeader(Step):
    do: Literal["kill_leader"]
    region: RegionName
    restart_after: Duration | None = None

    def summary(self) -> str:
        again = f", restarted after {self.restart_after:g}s" if self.restart_after else ""
        return f"SIGKILL the leader of {self.region}{again}"


class PauseLeader(Step):
    do: Literal["pause_leader"]
    region: RegionName
    pause: Duration = Field(alias="for")

    def summary(self) -> str:
        return f"SIGSTOP the leader of {self.region} for {self.pause:g}s"


# --- hostile inputs and disks (chaos.drills.hostile) ------------------------------------


class BadReload(Step):
    do: Literal["bad_reload"]
    region: RegionName
    member: Literal["a", "b"] = "a"
    kind: Literal["alias_bomb", "duplicate_key", "tagged_scalar"]
    check_after: Duration = Field(default=3.0, gt=0)

    def summary(self) -> str:
        return f"SIGHUP {self.region}-{self.member} with a config holding a {self.kind.replace('_', ' ')}"


class StateFull(Step):
    do: Literal["state_full"]
    region: RegionName

    def summary(self) -> str:
        return f"the state directory of {self.region} full (ENOSPC)"


class StateClear(Step):
    do: Literal["state_clear"]
    region: RegionName

    def summary(self) -> str:
        return f"the state directory of {self.region} has room again"


class IntentDelete(Step):
    do: Literal["intent_delete"]
    region: RegionName
    restore_after: Duration | None = None

    def summary(self) -> str:
        back = f", restored after {self.restore_after:g}s" if self.restore_after else ""
        return f"the newest intent file of {self.region} deleted{back}"


# --- AccessPoints (chaos.drills.aps) -------------------------------------------------------


class AccesspointApply(Step):
    """AccessPoints created in the home cluster, or replaced there when they exist (as
    `kubectl apply` leaves them): from `file` (a `kind: AccessPoint` document or a
    `kind: List` of them, relative to the drill file) or `accesspoints` (inline)."""

    do: Literal["accesspoint_apply"]
    file: str | None = None
    accesspoints: Annotated[list[dict[str, Any]], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> AccesspointApply:
        if (self.file is None) == (self.accesspoints is None):
            raise ValueError("give either `file` or `accesspoints` (inline documents)")
        return self

    def summary(self) -> str:
        if self.file is not None:
            return f"apply the AccessPoints of {self.file}"
        names = [str((d.get("metadata") or {}).get("name")) for d in self.accesspoints or []]
        return f"apply AccessPoint(s) {', '.join(names)}"


class AccesspointDelete(Step):
    do: Literal["accesspoint_delete"]
    accesspoint: str
    namespace: str | None = None  # None: the namespace the drill applied it in

    def summary(self) -> str:
        return f"delete AccessPoint {self.accesspoint}"


class L4Withdraw(Step):
    do: Literal["l4_withdraw"]
    cluster: str
    accesspoint: str
    namespace: str | None = None  # None: the namespace the drill applied it in
    restore_after: Duration | None = None

    def summary(self) -> str:
        back = f", restored after {self.restore_after:g}s" if self.restore_after else ""
        return f"{self.cluster}'s L4 controller withdraws the VIP of {self.accesspoint}{back}"


# --- operator actions -------------------------------------------------------------------


class Action(Step):
    """An operator action, posted to the API as the runbook does."""

    reason: str | None = None  # default: names the drill and the step
    ticket: str | None = None
    expect: Literal["accepted", "refused", "unavailable"] = "accepted"
    rule: str | None = None  # refused: the guardrail that must refuse it
    cause: str | None = None  # unavailable (503): the errno the store names (ENOSPC)


class RegionExit(Action):
    do: Literal["region_exit"]
    region: RegionName
    services: list[str] | None = None
    expires_in: Duration | None = None
    force: bool = False

    def summary(self) -> str:
        return f"gtm region exit {self.region}" + _scope(self.services)


class RegionEnter(Action):
    do: Literal["region_enter"]
    region: RegionName
    services: list[str] | None = None
    ramp: Duration | None = None

    def summary(self) -> str:
        ramp = f" --ramp {self.ramp:g}s" if self.ramp is not None else ""
        return f"gtm region enter {self.region}{ramp}" + _scope(self.services)


class DrainAction(Action):
    do: Literal["drain"]
    region: RegionName
    services: Annotated[list[str], Field(min_length=1)]
    expires_in: Duration | None = None
    force: bool = False

    def summary(self) -> str:
        return f"gtm drain {' '.join(self.services)} --region {self.region}"


class RolloutAction(Action):
    do: Literal["rollout"]
    region: RegionName
    window: Duration
    services: list[str] | None = None

    def summary(self) -> str:
        return f"rollout window in {self.region} for {self.window:g}s" + _scope(self.services)


class RemoveAction(Action):
    do: Literal["remove"]
    override_of: StepId  # the step whose override to end

    def summary(self) -> str:
        return f"end the override of step {self.override_of}"


# --- observation --------------------------------------------------------------------------


class MeasureSplit(Step):
    do: Literal["measure_split"]
    queries: int = Field(default=300, ge=10, le=100_000)  # per service and client region
    members: list[str] | None = None  # None: the first running member of each region
    services: list[str] | None = None  # None: every service

    def summary(self) -> str:
        return f"{self.queries} DNS queries per service and client region"


def _scope(services: list[str] | None) -> str:
    return f" ({', '.join(services)})" if services else ""


AnyStep = Annotated[
    VipFault
    | VipClear
    | RegionDown
    | RegionUp
    | VantageImpaired
    | VantageClear
    | Partition
    | Heal
    | ApiBrownout
    | ApiClear
    | KillLeader
    | PauseLeader
    | RegionExit
    | RegionEnter
    | DrainAction
    | RolloutAction
    | RemoveAction
    | MeasureSplit
    | BadReload
    | StateFull
    | StateClear
    | IntentDelete
    | AccesspointApply
    | AccesspointDelete
    | L4Withdraw,
    Field(discriminator="do"),
]

ACTIONS = (RegionExit, RegionEnter, DrainAction, RolloutAction, RemoveAction)
KINDS: tuple[str, ...] = (
    "vip_fault",
    "vip_clear",
    "region_down",
    "region_up",
    "vantage_impaired",
    "vantage_clear",
    "partition",
    "heal",
    "api_brownout",
    "api_clear",
    "kill_leader",
    "pause_leader",
    "region_exit",
    "region_enter",
    "drain",
    "rollout",
    "remove",
    "measure_split",
    "bad_reload",
    "state_full",
    "state_clear",
    "intent_delete",
    "accesspoint_apply",
    "accesspoint_delete",
    "l4_withdraw",
)
ACCESSPOINT_STEPS = (AccesspointApply, AccesspointDelete, L4Withdraw)
