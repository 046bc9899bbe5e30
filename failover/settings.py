"""What the WorkloadEntry reconciler of one cluster is told: where, what, how fast, how safe.

`ClusterSettings` mirrors `gtm.config.model.ClusterConfig` (the service layer
maps one onto the other; `failover` may not import `gtm`) plus the knobs of
the reconciler itself: retries (`kube.RetrySettings`), the blast-radius
limit, the resync periods.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kube import RetrySettings

WLE_GROUP = "networking.istio.io"
WLE_PLURAL = "workloadentries"
DR_PLURAL = "destinationrules"  # same group and version as the WLEs; read only


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """One Kubernetes cluster whose VIP WorkloadEntries gtm keeps in line with a region's rows.

    `region` is the cluster's own region: its WLEs follow the table rows whose
    source is that region. WLEs are the ones matching `selector` (a label
    selector) in `namespace` (None: every namespace); the service is the
    value of `service_label`, the target region the value of `region_label`
    when set, else the region whose locality matches `spec.locality`.
    """

    name: str
    region: str
    namespace: str | None = None
    selector: str = "gtm.io/managed=true"
    service_label: str = "gtm.io/service"
    region_label: str | None = None
    qps: float = 20.0  # client-side rate limit: requests per second ...
    burst: int = 40  # ... and the bucket's size
    concurrency: int = 8  # requests in flight at most (watches not counted)
    timeout: float = 10.0  # seconds, for every request
    api_version: str = "v1"  # of networking.istio.io (v1beta1 before Istio 1.22)
    page_size: int = 500  # list pages
    watch_timeout: float = 300.0  # the server ends a watch after this; gtm re-watches
    resync: float = 300.0  # a full re-list this often, the backstop for a missed event
    rules_resync: float = 30.0  # re-list DestinationRules this often (distribute conflicts)
    max_unhealthy_share: float = 0.5  # refuse a plan leaving more of the WLEs unhealthy
    ensure_annotation: bool = True  # add a missing health-checks annotation (else report it)
    retry: RetrySettings = field(default_factory=RetrySettings)

    def __post_init__(self) -> None:
        problems = []
        if self.qps <= 0 or self.burst < 1:
            problems.append("qps must be > 0 and burst >= 1")
        if self.concurrency < 1:
            problems.append("concurrency must be >= 1")
        if min(self.timeout, self.watch_timeout, self.resync, self.rules_resync) <= 0:
            problems.append("timeout, watch_timeout, resync and rules_resync must be > 0")
        if not 0 < self.max_unhealthy_share <= 1:
            problems.append("max_unhealthy_share must be in (0, 1]")
        if self.page_size < 1:
            problems.append("page_size must be >= 1")
        if problems:
            raise ValueError(f"cluster {self.name}: " + "; ".join(problems))
