"""Why a service stands where it does: `gtm explain SERVICE [REGION]` and `/v1/explain`.

For each VIP: its health for traffic (state, since, reason, damping), what
every vantage says of it (its latest result and when, the run of successes or
failures behind it against `rise`/`fall`, stale or impaired), and the
region's verdict; then the table's cells of the service as this member serves
them, and the latest decision behind each cell (which rule moved it, on what
input, old -> new; the leader's, as it evaluated them). Pure: built from the
values the member passes in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from policies import Decision, WeightTable
from probes import HealthTracker, HealthView, Target


class UnknownService(ValueError):
    """No such service (or it has no VIPs in that region)."""


def explain_doc(
    service: str,
    region: str | None,
    *,
    targets: Mapping[str, Target],
    view: HealthView,
    tracker: HealthTracker,
    table: WeightTable | None,
    decisions: Mapping[tuple[str, str, str], tuple[float, Decision]] | None,
) -> dict[str, Any]:
    """The document; `decisions` None: this member does not evaluate (a standby)."""
    mine = {t.id: t for t in targets.values() if t.service == service}
    if not mine:
        raise UnknownService(f"no service named {service!r}")
    if region is not None:
        mine = {i: t for i, t in mine.items() if t.region == region}
        if not mine:
            raise UnknownService(f"service {service!r} has no VIPs in region {region!r}")
    vips = []
    for target_id, target in sorted(mine.items()):
        health = view.vips.get(target_id)
        vips.append(
            {
                "id": target_id,
                "region": target.region,
                "probe": f"{target.kind} {target.address}:{target.port}",
                "rise": getattr(target.spec, "rise", None),
                "fall": getattr(target.spec, "fall", None),
                "state": None if health is None else health.state,
                "since": None if health is None else health.since,
                "reason": None if health is None else health.reason,
                "damped": None if health is None else health.damped,
                "damped_until": None if health is None else health.damped_until,
                "flap_penalty": round(tracker.damping(target_id), 3),
                "vantages": [asdict(v) for v in tracker.votes(target_id)],
            }
        )
    regions = {
        r: {
            "state": h.state,
            "since": h.since,
            "reason": h.reason,
            "up": h.up,
            "total": h.total,
            "needed": h.needed,
        }
        for (s, r), h in sorted(view.regions.items())
        if s == service and (region is None or r == region)
    }
    cells = []
    for by_source in (table.rows.get(service, {}) if table is not None else {}).values():
        for target, cell in by_source.cells.items():
            if region is not None and region not in (by_source.source, target):
                continue
            latest = (
                None if decisions is None else decisions.get((service, by_source.source, target))
            )
            cells.append(
                {
                    "clients_in": by_source.source,
                    "target": target,
                    "weight": cell.weight,
                    "out": cell.out,
                    "ramping": cell.ramp_start is not None,
                    "decision": None
                    if latest is None
                    else {"at": latest[0], **latest[1]._asdict()},
                }
            )
    return {
        "service": service,
        "region": region,
        "impaired_vantages": sorted(view.impaired),
        "vips": vips,
        "regions": regions,
        "generation": None if table is None else table.generation,
        "decisions_known": decisions is not None,
        "cells": cells,
    }
