"""A simulated Kubernetes API server that follows the apiserver's rules.

Serves `networking.istio.io` v1/v1beta1 WorkloadEntry, ServiceEntry and
DestinationRule (with their `status` subresource), `coordination.k8s.io/v1`
Lease and core `v1` ConfigMap and Secret over real HTTP, so the real kubernetes-asyncio client
runs against it: resourceVersion conflicts, generation, merge/JSON/apply
patches, label selectors, watches with a bounded history (410 Expired),
and faults injected on demand (latency, 500s, 429s, a rate limit, dropped
watches, resources RBAC does not grant).

    from chaos.kubesim import KubeSim, Faults

    async with KubeSim(host="127.0.0.1", port=0) as sim:
        sim.faults.set(Faults(error_rate=0.1, seed=1))

Run as a process: `python -m chaos.kubesim --listen 127.0.0.1:PORT [--state FILE]`;
faults are then set over HTTP on `/_sim/faults` (see `chaos.kubesim.control`).
"""

from chaos.kubesim.errors import ApiError
from chaos.kubesim.faults import FaultInjector, Faults
from chaos.kubesim.resources import DEFAULT_RESOURCES, Resource
from chaos.kubesim.sim import KubeSim

__all__ = ["DEFAULT_RESOURCES", "ApiError", "FaultInjector", "Faults", "KubeSim", "Resource"]
