"""What the leader's evaluations say, for alerts: when it last evaluated, rows failing open.

- `gtm_member_info{member, region}` 1: joins a member's other series to its region
  (`max by (region) (gtm_leader_is_leader * on (instance) group_left (region) gtm_member_info)`);
- `gtm_table_evaluated_timestamp_seconds`: the leader's last evaluation (a leader whose
  loop stopped evaluating leaves it behind while health and intent move on);
- `gtm_table_fail_open_rows`: rows of the DNS table keeping their last known good
  weights because every region of the service is down.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from policies import WeightTable


class TableMetrics:
    def __init__(self, registry: CollectorRegistry, *, member: str, region: str) -> None:
        info = Gauge(
            "gtm_member_info", "This member: its name and region", ["member", "region"],
            registry=registry,
        )  # fmt: skip
        info.labels(member, region).set(1)
        self._evaluated = Gauge(
            "gtm_table_evaluated_timestamp_seconds",
            "When this member (as leader) last evaluated the weight table",
            registry=registry,
        )
        self._fail_open = Gauge(
            "gtm_table_fail_open_rows",
            "Rows of the DNS table failing open: every region of the service down",
            registry=registry,
        )

    def evaluated(self, now: float, table: WeightTable | None = None) -> None:
        """An evaluation at `now`; `table` when the DNS table changed."""
        self._evaluated.set(now)
        if table is not None:
            self._fail_open.set(sum(1 for row in table if row.fail_open))
