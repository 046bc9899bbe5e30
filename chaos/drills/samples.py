"""What a drill observed, as values: samples, the steps it took, split counts, the final intent.

Everything the assertions and the report read is here and in `samples.json`
(`dump_record` / `load_record` round-trip it exactly). A sample is what a
client saw at one moment, from outside:

- per member: its `/v1/status` (role, leader, generation, admitted overrides,
  mesh progress, health), the table it serves (`/v1/table`) and the ids of the
  overrides it holds as ended (`/v1/overrides`);
- per member, service and client region: the DNS answers on the wire, asked
  with the region's client subnet (ECS), as VIP ids;
- per cluster: its WorkloadEntries (weight, Healthy condition);
- with AccessPoints in the drill: per cluster, the objects of the AccessPoint
  kinds in their namespaces (owner labels, a Service's VIPs, a WorkloadEntry's
  address and Healthy condition), and each AccessPoint of the home cluster with
  its status.

Answers are VIP ids, or `addr:<address>` (an address no VIP has), `empty`
(NOERROR without an address), `rcode:<name>`, `error:<what>` (no answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import TypeAdapter

from gtm.status import MemberStatus


@dataclass(frozen=True)
class CellState:
    weight: int
    out: str | None = None
    vips: Mapping[str, int] = field(default_factory=dict)
    ramp_start: float | None = None
    ramp: float | None = None


@dataclass(frozen=True)
class RowState:
    total: int
    cells: Mapping[str, CellState]
    fail_open: bool = False

    def weights(self) -> dict[str, int]:
        return {t: c.weight for t, c in self.cells.items()}


@dataclass(frozen=True)
class TableState:
    """A served weight table, as `GET /v1/table` answers it."""

    generation: int
    computed_at: float
    rows: Mapping[str, Mapping[str, RowState]]  # service -> source region -> row

    def vip_weight(self, service: str, source: str, region: str, vip: str) -> int:
        """The part of the row the VIP gets: its cell's weight if it has a share, else 0."""
        row = self.rows.get(service, {}).get(source)
        cell = None if row is None else row.cells.get(region)
        if cell is None or not cell.vips.get(vip, 0):
            return 0
        return cell.weight


@dataclass(frozen=True)
class OverrideRef:
    """An override in force, as a member's status lists it."""

    id: str
    kind: str
    region: str
    why: str = ""
    created: float = 0.0
    expires: float | None = None
    services: tuple[str, ...] | None = None

    def covers(self, service: str) -> bool:
        return self.services is None or service in self.services


@dataclass(frozen=True)
class MeshState:
    in_sync: int
    desired: int
    generation: int | None = None
    converged: bool | None = None
    refused: str | None = None


@dataclass(frozen=True)
class MemberState:
    name: str
    region: str
    reachable: bool
    error: str | None = None
    role: str | None = None
    leader: str | None = None
    epoch: int | None = None
    generation: int | None = None
    intent_version: int | None = None
    active: tuple[OverrideRef, ...] = ()
    ended: tuple[str, ...] = ()
    dns_admitted: tuple[str, ...] = ()
    mesh_admitted: tuple[str, ...] = ()
    mesh_generation: int | None = None
    mesh: Mapping[str, MeshState] = field(default_factory=dict)
    down: tuple[str, ...] = ()  # (service/region)s down
    vips_down: int = 0
    vips_up: int = 0
    impaired: tuple[str, ...] = ()
    table: TableState | None = None

    def status(self) -> MemberStatus:
        """As the runbook's convergence logic reads a member (`gtm.client.convergence`)."""
        return MemberStatus.model_validate(
            {
                "identity": self.name,
                "region": self.region,
                "role": self.role or "starting",
                "generation": self.generation,
                "intent": {
                    "version": self.intent_version or 0,
                    "active": [{"id": i} for i in self.active_ids],
                },
                "layers": {
                    "dns_admitted": list(self.dns_admitted),
                    "mesh_admitted": list(self.mesh_admitted),
                    "mesh_generation": self.mesh_generation,
                },
                "mesh": {
                    c: {
                        "in_sync": m.in_sync,
                        "desired": m.desired,
                        "generation": m.generation,
                        "converged": m.converged,
                        "refused": m.refused,
                    }
                    for c, m in self.mesh.items()
                },
            }
        )

    @property
    def active_ids(self) -> tuple[str, ...]:
        return tuple(o.id for o in self.active)


@dataclass(frozen=True)
class Wle:
    """One WorkloadEntry as its cluster stores it."""

    name: str
    vip: str  # the VIP id it points at ("" when no VIP of the estate has its address)
    service: str
    target: str  # the region of that VIP
    weight: int
    healthy: bool | None  # the Healthy condition; None when missing
    message: str | None = None

    @property
    def effective(self) -> int:
        """The weight the mesh gives it: nothing unless Healthy is True."""
        return self.weight if self.healthy else 0


@dataclass(frozen=True)
class KubeObject:
    """One object of the AccessPoint kinds in an AccessPoint namespace, as its cluster stores it."""

    kind: str
    namespace: str
    name: str
    uid: str = ""
    owner: str | None = None  # the `gtm.io/accesspoint` label
    managed: bool = False  # labelled `gtm.io/managed: "true"`
    upstream: str | None = None  # the `gtm.io/upstream` label
    ingress: tuple[str, ...] = ()  # a Service: the IPs of its status.loadBalancer.ingress
    port: int | None = None  # a Service: its first port
    address: str | None = None  # a WorkloadEntry: spec.address
    healthy: bool | None = None  # a WorkloadEntry: its Healthy condition (None: missing)
    message: str | None = None  # ... and that condition's message
    digest: str = ""  # of its spec, labels and annotations (a WorkloadEntry's weight aside)

    def owned_by(self, accesspoint: str) -> bool:
        """Labelled as the AccessPoint's own: what gtm sweeps when it is deleted."""
        return self.managed and self.owner == accesspoint


@dataclass(frozen=True)
class ApState:
    """One AccessPoint as the home cluster holds it."""

    namespace: str
    name: str
    generation: int | None = None
    status: Mapping[str, Any] = field(default_factory=dict)


Answers = Mapping[str, Mapping[str, Mapping[str, tuple[str, ...]]]]  # member/service/client


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the timeline started, when the sample was complete
    wall: float
    took: float
    members: Mapping[str, MemberState]
    dns: Answers
    wles: Mapping[str, tuple[Wle, ...]]  # cluster (region) -> its WLEs
    # with AccessPoints: cluster -> its objects in their namespaces (a cluster not read: absent)
    objects: Mapping[str, tuple[KubeObject, ...]] = field(default_factory=dict)
    accesspoints: Mapping[str, ApState] = field(default_factory=dict)  # namespace/name -> AP

    def running(self) -> list[MemberState]:
        return [m for m in self.members.values() if m.reachable]


@dataclass(frozen=True)
class StepRecord:
    """One step as it ran: when, and what came of it."""

    id: str
    do: str
    title: str
    planned: float  # `at` of the variant run
    t: float  # when it ran
    took: float
    ok: bool  # did what it should (an action: accepted or refused as expected)
    detail: str = ""
    status: int | None = None  # an action's HTTP status
    override_ids: tuple[str, ...] = ()
    rule: str | None = None  # the guardrail of a refusal
    reason: str | None = None  # an action's reason (tags its overrides)
    member: str | None = None  # the member a kill or pause hit
    expect: str | None = None  # an action's expectation: accepted | refused


@dataclass(frozen=True)
class SplitCount:
    """One burst of DNS queries from one client region, counted by the region answered."""

    step: str
    member: str
    service: str
    source: str  # the client region asked as
    n: int  # queries sent
    counts: Mapping[str, int]  # answered region -> count ("?": an answer outside the VIPs)
    expected: Mapping[str, int]  # the served row's weights when the burst started
    total: int
    generation_before: int | None
    generation_after: int | None
    unanswered: Mapping[str, int] = field(default_factory=dict)  # why -> count ("timeout", …)

    @property
    def answered(self) -> int:
        """Queries that got a reply (the binomial test's n)."""
        return self.n - sum(self.unanswered.values())


@dataclass(frozen=True)
class HistoryEntry:
    id: str
    action: str
    override_id: str
    why: str
    at: float
    rule: str | None = None


@dataclass(frozen=True)
class FinalMember:
    """What a member holds when the drill ends (one member per region answers the history)."""

    name: str
    region: str
    reachable: bool
    active: tuple[OverrideRef, ...] = ()
    ended: tuple[str, ...] = ()
    history: tuple[HistoryEntry, ...] | None = None
    error: str | None = None


@dataclass(frozen=True)
class PolicyFacts:
    total: int
    split: Mapping[str, Mapping[str, int]]
    lo: Mapping[str, Mapping[str, int]]
    hi: Mapping[str, Mapping[str, int]]
    rollout_lo: Mapping[str, Mapping[str, int]]
    rollout_hi: Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class ServiceFacts:
    fqdn: str
    policy: PolicyFacts
    vips: Mapping[str, str]  # VIP id -> region
    addresses: Mapping[str, str]  # address -> VIP id
    accesspoint: str | None = None  # onboarded by this AccessPoint (namespace/name), VIPs as seen


@dataclass(frozen=True)
class EstateFacts:
    """What the assertions need to know of the estate: its shape and its policies."""

    regions: tuple[str, ...]
    members: Mapping[str, str]  # member -> region
    services: Mapping[str, ServiceFacts]
    lease_duration: float
    hold: float  # DNS TTL + exit margin
    policies_known: bool = True  # False against a deployment whose estate file was not given

    def vips_in(self, service: str, region: str) -> list[str]:
        """The service's VIP ids in the region (none for a service never seen: an
        AccessPoint's before its VIPs were discovered)."""
        known = self.services.get(service)
        return [] if known is None else [v for v, r in known.vips.items() if r == region]


@dataclass(frozen=True)
class Record:
    """One drill run: everything `samples.json` holds."""

    drill: str
    title: str
    variant: Literal["full", "short"]
    mode: Literal["simulated", "against"]
    started: float  # wall clock at t = 0
    sample_every: float
    estate: EstateFacts
    samples: tuple[Sample, ...] = ()
    steps: tuple[StepRecord, ...] = ()
    splits: tuple[SplitCount, ...] = ()
    final: Mapping[str, FinalMember] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # step id -> the AccessPoint documents it applied, as applied (Service ports moved)
    accesspoints: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)

    def step(self, step_id: str) -> StepRecord | None:
        for s in self.steps:
            if s.id == step_id:
                return s
        return None


_RECORD: TypeAdapter[Record] = TypeAdapter(Record)
_TABLE: TypeAdapter[TableState] = TypeAdapter(TableState)


def dump_record(record: Record) -> dict[str, Any]:
    return dict(_RECORD.dump_python(record, mode="json"))


def load_record(data: Any) -> Record:
    return _RECORD.validate_python(data)


def table_state(data: Any) -> TableState:
    """A table as `GET /v1/table` answers it (extra keys ignored)."""
    return _TABLE.validate_python(data)
