"""failover: the mesh tier — Istio WorkloadEntries follow the weight table in every cluster.

One `Reconciler` per cluster keeps the VIP WorkloadEntries of that cluster in
line with the table rows whose source is the cluster's region: each WLE's
`Healthy` condition (`False`, reason `unhealthy`, message `Region Exit` /
`Service Drain` / `VIP Down` when its target is out) and `spec.weight`.

    settings = ClusterSettings(name="dc1-east", region="dc1", namespace="mesh", qps=50, burst=100)
    async with Reconciler(settings, configuration, estate, {"dc1": "region01/az01", ...},
                          registry=registry) as r:
        plan = await r.plan(table)                      # the exact patches; nothing written
        print(plan)
        result = await r.apply(plan, epoch, may_write)  # UnsafePlan unless force=True

        async with r.running():                         # list + watch + reconcile
            r.set_table(table, epoch, may_write)        # each new table (leader only)
            r.progress()                                # WLEs in sync x / desired y, observed;
                                                        # .conflicts: DestinationRules whose
                                                        # distribute overrides the weights
            await r.until_converged(table.generation)   # bound with asyncio.timeout

Public API:
- `ClusterSettings` — what a cluster's reconciler is told (its `retry` a `kube.RetrySettings`).
- `Reconciler(settings, client, estate, localities, *, registry, now, sleep, clock)`:
  `client` is a kubernetes-asyncio `Configuration` or a zero-argument
  factory of `ApiClient` (the reconciler closes what it opens); `localities`
  maps each region to its locality (`region01/az01`).
  - `await plan(table, epoch=None) -> MeshPlan`
  - `await apply(plan, epoch, may_write, *, force=False) -> ApplyResult`
  - `running()` (async context manager), `set_table(table, epoch, may_write, *, force=False)`,
    `progress() -> Progress`, `await until_converged(generation=None) -> Progress` (raises
    `UnsafePlan` when the table was refused, `WriteStopped` when writing stopped)
- `MeshPlan` (printable; `.patches`, `.skipped`, `.fenced`, `.raise_if_unsafe()`),
  `Patch`, and `UnsafePlan` (`policies.UnsafePlan`, shared with the DNS plans) — the
  plan and its blast-radius refusal.
- `Progress`, `ApplyResult` — what was achieved, as observed.
- `distribute_conflicts(rules, services, localities)` -> `DistributeConflict`s: the
  DestinationRules whose locality `distribute` overrides the WLE weights (pure; the
  reconciler re-lists the rules every `rules_resync` seconds, reports, never writes them).
- `WriteStopped` (`Fenced`: a newer leader's epoch is on a WLE; `LeaseNotHeld`:
  `may_write()` said no) — writing stops; the caller steps down.
- API errors left after retries are `kube.KubeError`s.

Writes carry the leader's epoch (`gtm.io/epoch` annotation on the main
resource, a `gtm.io/Epoch` condition in status); WLEs carrying the
`istio.io/workloadController` annotation are istiod's and are never touched.
A WLE stamped `gtm.io/withdrawn-at` (`WITHDRAWN_ANNOTATION`: the AccessPoint
controller's, its VIP left discovery) is kept out (`VIP_WITHDRAWN`) whatever the
table says, until it is deleted or unstamped.
Ambient mode ignores WorkloadEntry health: there, only `spec.weight` acts.
"""

from failover.distribute import DistributeConflict, distribute_conflicts
from failover.fencing import Fenced, LeaseNotHeld, WriteFence, WriteStopped
from failover.mesh_plan import MeshPlan, Patch, Skipped
from failover.progress import ApplyResult, Progress
from failover.reconciler import Reconciler
from failover.settings import ClusterSettings
from failover.workload import VIP_WITHDRAWN, WITHDRAWN_ANNOTATION
from policies import UnsafePlan

__all__ = [
    "VIP_WITHDRAWN",
    "WITHDRAWN_ANNOTATION",
    "ApplyResult",
    "ClusterSettings",
    "DistributeConflict",
    "Fenced",
    "LeaseNotHeld",
    "MeshPlan",
    "Patch",
    "Progress",
    "Reconciler",
    "Skipped",
    "UnsafePlan",
    "WriteFence",
    "WriteStopped",
    "distribute_conflicts",
]
