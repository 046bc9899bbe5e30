"""One config file per gtm member of the simulated estate: an HA pair per region.

From the estate file, `write_members` writes `<work>/members/<name>.yaml` for
`dc1-a`, `dc1-b`, `dc2-a`, … — the estate as it is, plus:

- `instance`: region, member name, and `state_dir` `<work>/state/<region>`,
  shared by the pair so both see one store;
- `dns.listen` and `api.listen` on 127.0.0.1, from the `PortPlan` (the demo's
  `dc1-a` answers DNS on 5353 and the API on 8080, each next member +1);
- `api.tokens_file`, `api.peer_token_file` (see `chaos.estate.tokens`) and
  `api.peers`: every other member (its partner and both members of every other region);
- `kubernetes.clusters`: every region's simulated cluster, the member's own
  first (kubeconfig and context named after the region, the mesh namespace,
  selector `gtm.io/managed=true`, service label `gtm.io/service`); a member
  writes WorkloadEntries only in its own region's, and reads the others for
  AccessPoint discovery;
- `accesspoints.cluster`: when the estate has an `accesspoints` section that
  names no home cluster, the first region's;
- `ha.lease` on a file `<work>/<region>.lease` shared by the pair,
  `ha.store` on files.

What the estate sets elsewhere in those sections (lease timings, DNS zones,
TTL, …) is kept; what cannot hold in a plain-HTTP simulation (`api.tls`,
`api.tokens_secret`, a lease or store on a named cluster) is dropped. Every
file is checked with `gtm.config.load` as it is written. `write_cli_config`
writes `<work>/cli.yaml` for the runbook CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chaos.estate.mesh import NAMESPACE, SELECTOR, SERVICE_LABEL
from chaos.estate.ports import HOST, PortPlan
from chaos.estate.tokens import Tokens
from gtm.config import load

PAIR = ("a", "b")

# Which URL `member` uses to reach `peer`'s API (default: the peer's own `api_url`).
# Drills route it through a relay of their own to cut the link between two regions.
PeerUrl = Callable[["MemberConfig", "MemberConfig"], str]


@dataclass(frozen=True)
class MemberConfig:
    """Where one member's config is and what it listens on."""

    name: str  # dc1-a
    region: str
    path: Path
    dns_port: int
    api_port: int

    @property
    def dns_listen(self) -> str:
        return f"{HOST}:{self.dns_port}"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"


def member_names(regions: Sequence[str], pair: Sequence[str] = PAIR) -> list[tuple[str, str]]:
    """(member, region) for each member, in port order: dc1-a, dc1-b, dc2-a, …"""
    return [(f"{region}-{suffix}", region) for region in regions for suffix in pair]


def _merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _without(data: Mapping[str, Any], *path: str) -> dict[str, Any]:
    """A copy of `data` without the key at `path` (missing keys are fine)."""
    out = dict(data)
    head, *rest = path
    if head in out:
        if rest:
            if isinstance(out[head], Mapping):
                out[head] = _without(out[head], *rest)
        else:
            del out[head]
    return out


def member_config(
    estate: Mapping[str, Any],
    member: MemberConfig,
    *,
    peers: Sequence[MemberConfig],
    work_dir: Path,
    kubeconfig: Path,
    tokens: Tokens,
    namespace: str = NAMESPACE,
    peer_url: PeerUrl | None = None,
) -> dict[str, Any]:
    """The estate's data plus what makes `member` one member of its region's pair."""
    base = dict(estate)
    regions = [str(r["name"]) for r in estate["regions"]]
    for path in (
        ("api", "tls"),
        ("api", "tokens_secret"),
        ("ha", "lease", "cluster"),
        ("ha", "store", "cluster"),
    ):
        base = _without(base, *path)
    region = member.region
    overlay = {
        "instance": {
            "region": region,
            "member": member.name,
            "state_dir": str(work_dir / "state" / region),
        },
        "dns": {"listen": member.dns_listen},
        "api": {
            "listen": f"{HOST}:{member.api_port}",
            "tokens_file": str(tokens.tokens_file),
            # every other member: its pair partner too (status lists it; the
            # peer exchange pulls only from other regions)
            "peers": [
                {"region": p.region, "url": p.api_url if peer_url is None else peer_url(member, p)}
                for p in peers
                if p.name != member.name
            ],
            "peer_token_file": str(tokens.peer_file),
        },
        "kubernetes": {
            "clusters": [
                {
                    "name": r,
                    "region": r,
                    "kubeconfig": str(kubeconfig),
                    "context": r,
                    "namespace": namespace,
                    "selector": SELECTOR,
                    "service_label": SERVICE_LABEL,
                }
                for r in [region, *(r for r in regions if r != region)]
            ]
        },
        "ha": {
            "lease": {"backend": "file", "path": str(work_dir / f"{region}.lease")},
            "store": {"backend": "file"},
        },
    }
    accesspoints = estate.get("accesspoints")
    if isinstance(accesspoints, Mapping) and accesspoints.get("cluster") is None:
        overlay["accesspoints"] = {"cluster": regions[0]}  # the first region's is home
    return _merge(base, overlay)


def plan_members(
    regions: Sequence[str],
    work_dir: Path,
    ports: PortPlan = PortPlan(),
    pair: Sequence[str] = PAIR,
) -> list[MemberConfig]:
    """Names, config paths and ports of the members, without writing anything."""
    names = member_names(regions, pair)
    ports.check(len(names), len(regions))
    return [
        MemberConfig(
            name,
            region,
            work_dir / "members" / f"{name}.yaml",
            ports.member_dns(i),
            ports.member_api(i),
        )
        for i, (name, region) in enumerate(names)
    ]


def write_members(
    estate_path: Path,
    work_dir: Path,
    *,
    kubeconfig: Path,
    tokens: Tokens,
    ports: PortPlan = PortPlan(),
    namespace: str = NAMESPACE,
    pair: Sequence[str] = PAIR,
    peer_url: PeerUrl | None = None,
) -> dict[str, MemberConfig]:
    """Write every member's config; `gtm.config.ConfigError` if one does not validate.

    `pair` names the members of each region (`("a",)`: one member per region);
    `peer_url` says how a member reaches each peer (default: directly).
    """
    if not pair:
        raise ValueError("a region needs at least one member")
    estate = yaml.safe_load(estate_path.read_text())
    regions = [r["name"] for r in estate["regions"]]
    members = plan_members(regions, work_dir, ports, pair)
    for member in members:
        data = member_config(
            estate,
            member,
            peers=members,
            work_dir=work_dir,
            kubeconfig=kubeconfig,
            tokens=tokens,
            namespace=namespace,
            peer_url=peer_url,
        )
        member.path.parent.mkdir(parents=True, exist_ok=True)
        (work_dir / "state" / member.region).mkdir(parents=True, exist_ok=True)
        header = f"# gtm member {member.name} of the simulated estate, from {estate_path}\n"
        member.path.write_text(header + yaml.safe_dump(data, sort_keys=False))
        load(member.path)
    return {m.name: m for m in members}


def write_cli_config(work_dir: Path, server: str, token_file: Path) -> Path:
    """`<work>/cli.yaml` for the runbook CLI: `{server, token_file}`."""
    path = work_dir / "cli.yaml"
    path.write_text(yaml.safe_dump({"server": server, "token_file": str(token_file)}))
    return path
