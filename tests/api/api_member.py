"""A fake member for the API tests (the real deciding pieces, no probes), its estate, tokens.

`FakeMember` implements `gtm.service.member.Member` with `policies.evaluate`
for tables and guardrails, `IntentState` for intent, `layer_intent` for the
DNS-first ordering and the audit's `transitions`. Health is "all unknown";
its mesh progress is a number it reports (`mesh_stuck` keeps one
WorkloadEntry out of sync for ever). A standby follows its `source`'s intent
on every `tick` (anti-entropy in small); the leader expires overrides.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from failover.intent import AuditEntry, IntentState, transitions
from failover.intent.audit import newest_first
from failover.intent.codec import override_to_dict
from gtm.config import Inventory
from gtm.service.actions import (
    Action,
    ActionResult,
    BadAction,
    Drain,
    Enter,
    Exit,
    NotLeader,
    Refused,
    Remove,
    Rollout,
)
from gtm.service.layers import layer_intent
from gtm.service.member import Role
from policies import Evaluation, Health, Kind, Override, WeightTable, evaluate

ESTATE = """
regions:
  - {name: dc1, locality: region01/az01, client_cidrs: [127.0.1.0/24]}
  - {name: dc2, locality: region02/az01, client_cidrs: [127.0.2.0/24]}
  - {name: dc3, locality: region03/az01, client_cidrs: [127.0.3.0/24]}
policies:
  - name: default
    guardrails: {min_active_regions: 2, max_concurrent_exits: 1}
services:
  - name: foo
    fqdn: foo.example.com
    vips:
      dc1: [{address: 127.0.1.1}]
      dc2: [{address: 127.0.2.1}]
      dc3: [{address: 127.0.3.1}]
  - name: bar
    fqdn: bar.example.com
    vips:
      dc1: [{address: 127.0.1.2}]
      dc2: [{address: 127.0.2.2}]
      dc3: [{address: 127.0.3.2}]
dns: {listen: "127.0.0.1:5353", zones: [example.com], ttl: 5, default_region: dc1}
"""

OPERATOR = "operator-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"
TOKENS_YAML = f"""
tokens:
  - {{name: alice, token: {OPERATOR}, role: operator}}
  - {{name: grafana, token: {VIEWER}, role: viewer}}
"""


class FakeMember:
    """One member as the API sees it (see the module docstring)."""

    def __init__(
        self,
        identity: str,
        inventory: Inventory,
        *,
        role: Role = "leader",
        hold: float = 0.0,
        clock: Callable[[], float] = time.time,
        source: FakeMember | None = None,
    ) -> None:
        self.identity = identity
        self.region = identity.split("-")[0]
        self.registry = CollectorRegistry()
        self._generation = Gauge(
            "gtm_table_generation", "table generation served", registry=self.registry
        )
        self.inventory = inventory
        self.estate = inventory.estate
        self._role: Role = role
        self.leader: dict[str, str | None] = {"identity": None, "address": None}
        self.unelected = 0  # the next writes answer "no leader yet"
        self.hold = hold
        self.clock = clock
        self.source = source  # a standby pulls the leader's intent from it (anti-entropy)
        self.mesh_stuck = False
        self.state = IntentState()
        self.audit: list[AuditEntry] = []
        self.dns_table: WeightTable | None = None
        self.mesh_table: WeightTable | None = None
        self.admitted: dict[str, tuple[str, ...]] = {"dns": (), "mesh": ()}
        self.pending: list[dict[str, Any]] = []
        self.dns_listen: str | None = None
        self.peers: list[dict[str, str]] = []
        self.on_table: Callable[[WeightTable], None] | None = None
        self.asked: list[tuple[Action, str, bool]] = []
        self.rows: list[list[Any]] = [
            [f"foo/dc{i % 3 + 1}", True, 0.01, 1.0 + i, ""] for i in range(5)
        ]
        self.tick()

    # --- the service's loop, in small ----------------------------------------

    def tick(self) -> None:
        now = self.clock()
        if self.source is not None:
            self.state = self.state.merge(self.source.state)
        elif self._role == "leader":
            expired, _ = self.state.expire(now)
            self.audit += transitions(self.state, expired)
            self.state = expired
        layers = layer_intent(self.state.active(now), now, self.hold)
        dns = evaluate(self.estate, Health(), layers.dns, self.dns_table, now)
        mesh = evaluate(self.estate, Health(), layers.mesh, self.mesh_table, now)
        changed = self.dns_table is None or dns.changed
        self.dns_table, self.mesh_table = dns.table, mesh.table
        self.admitted = {"dns": dns.admitted, "mesh": mesh.admitted}
        self.pending = [{"id": o.id, "at": at} for o, at in layers.mesh_pending]
        self._generation.set(dns.table.generation)
        if changed and self.on_table is not None:
            self.on_table(dns.table)

    # --- Member ----------------------------------------------------------------

    def role(self) -> Role:
        return self._role

    def ready(self) -> bool:
        return self.dns_table is not None

    def status(self) -> dict[str, Any]:
        """In the shape the service runtime writes (`layers`, override dicts in `intent`)."""
        desired = sum(len(s.vips) - 1 for s in self.estate.services)
        mesh_generation = None if self.mesh_table is None else self.mesh_table.generation
        out: dict[str, Any] = {
            "identity": self.identity,
            "region": self.region,
            "role": self._role,
            "leader": dict(self.leader) if self.leader["identity"] else None,
            "epoch": 1,
            "generation": None if self.dns_table is None else self.dns_table.generation,
            "health": {
                "vips": {"unknown": 6},
                "regions": {"unknown": 6},
                "down": [],
                "impaired": [],
            },
            "intent": {
                "version": self.state.version,
                "digest": self.state.digest,
                "active": [override_to_dict(o) for o in self.state.overrides.values()],
            },
            "layers": {
                "dns_admitted": list(self.admitted["dns"]),
                "mesh_admitted": list(self.admitted["mesh"]),
                "mesh_generation": mesh_generation,
                "mesh_pending": self.pending,
            },
            "mesh": {
                f"cluster-{self.region}": {
                    "in_sync": desired - (1 if self.mesh_stuck else 0),
                    "desired": desired,
                    "generation": mesh_generation,
                    "converged": not self.mesh_stuck,
                    "refused": None,
                }
            },
            "peers": self.peers,
            "regions": {
                r.name: {"client_cidrs": [str(c) for c in r.client_cidrs]}
                for r in self.inventory.config.regions
            },
            "fqdns": {s.name: s.fqdn for s in self.estate.services},
        }
        if self.dns_listen is not None:
            out["dns"] = {"listen": self.dns_listen}
        return out

    def table(self) -> WeightTable | None:
        return self.dns_table

    def health(self) -> dict[str, Any]:
        vips = [v for s in self.estate.services for vs in s.vips.values() for v in vs]
        return {"vips": {v.id: {"state": "unknown", "since": None, "reason": ""} for v in vips}}

    def intent(self) -> IntentState:
        return self.state

    async def history(self, limit: int, since: float | None) -> Sequence[AuditEntry]:
        return newest_first(self.audit, limit, since)

    def observations(self, since: int, limit: int) -> tuple[list[list[Any]], int]:
        start = max(0, since)  # -1: from the oldest kept
        rows = self.rows[start : start + limit]
        return rows, start + len(rows)

    def what_if(self, overrides: Sequence[Override]) -> Evaluation:
        now = self.clock()
        return evaluate(
            self.estate, Health(), [*self.state.active(now), *overrides], self.dns_table, now
        )

    async def act(self, action: Action, *, who: str, dry_run: bool) -> ActionResult:
        self.asked.append((action, who, dry_run))
        if self.unelected > 0:  # no leader yet: a standby that knows of none
            self.unelected -= 1
            raise NotLeader(f"{self.identity}: no leader elected yet", leader=None, address=None)
        if self._role != "leader":
            raise NotLeader(
                f"{self.identity} is a standby; the leader is {self.leader['identity']}",
                leader=self.leader["identity"],
                address=self.leader["address"],
            )
        now = self.clock()
        after = self._apply(action, who, now)
        added = tuple(sorted(set(after.overrides) - set(self.state.overrides)))
        if isinstance(action, Remove):
            added = (action.override_id,)
        planned = evaluate(self.estate, Health(), after.active(now), self.dns_table, now)
        refusals = [r for r in planned.refusals if r.override_id in added]
        result = ActionResult(
            accepted=not refusals,
            dry_run=dry_run,
            override_ids=added,
            dns=tuple(self._dns_rows(planned.table)),
            mesh=self._mesh_lines(planned.table),
            moved_share=self._moved(planned.table),
            refusals=tuple(asdict(r) for r in refusals),
            message=refusals[0].message if refusals else "",
            intent_version=after.version,
        )
        if refusals and not dry_run:
            self.audit += [
                AuditEntry.refused(after.overrides[r.override_id], r, now) for r in refusals
            ]
            raise Refused(result.message, refusals=[asdict(r) for r in refusals])
        if not dry_run:
            self.audit += transitions(self.state, after)
            self.state = after
            self.tick()
        return result

    # --- planning ----------------------------------------------------------------

    def _apply(self, action: Action, who: str, now: float) -> IntentState:
        if isinstance(action, Remove):
            if action.override_id not in self.state.overrides:
                raise BadAction(
                    f"no override {action.override_id!r} in force", id=action.override_id
                )
            return self.state.remove(action.override_id, who, action.reason, now)
        if action.region not in self.estate.regions:
            raise BadAction(f"no region named {action.region!r}", region=action.region)
        unknown = sorted((action.services or set()) - set(self.estate.by_name))
        if unknown:
            raise BadAction(f"no service named {', '.join(unknown)}", services=unknown)
        if isinstance(action, Enter):
            return self.state.enter(
                action.region,
                action.services,
                action.ramp or 0.0,
                who,
                action.reason,
                now,
                ticket=action.ticket,
                lasts=self.hold,
            )
        n = self.state.version + 1
        if isinstance(action, Exit | Drain):
            kind = Kind.EXIT if isinstance(action, Exit) else Kind.DRAIN
            expires = None if action.expires_in is None else now + action.expires_in
            return self.state.add(
                Override(
                    f"{kind.value}-{action.region}-{n}",
                    kind,
                    action.region,
                    who,
                    action.reason,
                    now,
                    action.services,
                    action.ticket,
                    expires,
                    force=action.force,
                )
            )
        assert isinstance(action, Rollout)
        return self.state.add(
            Override(
                f"rollout-{action.region}-{n}",
                Kind.ROLLOUT,
                action.region,
                who,
                action.reason,
                now,
                action.services,
                action.ticket,
                now + action.window,
            )
        )

    def _dns_rows(self, planned: WeightTable) -> list[dict[str, Any]]:
        old = self.dns_table
        rows = []
        for row in planned:
            before = None if old is None else old.row(row.service, row.source)
            if before is None or before.weights() != row.weights():
                rows.append(
                    {
                        "service": row.service,
                        "source": row.source,
                        "old": None if before is None else before.weights(),
                        "new": row.weights(),
                    }
                )
        return rows

    def _mesh_lines(self, planned: WeightTable) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for cluster_region in self.estate.regions:
            lines = []
            for service in self.estate.services:
                row = planned.row(service.name, cluster_region)
                before = (
                    None
                    if self.dns_table is None
                    else self.dns_table.row(service.name, cluster_region)
                )
                if row is None or before is None:
                    continue
                for target, cell in row.cells.items():
                    was = before.cells[target].out
                    if target != cluster_region and was != cell.out:
                        old, new = ("True" if x is None else "False" for x in (was, cell.out))
                        lines.append(
                            f"{service.name}-{target}: Healthy {old} -> {new} ({cell.out or 'back'})"
                        )
            if lines:
                out[f"cluster-{cluster_region}"] = tuple(lines)
        return out

    def _moved(self, planned: WeightTable) -> float:
        if self.dns_table is None:
            return 0.0
        moved = rows = 0.0
        for row in planned:
            before = self.dns_table.row(row.service, row.source)
            rows += 1
            if before is not None:
                delta = sum(abs(row.weights()[t] - w) for t, w in before.weights().items())
                moved += delta / 2 / row.total
        return moved / rows if rows else 0.0
