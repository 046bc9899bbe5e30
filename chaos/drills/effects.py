"""What a step should change, and whether a sample shows it: the predicates of the timing checks.

A step that takes VIPs out (a VIP fault, a region down, an exit, a drain) or
brings them back (the repairs, an enter) has an `Effect`: the VIP ids per
service and the direction. A sample reflects it

- in DNS when every running member's served table gives those VIPs no weight
  in any row (out) or weight in every row whose policy sends traffic there
  (back), and the answers on the wire agree: none points at them (out), or
  each has been answered since the step (back);
- in the mesh when every WorkloadEntry of those VIPs, in every cluster, is
  Healthy False (out) or Healthy True (back).

An `l4_withdraw` takes out the VIPs of the AccessPoint's service in the
cluster's region (the simulated estate has one cluster per region, named
after it), once they were seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from chaos.drills.samples import EstateFacts, Sample
from chaos.drills.steps import (
    DrainAction,
    L4Withdraw,
    RegionDown,
    RegionEnter,
    RegionExit,
    RegionUp,
    Step,
    VipClear,
    VipFault,
)

Direction = Literal["out", "back"]


@dataclass(frozen=True)
class Effect:
    direction: Direction
    vips: Mapping[str, tuple[str, ...]]  # service -> the VIP ids it changes

    @property
    def services(self) -> list[str]:
        return [s for s, v in self.vips.items() if v]


def vip_refs(refs: Iterable[str], facts: EstateFacts) -> dict[str, list[str]]:
    """`service/region[/address]` -> VIP ids, per service."""
    out: dict[str, list[str]] = {}
    for ref in refs:
        service, region, *address = ref.split("/")
        for vip in facts.vips_in(service, region):
            if not address or vip.split("/", 2)[2].rpartition(":")[0] == address[0]:
                out.setdefault(service, []).append(vip)
    return out


def _region(
    facts: EstateFacts, region: str, services: Iterable[str] | None
) -> dict[str, list[str]]:
    names = list(services) if services is not None else list(facts.services)
    return {s: facts.vips_in(s, region) for s in names if s in facts.services}


def effect_of(step: Step, facts: EstateFacts) -> Effect | None:
    vips: dict[str, list[str]]
    direction: Direction
    if isinstance(step, VipFault):
        direction, vips = "out", vip_refs(step.vips, facts)
    elif isinstance(step, VipClear):
        direction = "back"
        vips = (
            vip_refs(step.vips, facts)
            if step.vips
            else {s: list(f.vips) for s, f in facts.services.items()}
        )
    elif isinstance(step, RegionDown | RegionUp):
        direction = "out" if isinstance(step, RegionDown) else "back"
        vips = _region(facts, step.region, None)
    elif isinstance(step, RegionExit | DrainAction | RegionEnter):
        direction = "back" if isinstance(step, RegionEnter) else "out"
        vips = _region(facts, step.region, step.services)
    elif isinstance(step, L4Withdraw):
        service = step.accesspoint.rsplit("/", 1)[-1]  # the service an AP onboards: its name
        direction, vips = "out", _region(facts, step.cluster, [service])
    else:
        return None
    return Effect(direction, {s: tuple(v) for s, v in vips.items() if v})


def dns_reflects(
    sample: Sample,
    facts: EstateFacts,
    service: str,
    vips: Iterable[str],
    direction: Direction,
    answered: set[str],
    *,
    region: str | None = None,
    wire: bool = True,
) -> bool:
    """Whether the sample's tables and wire answers show `vips` out (or back).

    `answered`: the VIPs answered on the wire since the step (for `back`);
    `region`: only the members of that region; `wire` False: the tables alone.
    """
    members = [m for m in sample.running() if region is None or m.region == region]
    if not members:
        return False
    wanted = set(vips)
    known = facts.services[service]
    for m in members:
        if m.table is None:
            return False
        rows = m.table.rows.get(service, {})
        for vip in wanted:
            region = known.vips[vip]
            for source in rows:
                weight = m.table.vip_weight(service, source, region, vip)
                if direction == "out" and weight > 0:
                    return False
                sends = not facts.policies_known or known.policy.split.get(source, {}).get(region)
                if direction == "back" and sends and weight == 0:
                    return False
        if direction == "out" and wire:
            for answers in sample.dns.get(m.name, {}).get(service, {}).values():
                if wanted.intersection(answers):
                    return False
    return direction == "out" or not wire or wanted <= answered


def wles_reflect(
    sample: Sample, vips: Iterable[str], direction: Direction, cluster: str | None = None
) -> bool | None:
    """Whether every WLE of `vips` in every cluster (or `cluster`) is out (back); None: none seen."""
    if not sample.wles:
        return None
    wanted = set(vips)
    seen = False
    for name, entries in sample.wles.items():
        if cluster is not None and name != cluster:
            continue
        for w in entries:
            if w.vip in wanted:
                seen = True
                if (direction == "out" and w.healthy is not False) or (
                    direction == "back" and w.healthy is not True
                ):
                    return False
    return seen


def answered_vips(sample: Sample, service: str, sources: Iterable[str] | None = None) -> set[str]:
    """The VIP ids of `service` any running member answered in this sample (to `sources`)."""
    chosen = None if sources is None else set(sources)
    out: set[str] = set()
    for m in sample.running():
        for source, answers in sample.dns.get(m.name, {}).get(service, {}).items():
            if chosen is None or source in chosen:
                out.update(answers)
    return out
