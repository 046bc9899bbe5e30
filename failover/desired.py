"""What each VIP's WorkloadEntry should hold, from one table row. Pure.

The row of service S seen from the cluster's region R splits the mesh's
traffic over target regions; a cell's VIP shares split a region's part over
its VIPs. A WLE gets:

- `Healthy=True` when its target is in (or the row fails open and the cell
  has weight) and its VIP has a share; else `Healthy=False`, reason
  `unhealthy`, message the cell's `out` reason (`Region Exit`, `Service
  Drain`, `VIP Down`), `VIP Down` for a VIP with no share, `Zero Weight` for
  a cell the row gives nothing (a ramp at its start, a split of 0).
- `spec.weight` = cell weight x VIP share x (L / the region's share sum),
  with L the least common multiple of the share sums of the rows' healthy
  regions, so the region split of the row is exact whatever the number of
  VIPs per region. Never 0 (Istio turns 0 into 1): an unhealthy WLE keeps
  the weight it has and is taken out by its condition alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from failover.vip_index import Unidentified, VipIndex
from failover.workload import VIP_WITHDRAWN, WORKLOAD_CONTROLLER, WorkloadEntry
from policies import Out, Row, Service, WeightTable

ZERO_WEIGHT = "Zero Weight"
MAX_WEIGHT = 2**32 - 1  # the CRD's bound on spec.weight


@dataclass(frozen=True, slots=True)
class Target:
    """The desired state of one VIP's WLE."""

    healthy: bool
    message: str | None = None  # why not healthy: the condition's message
    weight: int | None = None  # None: keep the WLE's weight (it is out by its condition)

    def describe(self) -> str:
        if self.healthy:
            return f"Healthy=True weight={self.weight}"
        return f"Healthy=False ({self.message})"


def row_targets(row: Row, service: Service) -> dict[str, Target]:
    """VIP id -> its target, for every VIP of `service` that the row's cells know."""
    out: dict[str, Target] = {}
    live: dict[str, tuple[int, dict[str, int]]] = {}  # region -> (cell weight, vip shares)
    for region, cell in row.cells.items():
        vips = service.vips.get(region, ())
        if not vips:
            continue
        in_row = cell.weight > 0 and (cell.out is None or row.fail_open)
        shares: dict[str, int] = {}
        for v in vips:
            share = cell.vips.get(v.id)
            if share is None:
                continue  # the table predates this VIP: no opinion, leave its WLE alone
            if not in_row:
                out[v.id] = Target(False, cell.out or ZERO_WEIGHT)
            elif share <= 0:
                out[v.id] = Target(False, Out.DOWN)
            else:
                shares[v.id] = share
        if shares:
            live[region] = (cell.weight, shares)
    if not live:
        return out
    lcm = math.lcm(*(sum(s.values()) for _, s in live.values()))
    weights: dict[str, int] = {}
    for cell_weight, shares in live.values():
        scale = lcm // sum(shares.values())
        for vip, share in shares.items():
            weights[vip] = cell_weight * share * scale
    top = max(weights.values())
    if top > MAX_WEIGHT:  # only with absurd shares: keep the split as close as integers allow
        weights = {v: max(1, round(w * MAX_WEIGHT / top)) for v, w in weights.items()}
    for vip, w in weights.items():
        out[vip] = Target(True, None, w)
    return out


class Desired:
    """The target of each WLE of one cluster under one table (rows memoized per service)."""

    def __init__(self, table: WeightTable, region: str, index: VipIndex) -> None:
        self.table = table
        self.region = region
        self._index = index
        self._rows: dict[str, dict[str, Target] | None] = {}

    def target(self, entry: WorkloadEntry) -> Target | str:
        """The entry's target, or why gtm leaves the entry alone."""
        if entry.istiod_managed:
            return f"istiod manages it ({WORKLOAD_CONTROLLER})"
        who = self._index.identify(entry)
        if isinstance(who, Unidentified):
            return who.reason
        if entry.withdrawn:  # whatever the table says: the VIP is gone, the WLE waits to go
            return Target(healthy=False, message=VIP_WITHDRAWN)
        if who.service not in self._rows:
            row = self.table.row(who.service, self.region)
            self._rows[who.service] = (
                None if row is None else row_targets(row, self._index.service(who.service))
            )
        targets = self._rows[who.service]
        if targets is None:
            return f"the table has no row for {who.service} from {self.region}"
        target = targets.get(who.vip.id)
        if target is None:
            return f"the table's row has no share for VIP {who.vip.id}"
        return target
