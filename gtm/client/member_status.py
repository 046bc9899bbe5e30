"""The shape of `GET /v1/status`: what a member must report, as the runbook CLI reads it.

`Member.status()` returns a JSON-able dict; these models are the contract
the CLI relies on (`gtm status`, `--wait`). Extra keys are allowed and
ignored; a missing required key is a clear error naming it.

    {
      "identity": "dc1-a", "region": "dc1", "role": "leader",
      "leader": {"identity": "dc1-a", "address": "http://10.0.0.5:8080"},   # or null
      "epoch": 3,
      "generation": 12,                          # the table generation its DNS serves
      "dns": {"listen": "10.0.0.5:53"},          # where its DNS answers (0.0.0.0: the API's host)
      "health": {"vips": {"up": 40, "down": 1}, "regions": {"up": 20}, "down": [], "impaired": []},
      "intent": {"version": 7, "digest": "…", "active": ["exit-dc2-…"]},  # ids or override dicts
      "layers": {"dns_admitted": ["exit-dc2-…"], "mesh_admitted": [],   # ids in force per layer
                 "mesh_generation": 12, "mesh_pending": [{"id": "exit-dc2-…", "at": 1732871234.5}]},
      "mesh": {"dc1-east": {"in_sync": 118, "desired": 120, "generation": 12,
                            "converged": false, "refused": null, "conflicts": []}},
      "peers": [{"identity": "dc1-b", "region": "dc1", "url": "https://10.0.0.6:8080"}, …],
      "regions": {"dc1": {"client_cidrs": ["10.1.0.0/16"]}, …},
      "fqdns": {"foo": "foo.example.com", …}
    }

Also read: `admitted: {"dns": [...], "mesh": [...]}` instead of `layers`, and
`peers` as a mapping `{label: {"url": …}}`. `peers` must list every *other*
member — the pair partner as well as other regions' — each with its API's
URL: `--wait` asks each of them. A cluster is in sync when `in_sync ==
desired`, it is not `refused`, not reported un-`converged`, and (when both
are given) its `generation` is the member's `mesh_generation`. Its
`conflicts` (DestinationRules whose `distribute` overrides the WLE weights)
are shown, not waited on: gtm does not fight them, so waiting would not end.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LeaderRef(_Part):
    identity: str | None = None
    address: str | None = None
    epoch: int | None = None


class DnsRef(_Part):
    listen: str  # HOST:PORT

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
    active: list[str] = []  # ids of the overrides in force

    @field_validator("active", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [v.get("id") if isinstance(v, dict) else v for v in value]
        return value


class MeshProgress(_Part):
    in_sync: int
    desired: int
    drifted: int = 0
    generation: int | None = None  # of the mesh table the cluster's reconciler enforces
    converged: bool | None = None
    refused: str | None = None
    conflicts: list[str] = []  # DestinationRules overriding the weights (shown, not waited on)

    def synced(self, mesh_generation: int | None) -> bool:
        current = (
            mesh_generation is None or self.generation is None or self.generation == mesh_generation
        )
        return (
            self.in_sync == self.desired
            and self.refused is None
            and self.converged is not False
            and current
        )


class PeerRef(_Part):
    identity: str | None = None
    region: str | None = None
    url: str | None = None


class RegionRef(_Part):
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
    leader: LeaderRef = LeaderRef()
    epoch: int | None = None
    generation: int | None = None
    dns: DnsRef | None = None
    health: dict[str, Any] = {}
    intent: IntentRef = IntentRef()
    admitted: dict[str, list[str]] = {}  # layer ("dns", "mesh") -> override ids
    mesh_generation: int | None = None
    pending: list[Any] = []
    mesh: dict[str, MeshProgress] = {}
    peers: list[PeerRef] = []
    regions: dict[str, RegionRef] = {}
    fqdns: dict[str, str] = {}

    @model_validator(mode="before")
    @classmethod
    def _layers(cls, data: Any) -> Any:
        """Take `layers.*_admitted` and a `peers` mapping into the fields above."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        layers = data.get("layers")
        if isinstance(layers, dict):
            data.setdefault(
                "admitted",
                {k: layers.get(f"{k}_admitted", []) for k in ("dns", "mesh")},
            )
            data.setdefault("mesh_generation", layers.get("mesh_generation"))
            data.setdefault("pending", layers.get("mesh_pending", []))
        if data.get("leader") is None:
            data.pop("leader", None)
        peers = data.get("peers")
        if isinstance(peers, dict):
            data["peers"] = [
                {"region": label, **p} if isinstance(p, dict) else p for label, p in peers.items()
            ]
        return data

    def admits(self, layer: str, override_id: str) -> bool:
        return override_id in self.admitted.get(layer, ())


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
