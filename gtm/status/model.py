"""`MemberStatus`: what one member reports about itself at `GET /v1/status`, as one type.

The member builds it (`gtm.service.status`), the API writes it with `to_json()`,
and the runbook CLI, `--wait`, the demo and the drills read it back with
`read_status()` — one type and one codec on both sides. Extra keys are
ignored (a newer member may say more); a missing required key is a
`StatusError` naming it and the member.

    {
      "identity": "dc1-a", "region": "dc1", "role": "leader", "ready": true, "started": …,
      "unready": [],                             # why not, e.g. "own probing stopped: …"
      "leader": {"identity": "dc1-a", "address": "http://10.0.0.5:8080", "epoch": 3},  # or null
      "epoch": 3,                                # this member's, while it leads
      "dns": {"listen": "10.0.0.5:53", "generation": 12, "served_at": …, "ttl": 30,
              "zones": ["example.com"],          # 0.0.0.0: ask on the API's host
              "answering": 12, "behind_seconds": 0.0, "workers": 1, "restarts": 0},
      "generation": 12,                          # the table generation its DNS serves
      "health": {"vips": {"up": 40, "down": 1}, "regions": {"up": 20}, "down": [], "impaired": []},
      "intent": {"version": 7, "digest": "…", "active": [override…],   # the intent's codec
                 "stored": 7, "seen": 7, "regressed": false, "cause": null},
      "layers": {"evaluated_at": …, "dns_generation": 12, "mesh_generation": 12,
                 "dns_admitted": ["exit-…"], "mesh_admitted": [],
                 "mesh_pending": [{"id": "exit-…", "at": 1732871234.5}], "refusals": [refusal…]},
      "mesh": {"dc1-east": {"in_sync": 118, "desired": 120, "generation": 12, "synced": true,
                            "watching": true, "converged": false, "refused": null,
                            "stopped": null, "conflicts": []}},
      "peers": [{"region": "dc2", "url": "https://10.0.0.6:8080", "exchange": {…}}, …],
      "regions": {"dc1": {"locality": "region01/az01", "client_cidrs": ["10.1.0.0/16"]}, …},
      "fqdns": {"foo": "foo.example.com", …},
      "decisions": […], "exporters": {…},
      "prober": {…, "newest_age": 0.4, "stalled": null}   # `probes.SchedulerStats`
    }

`layers` is there once the member has evaluated (a leader) or followed its
leader (a standby). `peers` lists every *other* member — the pair partner as
well as other regions' — each with its API's URL: `--wait` asks each of them.
A cluster is in sync when `in_sync == desired`, it is not `refused`, not
reported un-`converged`, and (when both are given) its `generation` is the
member's mesh generation. Its `conflicts` (DestinationRules whose
`distribute` overrides the WLE weights) are shown, not waited on: gtm does
not fight them, so waiting would not end.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

LAYERS = ("dns", "mesh")


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LeaderRef(_Part):
    identity: str | None = None
    address: str | None = None
    epoch: int | None = None


class ConfigRef(_Part):
    """The config a member runs: its estate's digest (the same on every member that runs
    the same estate), when and from where it was loaded, and the last refused reload."""

    file: str
    digest: str
    loaded_at: float
    refused_at: float | None = None  # the last reload refused since this config was loaded
    refused: list[str] = []  # its problems (file:line field: message), the first 20


class DnsRef(_Part):
    listen: str  # HOST:PORT
    generation: int | None = None  # the member's table
    served_at: float | None = None
    ttl: int | None = None
    zones: list[str] = []
    answering: int | None = None  # the generation every answer process serves (lowest)
    behind_seconds: float = 0.0  # how long they have not served the member's table (0: current)
    workers: int | None = None  # answer processes
    restarts: int = 0  # answer processes restarted after they exited

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"{value!r} is not HOST:PORT")
        return value

    def address(self, wildcard_host: str) -> tuple[str, int]:
        """Where to ask; a wildcard listen address is asked on `wildcard_host`."""
        host, _, port = self.listen.rpartition(":")
        host = host.strip("[]")
        return (wildcard_host if host in ("0.0.0.0", "::") else host), int(port)


class IntentRef(_Part):
    version: int = 0
    digest: str = ""
    active: list[dict[str, Any]] = []  # the overrides in force (`intent` codec)
    # the pair's store against this member's high-water mark (`intent.GuardedIntentStore`):
    # regressed while the store holds less than was seen (the member does not lead from it)
    stored: int | None = None  # the version the store held at the last read or write
    seen: int = 0  # the highest version this member has seen
    regressed: bool = False
    cause: str | None = None  # why, while regressed

    @property
    def ids(self) -> list[str]:
        return [str(o.get("id")) for o in self.active]


class Pending(_Part):
    id: str
    at: float  # when the mesh takes it


class Layers(_Part):
    """What each layer holds in force now (ids), and the mesh changes waiting for the hold."""

    evaluated_at: float | None = None
    dns_generation: int | None = None
    mesh_generation: int | None = None
    dns_admitted: list[str] = []
    mesh_admitted: list[str] = []
    mesh_pending: list[Pending] = []
    refusals: list[dict[str, Any]] = []  # `intent.refusal_to_dict`


class MeshProgress(_Part):
    in_sync: int
    desired: int
    generation: int | None = None  # of the mesh table the cluster's reconciler enforces
    synced: bool | None = None
    watching: bool | None = None
    converged: bool | None = None
    refused: str | None = None
    stopped: str | None = None
    conflicts: list[str] = []  # DestinationRules overriding the weights (shown, not waited on)

    def synced_to(self, mesh_generation: int | None) -> bool:
        # a reconciler that holds no table yet (generation None) has not shown the mesh table
        current = mesh_generation is None or self.generation == mesh_generation
        return (
            self.in_sync == self.desired
            and self.refused is None
            and self.converged is not False
            and current
        )


class PeerRef(_Part):
    region: str | None = None
    url: str | None = None
    exchange: dict[str, Any] | None = None


class RegionRef(_Part):
    locality: str | None = None
    client_cidrs: list[str] = []

    @field_validator("client_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)  # ValueError names it
        return value

    def client_subnet(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        """The subnet a query stands for when it asks as this region's client (IPv4 first)."""
        nets = [ipaddress.ip_network(c, strict=False) for c in self.client_cidrs]
        nets.sort(key=lambda n: n.version)
        return nets[0] if nets else None


class MemberStatus(_Part):
    identity: str
    region: str
    role: str  # "starting" | "leader" | "standby"
    ready: bool | None = None
    unready: list[str] = []  # why not ready (own probing stopped, DNS behind, …)
    started: float | None = None
    leader: LeaderRef | None = None
    epoch: int | None = None
    dns: DnsRef | None = None
    config: ConfigRef | None = None
    generation: int | None = None
    health: dict[str, Any] = {}
    intent: IntentRef = IntentRef()
    layers: Layers | None = None
    mesh: dict[str, MeshProgress] = {}
    peers: list[PeerRef] = []
    regions: dict[str, RegionRef] = {}
    fqdns: dict[str, str] = {}
    decisions: list[dict[str, Any]] | None = None
    exporters: dict[str, Any] | None = None
    prober: dict[str, Any] | None = None

    def admits(self, layer: str, override_id: str) -> bool:
        """Whether `layer` ("dns" or "mesh") holds the override in force."""
        if self.layers is None:
            return False
        return override_id in (
            self.layers.dns_admitted if layer == "dns" else self.layers.mesh_admitted
        )

    @property
    def mesh_generation(self) -> int | None:
        return None if self.layers is None else self.layers.mesh_generation

    @property
    def pending(self) -> list[Pending]:
        return [] if self.layers is None else self.layers.mesh_pending

    @property
    def holder(self) -> LeaderRef:
        """The lease holder as this member sees it (an empty ref when none)."""
        return self.leader or LeaderRef()

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class StatusError(ValueError):
    """A status that does not follow the contract; says which member and which keys."""


def read_status(data: object, where: str) -> MemberStatus:
    try:
        return MemberStatus.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in e.errors(include_url=False)
        )
        raise StatusError(f"status of {where} does not follow the contract: {problems}") from None
