"""The estate config file, validated with pydantic.

Shape checks live on the models; rules that span sections (unknown region
names, duplicates, splits that do not sum) live in `checks.py` so every
problem of a file is reported in one pass.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gtm.config.values import Address, Cidr, Duration, Fqdn, Ip, Listen, Name, Port
from probes import DnsProbe, HttpProbe, TcpProbe, TlsProbe

_SPECS: dict[str, type] = {
    "http": HttpProbe,
    "https": HttpProbe,
    "tcp": TcpProbe,
    "tls": TlsProbe,
    "dns": DnsProbe,
}


class Model(BaseModel):
    # inf and nan are no setting of gtm, and JSON cannot carry them to its peers
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RegionConfig(Model):
    name: Name
    locality: str = Field(pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+){0,2}$")
    client_cidrs: list[Cidr] = []


class VipConfig(Model):
    address: Address  # an IP, or a host name answered with a CNAME
    port: Port = 443
    weight: int = Field(default=1, ge=1, le=1_000_000)
    ips: list[Ip] = []  # A/AAAA for a host-name VIP


class ProbeConfig(Model):
    kind: Literal["http", "https", "tcp", "tls", "dns"] = "http"
    interval: Duration = 5.0
    timeout: Duration = 2.0
    rise: int = Field(default=2, ge=1, le=100)
    fall: int = Field(default=3, ge=1, le=100)
    # http / https
    method: Literal["GET", "HEAD", "POST", "OPTIONS"] = "GET"
    path: str = Field(default="/", pattern=r"^/")
    host: str | None = None
    expect_status: list[int] = [200]
    body: str | None = None  # a regular expression the body must match
    verify_tls: bool = True
    sni: str | None = None
    keepalive: bool = False
    # tls
    ca_bundle: str | None = None
    min_days_to_expiry: float = Field(default=0.0, ge=0)
    # dns
    qname: str | None = None
    qtype: str = "A"
    expect_rcode: str = "NOERROR"
    expect_answer: str | None = None

    def spec_fields(self) -> dict[str, Any]:
        """The settings that make this probe's spec (`probes.parse_probe_spec` input).

        Those given in the file; a setting of another kind of probe is kept only
        when it differs from its default, so a mistake (`body` on a tcp probe) is
        still reported while a config dumped with its defaults stays valid.
        """
        relevant = {f.name for f in dataclasses.fields(_SPECS[self.kind])}
        out: dict[str, Any] = {"kind": self.kind}
        for name in self.model_fields_set - {"kind"}:
            value = getattr(self, name)
            if name in relevant or value != type(self).model_fields[name].default:
                out[name] = value
        return out

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if not 100 <= s <= 599]
        if bad or not v:
            raise ValueError(f"{bad or v} are not HTTP status codes (100..599)")
        return v

    @field_validator("body")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"{v!r} is not a regular expression: {e}") from None
        return v


class ServiceConfig(Model):
    name: Name
    fqdn: Fqdn
    policy: str = "default"
    probe: ProbeConfig = ProbeConfig()
    vips: dict[str, list[VipConfig]]


class BoundsConfig(Model):
    min: int = Field(default=0, ge=0)
    max: int | None = Field(default=None, ge=0)


class CellBoundsConfig(Model):
    local: BoundsConfig = BoundsConfig()
    remote: BoundsConfig = BoundsConfig()


class SplitConfig(Model):
    local: int = Field(ge=0)
    remote: int = Field(ge=0)


class GuardrailsConfig(Model):
    min_active_regions: int = Field(default=1, ge=1)
    max_concurrent_exits: int = Field(default=1, ge=0)


class PolicyConfig(Model):
    name: str
    total: int = Field(default=100, ge=1, le=1_000_000)
    # local / each remote (default: 1 to each remote region, the rest local:
    # 98/1/1 with three regions), or a full `matrix`
    split: SplitConfig | None = None
    matrix: dict[str, dict[str, int]] | None = None  # source -> target -> weight
    bounds: CellBoundsConfig = CellBoundsConfig()
    rollout: CellBoundsConfig | None = None  # bounds while the target region is in rollout
    max_step: int | None = Field(default=None, ge=1)
    ramp: Duration = 0.0
    redistribute: Literal["local", "proportional", "priority"] = "local"
    priority: list[str] = []
    guardrails: GuardrailsConfig = GuardrailsConfig()


class SafetyConfig(Model):
    """Blast-radius limits on a plan, refused unless forced (octodns' 30% rule)."""

    max_unhealthy_share: float = Field(default=0.5, gt=0, le=1)  # of a cluster's WLEs
    # An operator action that would move more than this share of DNS traffic
    # (summed over every row of every service) is refused unless forced: one
    # region of three exits (about a third), two do not.
    max_traffic_share: float = Field(default=0.4, gt=0, le=1)
    # `gtm publish`: share of the PowerDNS records gtm owns that one publish may change
    max_row_change_share: float = Field(default=0.3, gt=0, le=1)


class PowerDnsConfig(Model):
    url: str  # http://127.0.0.1:8081
    api_key: str | None = None
    api_key_file: str | None = None
    server_id: str = "localhost"


class DnsConfig(Model):
    listen: Listen = "127.0.0.1:5353"
    zones: list[Fqdn] = []  # default: the parent domain of each service FQDN
    ttl: int = Field(default=30, ge=0, le=86400)
    records_per_answer: int = Field(default=1, ge=1, le=16)
    default_region: str | None = None  # row for clients that match no region's CIDRs
    nameservers: list[Fqdn] = []  # NS at the apex; default ns1.<zone>
    hostmaster: str | None = None  # SOA RNAME; default hostmaster.<zone>
    workers: int = Field(default=1, ge=1, le=64)  # answer processes (gtm.dns.pool)
    # bytes asked for the UDP socket's receive buffer: a burst waits there, not dropped
    udp_receive_buffer: int = Field(default=8 << 20, ge=64 << 10, le=1 << 30)
    # bytes the answer path's caches of queries seen may hold (per answer process)
    cache_bytes: int = Field(default=32 << 20, ge=1 << 20, le=1 << 34)
    exit_margin: Duration = 5.0  # after the TTL, before the mesh follows a DNS change
    powerdns: PowerDnsConfig | None = None


class TlsConfig(Model):
    cert: str
    key: str


class PeerConfig(Model):
    region: str
    url: str


class SecretRef(Model):
    name: str
    namespace: str = "gtm-system"
    cluster: str | None = None  # default: this region's first cluster


class ApiConfig(Model):
    listen: Listen = "127.0.0.1:8080"
    # Tokens: a YAML/JSON file `{tokens: [{name, token, role: viewer|operator}]}`,
    # or a Kubernetes Secret whose keys are token names and values `role:token`.
    tokens_file: str | None = None
    tokens_secret: SecretRef | None = None
    tls: TlsConfig | None = None
    peers: list[PeerConfig] = []  # other regions' members (several per region allowed)
    peer_token_file: str | None = None  # token this member presents to its peers


class RetryConfig(Model):
    """How a Kubernetes client retries 429, 5xx, timeouts (kube.RetrySettings; same names)."""

    attempts: int = Field(default=8, ge=1)  # per request
    backoff: Duration = 0.1  # first wait; doubles, with full jitter ...
    backoff_max: Duration = 5.0  # ... up to this
    retry_after_max: Duration = 60.0  # cap on a server's Retry-After
    conflict_attempts: int = Field(default=5, ge=1)  # re-read-and-rebuild rounds after a 409


class StoreRetryConfig(RetryConfig):
    """The stores' retries: quicker, as a member waits on them."""

    backoff: Duration = 0.05
    backoff_max: Duration = 2.0
    retry_after_max: Duration = 10.0
    conflict_attempts: int = Field(default=10, ge=1)


class ClusterConfig(Model):
    name: Name
    region: str
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    namespace: str | None = None  # None: every namespace
    selector: str = "gtm.io/managed=true"
    service_label: str = "gtm.io/service"
    region_label: str | None = None  # default: the region from spec.locality
    qps: float = Field(default=20.0, gt=0)
    burst: int = Field(default=40, ge=1)
    concurrency: int = Field(default=8, ge=1, le=256)
    timeout: Duration = 10.0
    api_version: Literal["v1", "v1beta1"] = "v1"  # networking.istio.io (v1beta1 before Istio 1.22)
    ensure_annotation: bool = True  # add a missing health-checks annotation (else report it)
    retry: RetryConfig = RetryConfig()


class KubernetesConfig(Model):
    clusters: list[ClusterConfig] = []


class HealthConfig(Model):
    """How observations become health (probes.HealthSettings; same names)."""

    quorum: float = Field(default=0.5, ge=0, lt=1)  # share of fresh vantages that must say down
    min_down_vantages: int = Field(default=1, ge=1)
    stale_intervals: float = Field(
        default=3.0, gt=0
    )  # a vantage's data ages out after this many intervals
    impaired_fraction: float = Field(
        default=0.8, gt=0, le=1
    )  # a vantage failing this share is impaired
    impaired_clear_fraction: float = Field(default=0.5, ge=0, lt=1)
    impaired_min_targets: int = Field(default=10, ge=1)
    half_life: Duration = 300.0  # flap damping, as BGP route damping
    flap_penalty: float = Field(default=1000.0, ge=0)  # 0 turns damping off
    suppress_threshold: float = Field(default=2000.0, gt=0)
    reuse_threshold: float = Field(default=750.0, gt=0)
    max_suppress: Duration = 1800.0
    region_min_up: int = Field(default=1, ge=0)  # VIPs that must be up for a (service, region)
    region_min_up_fraction: float = Field(default=0.0, ge=0, le=1)
    concurrency: int = Field(default=512, ge=1)  # probes in flight at once
    lag_tolerance: Duration = 1.0  # a probe starting this late means the prober cannot keep up


class LeaseConfig(Model):
    """Leader election of the HA pair: only the leader writes."""

    backend: Literal["file", "kubernetes"] = "file"
    name: str = "gtm-leader"
    namespace: str = "gtm-system"
    cluster: str | None = None  # kubernetes backend: default this region's first cluster
    path: str | None = None  # file backend: default <state_dir>/<region>.lease
    duration: Duration = 15.0
    renew_deadline: Duration = 10.0  # stop acting this long after the last renewal
    retry_period: Duration = 2.0


class StoreConfig(Model):
    """Where intent (overrides), the audit and the published table live."""

    backend: Literal["file", "kubernetes"] = "file"
    namespace: str = "gtm-system"
    cluster: str | None = None  # kubernetes backend: default this region's first cluster
    intent: str = "gtm-intent"  # ConfigMap names
    audit: str = "gtm-audit"
    table: str = "gtm-table"
    # file backend: the audit's rotated 4 MiB segments are kept up to this many bytes
    # together, the oldest removed first (null keeps every one); ship the intent.* log
    # events for a record beyond it
    audit_keep_bytes: int | None = Field(default=1 << 30, ge=16 << 20)
    timeout: Duration = 5.0  # per request to the API
    retry: StoreRetryConfig = StoreRetryConfig()


class InstanceConfig(Model):
    """This member; `gtm serve` flags override each field."""

    region: str | None = None  # the region it runs in: its vantage and its clusters' row
    member: str | None = None  # its name within the pair (default: host name)
    state_dir: str = "state"
    evaluate_every: Duration = 5.0  # evaluate on every health change and at least this often
    # after SIGTERM: the lease is released at once, DNS keeps answering this long
    # (while the Service takes the member out), then it stops
    shutdown_delay: Duration = 0.0
    log_format: Literal["auto", "json", "console"] = "auto"


class AccessPointsConfig(Model):
    """Where the estate's AccessPoints live and how often the leader renders them."""

    # the home cluster (one of kubernetes.clusters); None: the member renders no AccessPoint
    cluster: str | None = None
    namespaces: list[Name] = Field(default=["gtm"], min_length=1)  # where the APs are, there
    resync: Duration = Field(default=15.0, gt=0)  # every AP rendered at least this often
    concurrency: int = Field(default=16, ge=1, le=1024)  # APs worked on at once
    # CertificateReady is False when a Gateway's certificate has fewer days left than this
    certificate_days: int = Field(default=14, ge=0)


class HaConfig(Model):
    lease: LeaseConfig = LeaseConfig()
    store: StoreConfig = StoreConfig()


class Config(Model):
    regions: list[RegionConfig]
    policies: list[PolicyConfig] = [PolicyConfig(name="default")]
    services: list[ServiceConfig]
    dns: DnsConfig = DnsConfig()
    api: ApiConfig = ApiConfig()
    kubernetes: KubernetesConfig = KubernetesConfig()
    health: HealthConfig = HealthConfig()
    safety: SafetyConfig = SafetyConfig()
    instance: InstanceConfig = InstanceConfig()
    ha: HaConfig = HaConfig()
    accesspoints: AccessPointsConfig = AccessPointsConfig()
