"""What a member reports about itself: its `MemberStatus` (`/v1/status`) and `/v1/health`.

Everything here is observed, not intended: the generation DNS serves now, the
WorkloadEntries in sync as the reconcilers' watch caches see them, the
vantages heard from. The runbook's `--wait` reads the same type (`gtm.status`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from gtm.status import (
    DnsRef,
    IntentRef,
    Layers,
    LeaderRef,
    MemberStatus,
    MeshProgress,
    PeerRef,
    Pending,
    RegionRef,
)
from intent import override_to_dict, refusal_to_dict
from probes import HealthView

if TYPE_CHECKING:
    from gtm.service.runtime import MemberRuntime


def member_status(m: MemberRuntime) -> MemberStatus:
    config = m.inventory.config
    elector = m.elector
    holder = None if elector is None else elector.leader()
    served = m.table()
    snap = None if m.controller is None else m.controller.snapshot
    intent = m.intent()
    layers = None
    decisions = exporters = None
    if snap is not None:
        layers = Layers(
            evaluated_at=snap.at,
            dns_generation=snap.dns.table.generation,
            mesh_generation=snap.mesh.table.generation,
            dns_admitted=list(snap.dns.admitted),
            mesh_admitted=list(snap.mesh.admitted),
            mesh_pending=[Pending(id=o.id, at=at) for o, at in snap.layers.mesh_pending],
            refusals=[refusal_to_dict(r) for r in snap.dns.refusals],
        )
        assert m.controller is not None
        decisions = [d._asdict() for d in list(m.controller.decisions)[-20:]]
        exporters = m.controller.exporter_status
    scheduler = m.scheduler
    return MemberStatus(
        identity=m.identity,
        region=m.region,
        role=m.role(),
        ready=m.ready(),
        started=m.started,
        leader=None
        if holder is None
        else LeaderRef(identity=holder.identity, address=holder.address, epoch=holder.epoch),
        epoch=None if elector is None else elector.epoch,
        dns=DnsRef(
            listen=config.dns.listen,
            generation=None if served is None else served.generation,
            served_at=m.served_at,
            ttl=config.dns.ttl,
            zones=m.inventory.zones(),
            answering=None if m.dns is None else m.dns.generation,
            behind_seconds=0.0 if m.dns is None else round(m.dns.behind(), 3),
            workers=None if m.dns is None else len(m.dns.pids),
            restarts=0 if m.dns is None else m.dns.restarts,
        ),
        generation=None if served is None else served.generation,
        health=_health_summary(m.health_view()),
        intent=IntentRef(
            version=intent.version,
            digest=intent.digest,
            active=[override_to_dict(o) for o in intent.overrides.values()],
        ),
        layers=layers,
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
            for p in (r.progress() for r in m.reconcilers)
        },
        peers=_peers(m),
        regions={
            r.name: RegionRef(locality=r.locality, client_cidrs=[str(c) for c in r.client_cidrs])
            for r in config.regions
        },
        fqdns={s.name: s.fqdn for s in config.services},
        decisions=decisions,
        exporters=exporters,
        prober=None if scheduler is None else asdict(scheduler.stats()),
    )


def _peers(m: MemberRuntime) -> list[PeerRef]:
    """Every other member the config names (the partner too), with what the exchange heard."""
    heard = {} if m.peers is None else m.peers.status()
    out = []
    for p in m.inventory.config.api.peers:
        exchange = heard.get(p.region)
        if exchange is not None and exchange["url"] != p.url.rstrip("/"):
            exchange = None
        out.append(PeerRef(region=p.region, url=p.url, exchange=exchange))
    return out


def health_doc(view: HealthView) -> dict[str, Any]:
    return {
        "at": view.at,
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
