"""`SimulatedEstate`: the whole simulated estate the demo and the drills run gtm against.

    async with SimulatedEstate("examples/estate.yaml", work) as estate:
        estate.start_members(launcher, lambda name, path: ["gtm", "serve", "--config", str(path)])
        await estate.set_region_fault("dc2", Fault("refuse"))          # region down
        await estate.cluster_faults("dc1", Faults(error_rate=0.3))     # API brownout
        await estate.set_vantage_fault("dc3", Fault("error"))          # dc3's probers impaired
        weights = [w["spec"]["weight"] for w in await estate.wles("dc1")]

On loopback only: the VIP farm process (`python -m chaos.estate.vips`), one
simulated cluster process per region (`chaos.estate.clusters`), and in the
work dir the estate as simulated (`estate.yaml`), the tokens, one config per
member (`members/dc1-a.yaml`, …), `kubeconfig`, `cli.yaml`, and `logs/`.
The gtm members are the caller's: `start_members` starts them with the
command line it is given. Leaving the `async with` stops the members started
through it, the clusters (which save their state) and the VIPs.

`base_port` moves every port of the estate into a block of its own
(`PortPlan.from_base`), the VIPs' too (the estate's lowest VIP port lands on
the block's VIP port), so tests, drills and a second demo can run beside a
running demo; `vip_port_offset` moves the VIPs' ports by a given amount
instead. Before anything starts, every port is checked: `PortInUse` names the
first one another socket holds. `pair` names each region's members
(`("a",)`: one per region) and `peer_url` routes the members' peer exchange
(see `chaos.estate.members`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog
import yaml

from chaos.estate.clusters import Clusters, client_configuration
from chaos.estate.fault import Fault
from chaos.estate.l4 import L4Controller
from chaos.estate.launcher import Child, Launcher
from chaos.estate.members import PAIR, MemberConfig, PeerUrl, write_cli_config, write_members
from chaos.estate.mesh import MeshSeed
from chaos.estate.ports import HOST, Endpoint, PortPlan, in_use
from chaos.estate.tokens import Tokens, write_tokens
from chaos.kubesim import Faults
from gtm.config import Inventory, load
from kube import Client

log = structlog.get_logger(__name__)

VIPS_PROCESS = "vips"


class ControlError(RuntimeError):
    """A control endpoint (VIP farm or simulated cluster) refused a request."""


class PortInUse(OSError):
    """Ports the estate needs are held by another socket; nothing was started."""

    SHOWN = 5

    def __init__(self, taken: Sequence[Endpoint]) -> None:
        shown = "; ".join(f"port {t.port} is in use: {t.what} on {t}" for t in taken[: self.SHOWN])
        more = f" (and {len(taken) - self.SHOWN} more)" if len(taken) > self.SHOWN else ""
        super().__init__(shown + more)
        self.taken = list(taken)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def vip_ports(source: Path) -> list[int]:
    """The ports of the estate file's VIPs, as written (443 when a VIP names none)."""
    data = yaml.safe_load(source.read_text()) or {}
    return [
        int(vip.get("port", 443))
        for service in data.get("services") or []
        for vips in (service.get("vips") or {}).values()
        for vip in vips or []
    ]


def write_estate(source: Path, target: Path, vip_port_offset: int = 0) -> Path:
    """The estate as simulated: a copy of `source`, every VIP's port moved by the offset."""
    target.parent.mkdir(parents=True, exist_ok=True)
    text = source.read_text()
    if vip_port_offset:
        data = yaml.safe_load(text)
        for service in data.get("services") or []:
            for vips in (service.get("vips") or {}).values():
                for vip in vips or []:
                    vip["port"] = int(vip.get("port", 443)) + vip_port_offset
        text = f"# {source} with VIP ports moved by {vip_port_offset}\n" + yaml.safe_dump(
            data, sort_keys=False
        )
    target.write_text(text)
    return target


class SimulatedEstate:
    """VIPs, clusters and member configs on 127.0.0.0/8; see the module doc."""

    def __init__(
        self,
        estate_path: str | Path,
        work_dir: str | Path,
        *,
        base_port: int | None = None,
        vip_port_offset: int | None = None,
        seed: MeshSeed = MeshSeed(),
        launcher: Launcher | None = None,
        python: str = sys.executable,
        ready_timeout: float = 30.0,
        pair: Sequence[str] = PAIR,
        peer_url: PeerUrl | None = None,
    ) -> None:
        self.source = Path(estate_path)
        self.pair = tuple(pair)
        self.peer_url = peer_url
        self.work_dir = Path(work_dir).resolve()
        self.ports = PortPlan() if base_port is None else PortPlan.from_base(base_port)
        self.vip_port_offset = vip_port_offset
        self.seed = seed
        self.launcher = launcher or Launcher()
        self._own_launcher = launcher is None
        self.python = python
        self.ready_timeout = ready_timeout
        self.estate_file = self.work_dir / "estate.yaml"
        self.kubeconfig = self.work_dir / "kubeconfig"
        self.vip_control_url = f"http://{HOST}:{self.ports.vip_control}"
        self.members: dict[str, MemberConfig] = {}
        self._inventory: Inventory | None = None
        self._tokens: Tokens | None = None
        self._clusters: Clusters | None = None
        self._session: aiohttp.ClientSession | None = None
        self._started_members: list[tuple[Launcher, str]] = []

    # -- what callers read ----------------------------------------------------

    @property
    def inventory(self) -> Inventory:
        if self._inventory is None:
            raise RuntimeError("the estate is not started")
        return self._inventory

    @property
    def tokens(self) -> Tokens:
        if self._tokens is None:
            raise RuntimeError("the estate is not started")
        return self._tokens

    @property
    def operator_token(self) -> str:
        return self.tokens.operator

    @property
    def viewer_token(self) -> str:
        return self.tokens.viewer

    @property
    def cluster_urls(self) -> dict[str, str]:
        if self._clusters is None:
            raise RuntimeError("the estate is not started")
        return dict(self._clusters.urls)

    def l4(self, region: str) -> L4Controller:
        """The region's L4 controller: `withdraw`/`restore` a gateway Service's VIP in drills."""
        if self._clusters is None:
            raise RuntimeError("the estate is not started")
        return self._clusters.l4[region]

    @property
    def member_configs(self) -> dict[str, Path]:
        return {name: m.path for name, m in self.members.items()}

    @property
    def dns_ports(self) -> dict[str, int]:
        return {name: m.dns_port for name, m in self.members.items()}

    @property
    def api_urls(self) -> dict[str, str]:
        return {name: m.api_url for name, m in self.members.items()}

    @property
    def cli_config(self) -> Path:
        return self.work_dir / "cli.yaml"

    def endpoints(self) -> list[Endpoint]:
        """Every address and port the estate listens on: members, clusters, VIPs."""
        out = [Endpoint(f"{m.name} DNS", HOST, m.dns_port, udp=True) for m in self.members.values()]
        out += [Endpoint(f"{m.name} API", HOST, m.api_port) for m in self.members.values()]
        out += [
            Endpoint(f"the simulated cluster of {r}", HOST, self.ports.cluster(i))
            for i, r in enumerate(self.inventory.region_names)
        ]
        out.append(Endpoint("the VIP farm's control API", HOST, self.ports.vip_control))
        seen = set()
        for service in self.inventory.config.services:
            for region, vips in service.vips.items():
                for vip in vips:
                    if _is_ip(str(vip.address)) and (vip.address, vip.port) not in seen:
                        seen.add((vip.address, vip.port))
                        what = f"a VIP of {service.name} in {region}"
                        out.append(Endpoint(what, str(vip.address), vip.port))
        return out

    def log_path(self, name: str) -> Path:
        return self.work_dir / "logs" / f"{name}.log"

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Write the files, start the VIPs and the clusters, seed the mesh."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "estate.started",
            work_dir=str(self.work_dir),
            vips=self.vip_control_url,
            clusters=self.cluster_urls,
            members=len(self.members),
        )

    async def _start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        offset = self.vip_port_offset
        if offset is None:
            offset = self.ports.vip_offset(vip_ports(self.source))
        write_estate(self.source, self.estate_file, offset)
        self._inventory = load(self.estate_file)
        self._tokens = write_tokens(self.work_dir)
        self.members = write_members(
            self.estate_file,
            self.work_dir,
            kubeconfig=self.kubeconfig,
            tokens=self._tokens,
            ports=self.ports,
            namespace=self.seed.namespace,
            pair=self.pair,
            peer_url=self.peer_url,
        )
        taken = in_use(self.endpoints())
        if taken:
            raise PortInUse(taken)
        first = next(iter(self.members.values()))
        write_cli_config(self.work_dir, first.api_url, self._tokens.operator_file)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.launcher.start(
            VIPS_PROCESS,
            [
                self.python,
                *("-m", "chaos.estate.vips", "--config", str(self.estate_file)),
                *("--control", f"{HOST}:{self.ports.vip_control}"),
            ],
            log_path=self.log_path(VIPS_PROCESS),
        )
        self._clusters = Clusters(
            self._inventory,
            self.work_dir,
            self.launcher,
            ports=self.ports,
            seed=self.seed,
            python=self.python,
        )
        await asyncio.gather(
            self.launcher.wait_http(
                f"{self.vip_control_url}/_healthz", self.ready_timeout, name=VIPS_PROCESS
            ),
            self._clusters.start(self.ready_timeout),
        )

    async def stop(self, grace: float = 10.0) -> None:
        """Members started here first, then the clusters (saving their state) and the VIPs."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        try:
            await asyncio.gather(
                *(
                    launcher.terminate(name, grace)
                    for launcher, name in self._started_members
                    if name in launcher.names
                )
            )
            self._started_members.clear()
            infrastructure: list[Awaitable[Any]] = []
            if self._clusters is not None:
                infrastructure.append(self._clusters.stop(grace))
            if VIPS_PROCESS in self.launcher.names:
                infrastructure.append(self.launcher.terminate(VIPS_PROCESS, grace))
            await asyncio.gather(*infrastructure)
        finally:
            if self._own_launcher:
                self.launcher.close(timeout=1.0)  # a no-op unless something above failed

    async def __aenter__(self) -> SimulatedEstate:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- the gtm members ------------------------------------------------------

    def start_members(
        self,
        launcher: Launcher | None,
        argv_for: Callable[[str, Path], list[str]],
        *,
        names: Iterable[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> list[Child]:
        """Start each member (all, or `names`) with `argv_for(name, config_path)`.

        `launcher` None: the estate's own. Logs go to `<work>/logs/<name>.log`.
        """
        use = launcher or self.launcher
        started = []
        for name in names if names is not None else self.members:
            member = self.members[name]
            started.append(use.start(name, argv_for(name, member.path), env, self.log_path(name)))
            if (use, name) not in self._started_members:  # started again after a kill
                self._started_members.append((use, name))
        return started

    def running_members(self, region: str | None = None) -> dict[str, int]:
        """Member name -> pid (its process group) of the members started here that run now."""
        return {
            name: launcher.pid(name)
            for launcher, name in self._started_members
            if (region is None or self.members[name].region == region) and launcher.alive(name)
        }

    async def wait_members(
        self,
        launcher: Launcher | None = None,
        *,
        path: str = "/healthz",
        names: Iterable[str] | None = None,
        within: float = 30.0,
    ) -> None:
        """Until each member's API answers `path` with a 2xx (TimeoutError after `within`)."""
        use = launcher or self.launcher
        chosen = list(names) if names is not None else list(self.members)
        await asyncio.gather(
            *(use.wait_http(self.api_urls[n] + path, within, name=n) for n in chosen)
        )

    # -- faults and observation -----------------------------------------------

    async def _call(self, method: str, url: str, body: Any = None) -> Any:
        if self._session is None:
            raise RuntimeError("the estate is not started")
        async with self._session.request(method, url, json=body) as response:
            data = await response.json(content_type=None)
            if response.status >= 400:
                raise ControlError(f"{method} {url}: {response.status} {data}")
            return data

    async def vips(self) -> list[dict[str, Any]]:
        """The state of every VIP (fault, listening, requests served)."""
        return list((await self._call("GET", f"{self.vip_control_url}/_vips"))["vips"])

    async def set_vip_fault(self, vip_id: str, fault: Fault) -> dict[str, Any]:
        url = f"{self.vip_control_url}/_vips/{quote(vip_id, safe='')}/fault"
        return dict(await self._call("POST", url, fault.to_dict()))

    async def set_region_fault(self, region: str, fault: Fault) -> dict[str, Any]:
        url = f"{self.vip_control_url}/_regions/{quote(region, safe='')}/fault"
        return dict(await self._call("POST", url, fault.to_dict()))

    async def set_source_fault(
        self, name: str, groups: Iterable[int], fault: Fault
    ) -> dict[str, Any]:
        """`fault` on every VIP for the connections of these process groups only."""
        url = f"{self.vip_control_url}/_sources/{quote(name, safe='')}/fault"
        return dict(await self._call("POST", url, {"groups": list(groups), **fault.to_dict()}))

    async def clear_source_fault(self, name: str) -> bool:
        url = f"{self.vip_control_url}/_sources/{quote(name, safe='')}"
        return bool((await self._call("DELETE", url))["cleared"])

    async def set_vantage_fault(self, region: str, fault: Fault) -> dict[str, Any]:
        """Every VIP fails (as `fault` says) as seen by the region's running members only:
        the region's probers are impaired, nobody else sees a thing. `Fault()` clears it.

        It names the members running now: one started later is not impaired.
        """
        if region not in self.inventory.region_names:
            raise ValueError(f"no region {region!r}")
        name = f"vantage-{region}"
        if fault == Fault():
            await self.clear_source_fault(name)
            return {"name": name, "cleared": True}
        return await self.set_source_fault(name, self.running_members(region).values(), fault)

    async def reset_vips(self) -> None:
        await self._call("POST", f"{self.vip_control_url}/_reset")

    async def cluster_faults(self, region: str, faults: Faults) -> dict[str, Any]:
        """Put `faults` in force on the region's API server (`Faults()` clears them)."""
        url = f"{self.cluster_urls[region]}/_sim/faults"
        return dict(await self._call("POST", url, faults.to_dict()))

    async def drop_watches(self, region: str) -> int:
        data = await self._call("POST", f"{self.cluster_urls[region]}/_sim/drop-watches")
        return int(data["dropped"])

    async def apply_accesspoint(self, doc: Mapping[str, Any]) -> None:
        """Create an AccessPoint (a `gtm.io/v1alpha1` document) in the home cluster
        (`accesspoints.cluster` of the members' configs), as `kubectl create` does."""
        member = next(iter(self.member_configs.values()))
        config = load(member).config
        home = config.accesspoints.cluster
        if home is None:
            raise RuntimeError("the estate has no accesspoints section: no home cluster")
        meta = doc.get("metadata") or {}
        namespace = str(meta.get("namespace") or config.accesspoints.namespaces[0])
        configuration = await client_configuration(self.kubeconfig, home)
        async with Client(configuration, timeout=10.0) as client:
            create = partial(
                client.custom_objects.create_namespaced_custom_object,
                "gtm.io", "v1alpha1", namespace, "accesspoints", dict(doc),
            )  # fmt: skip
            await client.request(
                "create", create, what=f"AccessPoint {namespace}/{meta.get('name')}"
            )

    async def wles(self, region: str) -> list[dict[str, Any]]:
        """The WorkloadEntries of the region's cluster as stored, status included, by name.

        Read from the simulator's `/_sim/objects`, which injected API faults
        do not touch: observing a brownout does not suffer from it.
        """
        data = await self._call("GET", f"{self.cluster_urls[region]}/_sim/objects")
        found = [
            o
            for o in data["items"]
            if o.get("kind") == "WorkloadEntry"
            and o["metadata"].get("namespace") == self.seed.namespace
        ]
        return sorted(found, key=lambda o: str(o["metadata"]["name"]))
