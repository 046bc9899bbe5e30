"""The JSON the API answers with: action results, what-if plans, tables; and its encoding.

Shapes (the runbook CLI reads them):

- action result: `{accepted, dry_run, override_ids, dns: [{service, source, old, new}],
  rows_changed, mesh: {cluster: [line…]}, moved_share, checks: [check…], refusals: [check…],
  message, ends: [override described…], ramp: {from, until} | null, intent_version}`, a check being `{rule, passed, message, changed, total, limit,
  where}` (`refusals`: the checks that failed; forced ones answer 200 and show here)
- plan: `{generation, base_generation, changed, rows: [{service, source, old, new}],
  decisions: [{service, source, target, rule, input, old, new}], refusals, admitted, forced}`
  where `old`/`new` are rows as `WeightTable.to_dict` writes them (`old` null when new).

Their types are in `schemas` (`ActionResultJson`, `PlanJson`, `WeightTableJson`): the
API's OpenAPI document describes the answers with them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import asdict
from typing import Any

from aiohttp import web

from gtm.api.schemas import ActionResultJson, PlanJson
from gtm.service.actions import ActionResult
from intent import refusal_to_dict
from policies import Check, Decision, Evaluation, WeightTable, collector_paused, pieces


def _default(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Set):
        return sorted(value, key=str)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: object) -> str:
    """JSON of API answers: dataclasses as objects, sets as sorted lists."""
    return json.dumps(value, default=_default)


def json_response(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


async def json_built_aside(build: Callable[[], object]) -> web.Response:
    """Build and encode a large answer from immutable values in a worker thread.

    A whole table of thousands of services takes ~0.1 s to encode: on the
    loop, or in one call of the C encoder (which holds the GIL throughout),
    the member's loop would stand still for as long. `policies.pieces`
    encodes it a member at a time, with the collector paused.
    """

    def encoded() -> str:
        with collector_paused():
            return pieces.dumps(build(), default=_default)

    return web.Response(text=await asyncio.to_thread(encoded), content_type="application/json")


def decision_json(d: Decision) -> dict[str, Any]:
    return d._asdict()


def check_json(c: Check) -> dict[str, Any]:
    return asdict(c)


def result_json(r: ActionResult) -> ActionResultJson:
    """An action's result: its plan, flat, with the checks that refuse it as `refusals`."""
    p = r.plan
    return {
        "accepted": r.accepted,
        "dry_run": r.dry_run,
        "override_ids": list(p.override_ids),
        "dns": [asdict(row) for row in p.dns],
        "rows_changed": p.rows_changed,
        "mesh": {cluster: plan.lines() for cluster, plan in p.mesh.items()},
        "moved_share": p.moved_share,
        "checks": [check_json(c) for c in p.checks],
        "refusals": [check_json(c) for c in p.checks if not c.passed],
        "message": p.action,
        "ends": list(p.ends),
        "ramp": None if p.ramp is None else {"from": p.ramp[0], "until": p.ramp[1]},
        "intent_version": r.intent_version,
    }


def plan_json(ev: Evaluation, base: WeightTable | None) -> PlanJson:
    rows = []
    for by_source in ev.table.rows.values():
        for row in by_source.values():
            old = None if base is None else base.row(row.service, row.source)
            if old is None or old != row:
                rows.append(
                    {
                        "service": row.service,
                        "source": row.source,
                        "old": None if old is None else old.to_dict(),
                        "new": row.to_dict(),
                    }
                )
    return {
        "generation": ev.table.generation,
        "base_generation": None if base is None else base.generation,
        "changed": ev.changed,
        "rows": rows,
        "decisions": [decision_json(d) for d in ev.decisions],
        "refusals": [refusal_to_dict(r) for r in ev.refusals],
        "admitted": list(ev.admitted),
        "forced": list(ev.forced),
    }


def table_json(table: WeightTable, services: Sequence[str] = ()) -> dict[str, Any]:
    """`WeightTable.to_dict`, with only `services` when any are named."""
    d = table.to_dict()
    if services:
        d["rows"] = {s: d["rows"][s] for s in services}
    return d


def unknown(names: Iterable[str], known: Mapping[str, object]) -> list[str]:
    return sorted({n for n in names if n not in known})
