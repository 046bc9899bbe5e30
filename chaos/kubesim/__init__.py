"""A simulated Kubernetes API server that follows the apiserver's rules.

Serves `networking.istio.io` v1/v1beta1 WorkloadEntry, ServiceEntry,
DestinationRule, Gateway and VirtualService (with their `status`
subresource), `gtm.io/v1alpha1` AccessPoint (from its CRD manifest,
`deploy/kubernetes/accesspoint-crd.yaml`), `coordination.k8s.io/v1` Lease and
core `v1` ConfigMap, Secret (`kubernetes.io/tls` checked), Service (with
`status.loadBalancer`) and Namespace over real HTTP, so the real
kubernetes-asyncio client and the real `kubectl` run against it:
resourceVersion conflicts, generation, merge/JSON/strategic patches,
server-side apply with field ownership (`managed`), `fieldValidation`,
OpenAPI v2/v3 (`openapi`), label selectors, watches with a bounded history
(410 Expired), tables, and faults injected on demand (latency, 500s, 429s, a
rate limit, dropped watches, resources RBAC does not grant).

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
