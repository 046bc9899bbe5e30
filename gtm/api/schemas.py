"""The shapes the API answers with, as types: the response schemas of `GET /v1/openapi.json`.

Every answer is a dict built by code; a `TypedDict` here names its keys. Where the
code writes a value's fields as they are (`asdict`, `to_dict`, `_asdict`: a `Check`,
a `Refusal`, an `Override`, a `Tombstone`, an `AuditEntry`, a `Lookup`, a `Decision`,
a `VipHealth`'s fields, an observation row), `fields_of` makes the TypedDict from the
value's own type, so a renamed or retyped field changes the document with it. The
builders in `views` return these types. `MemberStatus` (`GET /v1/status`) is its own
pydantic model. `tests/api/test_api_openapi.py` checks a real member's answers to
chosen requests against the document, `test_api_openapi_conformance.py` runs
schemathesis against one: any answer that does not match fails them.

Every shape is exact: no key beyond those named, and every key required but the few
a builder writes only sometimes (`NotRequired`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any, NotRequired, get_args, get_type_hints

from pydantic import ConfigDict, TypeAdapter, WithJsonSchema, with_config
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from gtm.api.member import MemberRole
from gtm.dns.lookup import Lookup, Target
from gtm.service.action_plan import RowChange
from intent import AuditEntry, Tombstone
from policies import Check, Decision, Override, Refusal
from probes import Observation, RegionHealth, State, VantageVote, VipHealth

EXACT = ConfigDict(extra="forbid")  # a key not named is a mismatch


def fields_of(of: type, *names: str, name: str, typed: Mapping[str, Any] | None = None) -> Any:
    """A TypedDict of `names` (default: every field) of `of`, each typed as `of` types it.

    `typed` adds keys, or retypes a field that holds a dataclass with that dataclass's
    own `fields_of`: inside, pydantic would make its fields with defaults optional,
    where the code writes them all."""
    hints = get_type_hints(of)
    keys = {n: hints[n] for n in names or tuple(hints)} | dict(typed or {})
    nested = sorted(k for k, t in keys.items() if _holds_dataclass(t))
    if nested:
        raise TypeError(f"{name}: retype {nested} with `typed` (they hold dataclasses)")
    return with_config(EXACT)(TypedDict(name, keys))  # type: ignore[operator]


def _holds_dataclass(t: Any) -> bool:
    if isinstance(t, type) and dataclasses.is_dataclass(t):
        return True
    return any(_holds_dataclass(a) for a in get_args(t))


def row_of(of: type, *names: str) -> Any:
    """A JSON array of `of`'s fields `names`, in that order (a compact row).

    Its schema lists the types each place may hold rather than a `prefixItems` tuple:
    schemathesis (4.32) rewrites `prefixItems` of a response schema into draft 7's
    `items: [...]` and then refuses the schema it made."""
    hints = get_type_hints(of)
    row = tuple[tuple(hints[n] for n in names)]  # type: ignore[misc]
    places = TypeAdapter(row).json_schema()["prefixItems"]
    schema = {
        "type": "array",
        "minItems": len(names),
        "maxItems": len(names),
        "items": {"anyOf": [p for i, p in enumerate(places) if p not in places[:i]]},
        "description": f"[{', '.join(names)}]",
    }
    return Annotated[row, WithJsonSchema(schema)]


# --- values written field for field -------------------------------------------------

CheckJson = fields_of(Check, name="Check")
RefusalJson = fields_of(Refusal, name="Refusal")  # `intent.refusal_to_dict`
OverrideJson = fields_of(Override, name="Override")  # `intent.override_to_dict`
TombstoneJson = fields_of(Tombstone, name="Tombstone")
AuditEntryJson = fields_of(AuditEntry, name="AuditEntry", typed={"override": OverrideJson | None})
DecisionJson = fields_of(Decision, name="Decision")  # `Decision._asdict()`
RowChangeJson = fields_of(RowChange, name="RowChange")
VantageVoteJson = fields_of(VantageVote, name="VantageVote")
TargetJson = fields_of(Target, name="Target")
LookupJson = fields_of(Lookup, name="Lookup", typed={"targets": list[TargetJson]})


# --- errors -----------------------------------------------------------------------


@with_config(EXACT)
class Problem(TypedDict):
    """Every error answer: the reason, for people, and what a client may act on (or null)."""

    error: str
    details: Any


@with_config(EXACT)
class RefusedDetails(TypedDict):
    refusals: list[CheckJson]  # type: ignore[valid-type]  # the failed checks
    plan: ActionResultJson  # what the action would have changed


@with_config(EXACT)
class RefusedProblem(TypedDict):
    """A guardrail or a blast-radius limit refused the action; nothing changed."""

    error: str
    details: RefusedDetails


# --- probes of the kubelet ----------------------------------------------------------


@with_config(EXACT)
class Alive(TypedDict):
    ok: bool


@with_config(EXACT)
class Ready(TypedDict):
    ready: bool
    role: MemberRole


# --- the weight table (`WeightTable.to_dict`) ---------------------------------------


@with_config(EXACT)
class CellJson(TypedDict):
    weight: int
    vips: dict[str, int]  # VIP id -> share within the region
    out: NotRequired[str]  # only when the target is out: why (`policies.Out`)
    ramp_start: NotRequired[float]  # only while the cell ramps back
    ramp: NotRequired[float | None]


@with_config(EXACT)
class RowJson(TypedDict):
    total: int
    cells: dict[str, CellJson]  # target region -> cell
    fail_open: NotRequired[bool]  # only when true


@with_config(EXACT)
class WeightTableJson(TypedDict):
    generation: int
    computed_at: float
    rows: dict[str, dict[str, RowJson]]  # service -> source region -> row


# --- health (`gtm.service.status.health_doc`) ----------------------------------------

VipHealthJson = fields_of(
    VipHealth,
    *("service", "region", "state", "since", "reason", "damped", "up_votes", "down_votes"),
    name="VipHealthJson",
)
RegionHealthJson = fields_of(
    RegionHealth, "state", "since", "reason", "up", "total", name="RegionHealthJson"
)


@with_config(EXACT)
class HealthJson(TypedDict):
    at: float | None  # when the view was taken; null before the first probe result
    impaired: list[str]  # vantages whose votes do not count
    vips: dict[str, VipHealthJson]  # VIP id -> its health
    regions: dict[str, RegionHealthJson]  # "service/region" -> its health


# --- explain (`gtm.service.explain.explain_doc`) -------------------------------------

DecisionAt = fields_of(Decision, name="DecisionAt", typed={"at": float})
ExplainRegionJson = fields_of(
    RegionHealth, "state", "since", "reason", "up", "total", "needed", name="ExplainRegionJson"
)


@with_config(EXACT)
class ExplainVipJson(TypedDict):
    id: str
    region: str
    probe: str  # "tcp 10.1.0.5:443"
    rise: int | None
    fall: int | None
    state: State | None  # null: no health for traffic yet
    since: float | None
    reason: str | None
    damped: bool | None
    damped_until: float | None
    flap_penalty: float
    vantages: list[VantageVoteJson]  # type: ignore[valid-type]


@with_config(EXACT)
class ExplainCellJson(TypedDict):
    clients_in: str
    target: str
    weight: int
    out: str | None
    ramping: bool
    # the latest decision behind the cell (the leader's, as it evaluated it)
    decision: DecisionAt | None  # type: ignore[valid-type]


@with_config(EXACT)
class ExplainJson(TypedDict):
    service: str
    region: str | None
    impaired_vantages: list[str]
    vips: list[ExplainVipJson]
    regions: dict[str, ExplainRegionJson]
    generation: int | None
    decisions_known: bool  # false on a standby: it does not evaluate
    cells: list[ExplainCellJson]


# --- intent, history, observations ----------------------------------------------------


@with_config(EXACT)
class IntentStateJson(TypedDict):
    """`IntentState.to_dict`: what peers merge (anti-entropy)."""

    format: int
    version: int
    epoch: int
    overrides: list[OverrideJson]  # type: ignore[valid-type]
    tombstones: list[TombstoneJson]  # type: ignore[valid-type]
    retired: int


@with_config(EXACT)
class HistoryJson(TypedDict):
    entries: list[AuditEntryJson]  # type: ignore[valid-type]  # newest first
    next: str | None  # pass as `before` for the older page; null: none


ObservationRow = row_of(Observation, "target_id", "ok", "latency", "wall", "reason")


@with_config(EXACT)
class ObservationsJson(TypedDict):
    observations: list[ObservationRow]  # type: ignore[valid-type]
    next: int  # the cursor to ask with next (`since`)


# --- plans and actions (`views`) -------------------------------------------------------


@with_config(EXACT)
class PlanRowJson(TypedDict):
    service: str
    source: str
    old: RowJson | None  # null: a new row
    new: RowJson


@with_config(EXACT)
class PlanJson(TypedDict):
    generation: int
    base_generation: int | None
    changed: bool
    rows: list[PlanRowJson]  # the rows that differ from the served table
    decisions: list[DecisionJson]  # type: ignore[valid-type]
    refusals: list[RefusalJson]  # type: ignore[valid-type]
    admitted: list[str]
    forced: list[str]


Ramp = with_config(EXACT)(TypedDict("Ramp", {"from": float, "until": float}))  # type: ignore[operator]


@with_config(EXACT)
class ActionResultJson(TypedDict):
    accepted: bool
    dry_run: bool
    override_ids: list[str]
    dns: list[RowChangeJson]  # type: ignore[valid-type]  # the rows that change (the first)
    rows_changed: int
    mesh: dict[str, list[str]]  # cluster -> its WLE changes, a line each
    moved_share: float
    checks: list[CheckJson]  # type: ignore[valid-type]
    # the checks that failed (forced ones answer 200 and show here)
    refusals: list[CheckJson]  # type: ignore[valid-type]
    message: str
    ends: list[str]
    ramp: Ramp | None  # type: ignore[valid-type]
    intent_version: int


@with_config(EXACT)
class OpenApiJson(TypedDict):
    """This document."""

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]
