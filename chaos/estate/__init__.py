"""The simulated estate gtm runs against in the demo and the chaos drills, on 127.0.0.0/8.

- `VipFarm` (`python -m chaos.estate.vips`): an HTTP server per VIP, each with
  a `Fault` settable at run time (refuse, blackhole, slow, error, flap; a
  whole region down), controlled over HTTP.
- `Clusters`: a simulated Kubernetes API server (`chaos.kubesim`) per region,
  seeded with the ServiceEntries and WorkloadEntries a real cluster holds
  (`mesh_objects`), behind one kubeconfig with a context per region, each with
  its `L4Controller` (VIPs for `gtm.io/ipvs` LoadBalancer Services).
- `write_members`: a config per gtm member, an HA pair per region.
- `Launcher`: child processes in their own process groups, killed, paused,
  resumed, terminated on demand, never orphaned.
- `SimulatedEstate`: all of it in one `async with`.

    async with SimulatedEstate("examples/estate.yaml", work_dir) as estate:
        estate.start_members(None, lambda name, path: ["gtm", "serve", "--config", str(path)])
        await estate.set_region_fault("dc2", Fault("refuse"))

Names are imported when first used, so `python -m chaos.estate.vips` does not
load the Kubernetes client it has no use for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gtm.lazy import lazy_names

if TYPE_CHECKING:
    from chaos.estate.clusters import Clusters, SeedResult, seed_cluster, write_kubeconfig
    from chaos.estate.estate import ControlError, PortInUse, SimulatedEstate, write_estate
    from chaos.estate.farm import UnknownRegion, UnknownVip, VipFarm
    from chaos.estate.fault import MODES, REGION_DOWN, Fault, FaultError, Mode
    from chaos.estate.l4 import LOAD_BALANCER_CLASS, L4Controller, l4_pool
    from chaos.estate.launcher import Child, ChildExited, Launcher, UnknownChild
    from chaos.estate.members import (
        MemberConfig,
        member_config,
        member_names,
        plan_members,
        write_cli_config,
        write_members,
    )
    from chaos.estate.mesh import MeshObjects, MeshSeed, mesh_objects, seed_weights, wle_name
    from chaos.estate.ports import Endpoint, PortPlan, ephemeral_range, in_use
    from chaos.estate.tokens import Tokens, write_tokens
    from chaos.estate.vip_control import VipControl

_WHERE = {
    "Clusters": "chaos.estate.clusters",
    "SeedResult": "chaos.estate.clusters",
    "seed_cluster": "chaos.estate.clusters",
    "write_kubeconfig": "chaos.estate.clusters",
    "ControlError": "chaos.estate.estate",
    "PortInUse": "chaos.estate.estate",
    "SimulatedEstate": "chaos.estate.estate",
    "write_estate": "chaos.estate.estate",
    "UnknownRegion": "chaos.estate.farm",
    "UnknownVip": "chaos.estate.farm",
    "VipFarm": "chaos.estate.farm",
    "Fault": "chaos.estate.fault",
    "FaultError": "chaos.estate.fault",
    "MODES": "chaos.estate.fault",
    "Mode": "chaos.estate.fault",
    "REGION_DOWN": "chaos.estate.fault",
    "L4Controller": "chaos.estate.l4",
    "LOAD_BALANCER_CLASS": "chaos.estate.l4",
    "l4_pool": "chaos.estate.l4",
    "Child": "chaos.estate.launcher",
    "ChildExited": "chaos.estate.launcher",
    "Launcher": "chaos.estate.launcher",
    "UnknownChild": "chaos.estate.launcher",
    "MemberConfig": "chaos.estate.members",
    "member_config": "chaos.estate.members",
    "member_names": "chaos.estate.members",
    "plan_members": "chaos.estate.members",
    "write_cli_config": "chaos.estate.members",
    "write_members": "chaos.estate.members",
    "MeshObjects": "chaos.estate.mesh",
    "MeshSeed": "chaos.estate.mesh",
    "mesh_objects": "chaos.estate.mesh",
    "seed_weights": "chaos.estate.mesh",
    "wle_name": "chaos.estate.mesh",
    "Endpoint": "chaos.estate.ports",
    "PortPlan": "chaos.estate.ports",
    "ephemeral_range": "chaos.estate.ports",
    "in_use": "chaos.estate.ports",
    "Tokens": "chaos.estate.tokens",
    "write_tokens": "chaos.estate.tokens",
    "VipControl": "chaos.estate.vip_control",
}

__all__ = [
    "LOAD_BALANCER_CLASS",
    "MODES",
    "REGION_DOWN",
    "Child",
    "ChildExited",
    "Clusters",
    "ControlError",
    "Endpoint",
    "Fault",
    "FaultError",
    "L4Controller",
    "Launcher",
    "MemberConfig",
    "MeshObjects",
    "MeshSeed",
    "Mode",
    "PortInUse",
    "PortPlan",
    "SeedResult",
    "SimulatedEstate",
    "Tokens",
    "UnknownChild",
    "UnknownRegion",
    "UnknownVip",
    "VipControl",
    "VipFarm",
    "ephemeral_range",
    "in_use",
    "l4_pool",
    "member_config",
    "member_names",
    "mesh_objects",
    "plan_members",
    "seed_cluster",
    "seed_weights",
    "wle_name",
    "write_cli_config",
    "write_estate",
    "write_kubeconfig",
    "write_members",
    "write_tokens",
]


__getattr__, __dir__ = lazy_names(__name__, _WHERE)
