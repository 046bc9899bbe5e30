"""Synthetic drill records for the assertion and report tests: a three-region estate, one service.

`foo` has one VIP per region (`foo/dcN/127.0.N.1:443`), a 98/1/1 policy with
rollout bounds 50..98 / 0..25; members `dc1-a`, `dc2-a`, `dc3-a`. The
builders make samples the way the sampler would have recorded them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chaos.drills.facts import policy_facts
from chaos.drills.model import Drill
from chaos.drills.samples import (
    CellState,
    EstateFacts,
    FinalMember,
    HistoryEntry,
    MemberState,
    MeshState,
    OverrideRef,
    Record,
    RowState,
    Sample,
    ServiceFacts,
    SplitCount,
    StepRecord,
    TableState,
    Wle,
)
from policies import Bounds, Policy

REGIONS = ("dc1", "dc2", "dc3")
MEMBERS = {f"{r}-a": r for r in REGIONS}
VIPS = {f"foo/{r}/127.0.{i}.1:443": r for i, r in enumerate(REGIONS, 1)}
VIP = {r: v for v, r in VIPS.items()}
POLICY = Policy.uniform(
    "default",
    REGIONS,
    rollout_local=Bounds(50, 98),
    rollout_remote=Bounds(0, 25),
    max_step=25,
    ramp=6.0,
)
FACTS = EstateFacts(
    regions=REGIONS,
    members=MEMBERS,
    services={
        "foo": ServiceFacts(
            "foo.example.com",
            policy_facts(POLICY),
            VIPS,
            {v.split("/")[2].split(":")[0]: v for v in VIPS},
        )
    },
    lease_duration=4.0,
    hold=3.0,
)
BASE = {s: {t: 98 if s == t else 1 for t in REGIONS} for s in REGIONS}


def weights(out: str | None = None, moved_to: str = "dc1") -> dict[str, dict[str, int]]:
    """The rows with `out` taken out, its weight given to `moved_to` (or the source)."""
    rows = {s: dict(r) for s, r in BASE.items()}
    if out is None:
        return rows
    for s, row in rows.items():
        gone = row[out]
        row[out] = 0
        row[s if s != out else moved_to] += gone
    return rows


def table(
    rows: Mapping[str, Mapping[str, int]] | None = None,
    *,
    out: Mapping[str, str] | None = None,
    generation: int = 1,
    at: float = 0.0,
    fail_open: bool = False,
    ramp: Mapping[str, tuple[float, float]] | None = None,
) -> TableState:
    rows = rows or BASE
    out = out or {}
    ramp = ramp or {}
    return TableState(
        generation=generation,
        computed_at=at,
        rows={
            "foo": {
                s: RowState(
                    100,
                    {
                        t: CellState(
                            w,
                            out.get(t),
                            {VIP[t]: 0 if t in out and not fail_open else 1},
                            *(ramp.get(t) or (None, None)),
                        )
                        for t, w in row.items()
                    },
                    fail_open,
                )
                for s, row in rows.items()
            }
        },
    )


def member(name: str, tab: TableState | None = None, **kw: Any) -> MemberState:
    return MemberState(name, MEMBERS[name], kw.pop("reachable", True), table=tab, **kw)


def answers(
    rows: Mapping[str, Mapping[str, int]], n: int = 1
) -> dict[str, dict[str, tuple[str, ...]]]:
    """Per client region, n answers, all in its heaviest target."""
    return {"foo": {s: (VIP[max(row, key=lambda t: row[t])],) * n for s, row in rows.items()}}


def wles(healthy: Mapping[str, bool] | None = None) -> dict[str, tuple[Wle, ...]]:
    healthy = healthy or {}
    return {
        c: tuple(
            Wle(f"foo-{t}", VIP[t], "foo", t, 98 if c == t else 1, healthy.get(t, True))
            for t in REGIONS
        )
        for c in REGIONS
    }


def sample(
    t: float,
    rows: Mapping[str, Mapping[str, int]] | None = None,
    *,
    tab: TableState | None = None,
    dns: Mapping[str, Any] | None = None,
    wle: Mapping[str, tuple[Wle, ...]] | None = None,
    down: Sequence[str] = (),
    **member_kw: Any,
) -> Sample:
    rows = rows or BASE
    tab = tab or table(rows)
    per = member_kw.pop("per", {})
    members = {n: member(n, tab, down=tuple(down), **member_kw, **per.get(n, {})) for n in MEMBERS}
    return Sample(
        t=t,
        wall=1000.0 + t,
        took=0.05,
        members=members,
        dns={n: dict(dns if dns is not None else answers(rows)) for n in MEMBERS},
        wles=dict(wle if wle is not None else wles()),
    )


def step(sid: str, do: str, t: float, **kw: Any) -> StepRecord:
    return StepRecord(
        id=sid, do=do, title=sid, planned=t, t=t, took=0.01, ok=kw.pop("ok", True), **kw
    )


def record(
    samples: Sequence[Sample],
    steps: Sequence[StepRecord] = (),
    *,
    splits: Sequence[SplitCount] = (),
    final: Mapping[str, FinalMember] | None = None,
) -> Record:
    return Record(
        drill="synthetic",
        title="synthetic drill",
        variant="short",
        mode="simulated",
        started=1000.0,
        sample_every=0.5,
        estate=FACTS,
        samples=tuple(samples),
        steps=tuple(steps),
        splits=tuple(splits),
        final=dict(final or {}),
    )


def drill(timeline: list[dict[str, Any]], assertions: list[dict[str, Any]] | None = None) -> Drill:
    return Drill.model_validate(
        {
            "name": "synthetic",
            "title": "synthetic drill",
            "duration": "60s",
            "timeline": timeline,
            "assertions": assertions or [],
        }
    )


def final(
    active: Sequence[OverrideRef] = (),
    ended: Sequence[str] = (),
    history: Sequence[HistoryEntry] = (),
) -> dict[str, FinalMember]:
    return {
        n: FinalMember(n, r, True, tuple(active), tuple(ended), tuple(history))
        for n, r in MEMBERS.items()
    }


MESH_SYNCED = {"dc1": MeshState(18, 18, 1)}
