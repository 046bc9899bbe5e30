"""What a member reports about itself: its `MemberStatus` (`/v1/status`) and `/v1/health`.

Built from what each part reports (the elector, `Serving`, `Controller`,
`Leader`, `PeerExchange`, the probe scheduler and health monitor), never by
reaching into them. Everything here is observed, not intended: the generation
DNS serves now, the WorkloadEntries in sync as the reconcilers' watch caches
see them, the vantages heard from. The runbook's `--wait` reads the same type
(`gtm.status`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from failover import Progress
from gtm.config import Inventory
from gtm.ha import Holder
from gtm.service.controller import EvaluationStatus
from gtm.status import (
    ConfigRef,
    DnsRef,
    IntentRef,
    LeaderRef,
    MemberStatus,
    MeshProgress,
    PeerRef,
    RegionRef,
)
from intent import IntentState, StoreMark, override_to_dict
from probes import HealthView, SchedulerStats


def member_status(
    *,
    identity: str,
    region: str,
    role: str,
    ready: bool,
    unready: Sequence[str] = (),  # why not ready (`MemberRuntime.unready`)
    started: float,
    inventory: Inventory,
    holder: Holder | None,  # the lease holder as the elector last read it
    epoch: int | None,  # this member's epoch while it leads
    dns: DnsRef,  # `Serving.status`
    config_ref: ConfigRef,  # `ConfigState.ref`
    health: HealthView,
    intent: IntentState,
    store_mark: StoreMark | None = None,  # `GuardedIntentStore.mark_report`
    evaluation: EvaluationStatus,  # `Controller.status`
    mesh: Sequence[Progress],  # `Leader.progress`: empty while not leading
    peers: Mapping[str, dict[str, Any]],  # `PeerExchange.status`
    prober: SchedulerStats | None,
) -> MemberStatus:
    """The member's status from what each of its parts reports."""
    config = inventory.config
    return MemberStatus(
        identity=identity,
        region=region,
        role=role,
        ready=ready,
        unready=list(unready),
        started=started,
        leader=None
        if holder is None
        else LeaderRef(identity=holder.identity, address=holder.address, epoch=holder.epoch),
        epoch=epoch,
        dns=dns,
        config=config_ref,
        generation=dns.generation,
        health=_health_summary(health),
        intent=IntentRef(
            version=intent.version,
            digest=intent.digest,
            active=[override_to_dict(o) for o in intent.overrides.values()],
            **({} if store_mark is None else store_mark.fields()),
        ),
        layers=evaluation.layers,
        mesh={
            p.cluster: MeshProgress(
                in_sync=p.in_sync,
                desired=p.desired,
                generation=p.generation,
                synced=p.synced,
                watching=p.watching,
                converged=p.converged,
                refused=p.refused,
                stopped=p.stopped,
                conflicts=list(p.conflicts),
            )
            for p in mesh
        },
        peers=_peers(inventory, peers),
        regions={
            r.name: RegionRef(locality=r.locality, client_cidrs=[str(c) for c in r.client_cidrs])
            for r in config.regions
        },
        fqdns={s.name: s.fqdn for s in config.services},
        decisions=evaluation.decisions,
        exporters=evaluation.exporters,
        prober=None if prober is None else asdict(prober),
    )


def _peers(inventory: Inventory, heard: Mapping[str, dict[str, Any]]) -> list[PeerRef]:
    """Every other member the config names (the partner too), with what the exchange heard."""
    out = []
    for p in inventory.config.api.peers:
        exchange = heard.get(p.region)
        if exchange is not None and exchange["url"] != p.url.rstrip("/"):
            exchange = None
        out.append(PeerRef(region=p.region, url=p.url, exchange=exchange))
    return out


def health_doc(view: HealthView) -> dict[str, Any]:
    # before the first probe result the tracker's time is -inf: null, not `-Infinity`
    # (which is not JSON)
    return {
        "at": view.at if math.isfinite(view.at) else None,
        "impaired": sorted(view.impaired),
        "vips": {
            vid: {
                "service": h.service,
                "region": h.region,
                "state": h.state,
                "since": h.since,
                "reason": h.reason,
                "damped": h.damped,
                "up_votes": h.up_votes,
                "down_votes": h.down_votes,
            }
            for vid, h in view.vips.items()
        },
        "regions": {
            f"{svc}/{region}": {
                "state": h.state,
                "since": h.since,
                "reason": h.reason,
                "up": h.up,
                "total": h.total,
            }
            for (svc, region), h in view.regions.items()
        },
    }


def _health_summary(view: HealthView) -> dict[str, Any]:
    return {
        "vips": dict(Counter(h.state for h in view.vips.values())),
        "regions": dict(Counter(h.state for h in view.regions.values())),
        "down": sorted(f"{s}/{r}" for (s, r), h in view.regions.items() if h.state == "down"),
        "impaired": sorted(view.impaired),
    }
