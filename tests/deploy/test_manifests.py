"""The Kubernetes manifests of one region's HA pair (deploy/kubernetes/).

`check(docs)` is a small offline linter for exactly these manifests: it
returns every problem it finds as a sentence, so the good set must give none
and each deliberately broken copy must give the problem it was broken for.
It reads the sample estate config out of its ConfigMap and validates it with
gtm's own validator, then derives what the manifests must say from it (the
Lease and ConfigMap names RBAC may touch, the ports the Services and probes
must reach, the grace period the lease needs).

A schema check by an external tool runs when one is on the machine and works
offline: kubeconform (with local schemas), or the kubernetes-validate package
(schemas bundled). kubectl is used only to build the kustomization: its
strict validation needs a live API server.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from gtm.api.tokens import ROLES
from gtm.config import ConfigError, Inventory, loads

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"

Doc = dict[str, Any]

# kind -> (apiVersion, namespaced)
KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("v1", False),
    "ServiceAccount": ("v1", True),
    "ConfigMap": ("v1", True),
    "Secret": ("v1", True),
    "Service": ("v1", True),
    "Deployment": ("apps/v1", True),
    "PodDisruptionBudget": ("policy/v1", True),
    "Role": ("rbac.authorization.k8s.io/v1", True),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", True),
    "ClusterRole": ("rbac.authorization.k8s.io/v1", False),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io/v1", False),
    "CustomResourceDefinition": ("apiextensions.k8s.io/v1", False),
}
HOME_NAMESPACE = "gtm-system"  # everything but the mesh Role lives here
SERVE_FLAGS = ("--config", "--region", "--member")  # what `gtm serve` is assumed to take
ALL_NAMESPACES = "*"

# (group, resource, verb, resourceName or None): what gtm needs, nothing more
Grant = tuple[str, str, str, str | None]


def needed_grants(config: Any) -> dict[str | None, set[Grant]]:
    """Namespace (None: the WLE namespace of the local cluster) -> grants."""
    lease, store, api = config.ha.lease, config.ha.store, config.api
    home: set[Grant] = {
        ("coordination.k8s.io", "leases", "get", lease.name),
        ("coordination.k8s.io", "leases", "update", lease.name),
        ("coordination.k8s.io", "leases", "create", None),  # create has no name to match
        ("", "configmaps", "create", None),
    }
    for cm in (store.intent, store.audit, store.table):
        home |= {("", "configmaps", v, cm) for v in ("get", "update", "patch")}
    out: dict[str | None, set[Grant]] = {}
    out.setdefault(lease.namespace, set()).update(g for g in home if g[1] == "leases")
    out.setdefault(store.namespace, set()).update(g for g in home if g[1] == "configmaps")
    if api.tokens_secret is not None:
        out.setdefault(api.tokens_secret.namespace, set()).add(
            ("", "secrets", "get", api.tokens_secret.name)
        )
    istio = "networking.istio.io"
    out[None] = {
        *((istio, "workloadentries", v, None) for v in ("get", "list", "watch", "patch")),
        *((istio, "workloadentries/status", v, None) for v in ("get", "patch")),
        *((istio, "serviceentries", v, None) for v in ("get", "list", "watch")),
        *((istio, "destinationrules", v, None) for v in ("get", "list", "watch")),
    }
    if config.accesspoints.cluster is not None:  # gtm.service.accesspoints, in their namespaces
        write = ("get", "list", "create", "patch", "delete")
        kinds = ("gateways", "virtualservices", "destinationrules", "serviceentries")
        for ns in config.accesspoints.namespaces:
            out.setdefault(ns, set()).update(
                {
                    *(("gtm.io", "accesspoints", v, None) for v in ("get", "list")),
                    ("gtm.io", "accesspoints/status", "patch", None),
                    *(("", "services", v, None) for v in write),
                    *((istio, k, v, None) for k in (*kinds, "workloadentries") for v in write),
                    (istio, "workloadentries/status", "patch", None),
                    *(("", "secrets", v, None) for v in ("get", "list")),
                }
            )
    return out


# -- reading -----------------------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


def load_docs(paths: list[Path] | None = None) -> list[Doc]:
    docs: list[Doc] = []
    for path in paths or manifest_files():
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                docs.append(doc)
    return docs


def ident(doc: Doc) -> str:
    meta = doc.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{doc.get('kind', '?')} {ns}{meta.get('name', '?')}"


def selects(selector: Any, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels / matchExpressions); an empty one selects nothing here."""
    if not isinstance(selector, dict) or not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(op, False)
        if not ok:
            return False
    return True


_QUANTITY = re.compile(r"^([0-9.]+(?:[eE][-+]?[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUFFIX = {
    None: Decimal(1),
    "m": Decimal("0.001"),
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate("kMGTPE")},
    **{s + "i": Decimal(1024) ** (i + 1) for i, s in enumerate("KMGTPE")},
}


def quantity(value: Any) -> Decimal | None:
    m = _QUANTITY.match(str(value))
    return Decimal(m.group(1)) * _SUFFIX[m.group(2)] if m else None


# -- the checker -------------------------------------------------------------------------


class Checker:
    def __init__(self, docs: list[Doc]) -> None:
        self.docs = docs
        self.problems: list[str] = []
        self.inventory: Inventory | None = None
        self.region: str | None = None

    def bad(self, doc: Doc | str, message: str) -> None:
        self.problems.append(f"{doc if isinstance(doc, str) else ident(doc)}: {message}")

    def of(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if isinstance(d, dict) and d.get("kind") == kind]

    def find(self, kind: str, name: str, namespace: str | None = None) -> Doc | None:
        for d in self.of(kind):
            meta = d.get("metadata") or {}
            if meta.get("name") == name and (
                namespace is None or meta.get("namespace") == namespace
            ):
                return d
        return None

    def run(self) -> list[str]:
        self.common()
        for crd in self.of("CustomResourceDefinition"):
            self.crd(crd)
        deployments = self.of("Deployment")
        if len(deployments) != 1:
            self.bad("manifests", f"{len(deployments)} Deployments, want exactly one")
            return self.problems
        dep = deployments[0]
        pod = (dep.get("spec") or {}).get("template") or {}
        spec = pod.get("spec") or {}
        containers = spec.get("containers") or []
        gtm = next((c for c in containers if c.get("name") == "gtm"), None)
        if gtm is None:
            self.bad(dep, "no container named gtm")
            return self.problems
        self.config(dep, gtm)
        self.deployment(dep, gtm)
        self.services(dep, gtm)
        self.pdb(dep)
        self.rbac(dep)
        self.secrets()
        return self.problems

    # every object ------------------------------------------------------------------------

    def common(self) -> None:
        seen: set[tuple[str, str, str]] = set()
        for d in self.docs:
            if not isinstance(d, dict):
                self.bad("manifests", f"a document is not a mapping: {d!r:.60}")
                continue
            kind = d.get("kind")
            meta = d.get("metadata") or {}
            if kind not in KINDS:
                self.bad(d, f"unexpected kind {kind!r} (known: {', '.join(KINDS)})")
                continue
            api, namespaced = KINDS[kind]
            if d.get("apiVersion") != api:
                self.bad(d, f"apiVersion {d.get('apiVersion')!r}, want {api!r}")
            if not meta.get("name"):
                self.bad(d, "metadata.name is missing")
            if namespaced and not meta.get("namespace"):
                self.bad(d, "metadata.namespace is missing")
            if not namespaced and meta.get("namespace"):
                self.bad(d, f"{kind} is cluster-scoped but has metadata.namespace")
            if namespaced and kind not in ("Role", "RoleBinding"):
                if meta.get("namespace") not in (None, HOME_NAMESPACE):
                    self.bad(d, f"namespace {meta['namespace']!r}, want {HOME_NAMESPACE!r}")
            key = (kind, str(meta.get("namespace")), str(meta.get("name")))
            if key in seen:
                self.bad(d, "defined twice")
            seen.add(key)

    # custom resource definitions --------------------------------------------------------------

    def crd(self, d: Doc) -> None:
        """What the apiserver's CRD validation refuses, and a structural schema needs."""
        spec = d.get("spec") or {}
        names = spec.get("names") or {}
        group, plural = spec.get("group", ""), names.get("plural", "")
        if name_of(d) != f"{plural}.{group}":
            self.bad(d, f"metadata.name must be {plural}.{group} (spec.names.plural.spec.group)")
        for field in ("kind", "plural", "singular"):
            if not names.get(field):
                self.bad(d, f"spec.names.{field} is missing")
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            self.bad(d, f"spec.scope {spec.get('scope')!r}, want Namespaced or Cluster")
        versions = spec.get("versions") or []
        storage = [v for v in versions if v.get("storage")]
        if len(storage) != 1:
            self.bad(d, f"{len(storage)} storage versions, want exactly one")
        for version in versions:
            where = f"version {version.get('name')}"
            schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or None
            if schema is None:
                self.bad(d, f"{where}: no schema.openAPIV3Schema")
                continue
            if schema.get("type") != "object":
                self.bad(d, f"{where}: the root schema must be of type object")
            for problem in structural_problems(schema, ""):
                self.bad(d, f"{where}: {problem}")
            properties = schema.get("properties") or {}
            if "status" in (version.get("subresources") or {}) and "status" not in properties:
                self.bad(d, f"{where}: a status subresource without a status schema")
            for column in version.get("additionalPrinterColumns") or []:
                if column.get("type") not in ("string", "integer", "number", "boolean", "date"):
                    self.bad(d, f"{where}: printer column {column.get('name')!r} has no valid type")
                if not str(column.get("jsonPath", "")).startswith("."):
                    self.bad(d, f"{where}: printer column {column.get('name')!r} jsonPath")

    # the sample config ----------------------------------------------------------------------

    def config(self, dep: Doc, c: Doc) -> None:
        argv = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
        if argv[:2] != ["gtm", "serve"]:
            self.bad(dep, f"container runs {' '.join(argv[:2])!r}, want 'gtm serve'")
            return
        flags: dict[str, str] = {}
        rest = iter(argv[2:])
        for arg in rest:
            name, eq, value = arg.partition("=")
            if name not in SERVE_FLAGS:
                self.bad(dep, f"gtm serve flag {arg!r} is not one of {', '.join(SERVE_FLAGS)}")
                continue
            flags[name] = value if eq else next(rest, "")
        for flag in SERVE_FLAGS:
            if not flags.get(flag):
                self.bad(dep, f"gtm serve needs {flag}")
        env = {e.get("name"): e for e in c.get("env") or []}
        for ref in re.findall(r"\$\((\w+)\)", " ".join(argv)):
            if ref not in env:
                self.bad(dep, f"$({ref}) is used in the command but not defined in env")
        member = env.get(_var(flags.get("--member", "")) or "")
        field = ((member or {}).get("valueFrom") or {}).get("fieldRef") or {}
        if field.get("fieldPath") != "metadata.name":
            self.bad(dep, "--member must be the pod name (env from fieldRef metadata.name)")
        self.region = self.env_value(dep, flags.get("--region", ""), env)

        text = self.mounted_text(dep, c, flags.get("--config", ""), "ConfigMap")
        if text is None:
            return
        try:
            self.inventory = loads(text, "the sample config")
        except ConfigError as e:
            for p in e.problems:
                self.bad(dep, f"config does not validate: {p}")
            return
        cfg = self.inventory.config
        if cfg.ha.lease.backend != "kubernetes":
            self.bad(dep, "ha.lease.backend must be kubernetes (a file lease is per host)")
        if cfg.ha.store.backend != "kubernetes":
            self.bad(dep, "ha.store.backend must be kubernetes (members are on different nodes)")
        if self.region is not None:
            if self.region not in self.inventory.region_names:
                self.bad(dep, f"--region {self.region!r} is not a region of the config")
            local = [k for k in cfg.kubernetes.clusters if k.region == self.region]
            if not local or not local[0].in_cluster:
                self.bad(dep, f"the first cluster of region {self.region!r} must be in_cluster")
            # the Lease, the store and the token Secret are in this cluster (rbac.yaml)
            clusters = {k.name: k for k in cfg.kubernetes.clusters}
            refs = {
                "ha.lease.cluster": cfg.ha.lease.cluster,
                "ha.store.cluster": cfg.ha.store.cluster,
                "api.tokens_secret.cluster": cfg.api.tokens_secret
                and cfg.api.tokens_secret.cluster,
            }
            for where, ref in refs.items():
                if ref is not None and not (ref in clusters and clusters[ref].in_cluster):
                    self.bad(dep, f"{where} {ref!r} is not this region's in_cluster cluster")
        for section, listen in (("dns", cfg.dns.listen), ("api", cfg.api.listen)):
            host = listen.rpartition(":")[0].strip("[]")
            if not ipaddress.ip_address(host).is_unspecified:
                self.bad(dep, f"{section}.listen {listen} is not reachable from outside the pod")
        if cfg.api.tokens_secret is not None:
            ref = cfg.api.tokens_secret
            if self.find("Secret", ref.name, ref.namespace) is None:
                self.bad(dep, f"api.tokens_secret {ref.namespace}/{ref.name} is not defined")
        if cfg.api.peer_token_file:
            self.mounted_text(dep, c, cfg.api.peer_token_file, "Secret")
        if not self.writable(c, spec_of(dep), cfg.instance.state_dir):
            self.bad(
                dep, f"instance.state_dir {cfg.instance.state_dir} is not on a writable volume"
            )

    def env_value(self, dep: Doc, value: str, env: dict[str, Doc]) -> str | None:
        var = _var(value)
        if var is None:
            return value or None
        e = env.get(var) or {}
        if "value" in e:
            return str(e["value"])
        ref = (e.get("valueFrom") or {}).get("configMapKeyRef") or {}
        cm = self.find("ConfigMap", str(ref.get("name")), namespace_of(dep))
        if cm is None or ref.get("key") not in (cm.get("data") or {}):
            self.bad(dep, f"$({var}) comes from a ConfigMap key that is not defined: {ref}")
            return None
        return str(cm["data"][ref["key"]])

    def mounted_text(self, dep: Doc, c: Doc, path: str, kind: str) -> str | None:
        """The content of the file at `path` in the container, from a ConfigMap or Secret."""
        volumes = {v.get("name"): v for v in spec_of(dep).get("volumes") or []}
        for m in c.get("volumeMounts") or []:
            root = str(m.get("mountPath", "")).rstrip("/") + "/"
            if not path.startswith(root) or m.get("subPath"):
                continue
            rel = path[len(root) :]
            v = volumes.get(m.get("name")) or {}
            source = v.get("configMap") if kind == "ConfigMap" else v.get("secret")
            if source is None:
                continue
            name = source.get("name") if kind == "ConfigMap" else source.get("secretName")
            obj = self.find(kind, str(name), namespace_of(dep))
            if obj is None:
                self.bad(dep, f"{path}: {kind} {name} is not defined")
                return None
            items = {i.get("path"): i.get("key") for i in source.get("items") or []}
            key = items.get(rel) if items else rel
            data = {**(obj.get("data") or {}), **(obj.get("stringData") or {})}
            if key not in data:
                self.bad(dep, f"{path}: {kind} {name} has no key {key!r}")
                return None
            return str(data[key])
        self.bad(dep, f"{path} is not mounted from a {kind}")
        return None

    @staticmethod
    def writable(c: Doc, spec: Doc, path: str) -> bool:
        volumes = {v.get("name"): v for v in spec.get("volumes") or []}
        for m in c.get("volumeMounts") or []:
            root = str(m.get("mountPath", "")).rstrip("/")
            if (path == root or path.startswith(root + "/")) and not m.get("readOnly"):
                v = volumes.get(m.get("name")) or {}
                if "emptyDir" in v or "persistentVolumeClaim" in v or "ephemeral" in v:
                    return True
        return False

    # the Deployment -----------------------------------------------------------------------

    def deployment(self, dep: Doc, c: Doc) -> None:
        dspec = dep.get("spec") or {}
        pod = dspec.get("template") or {}
        labels = (pod.get("metadata") or {}).get("labels") or {}
        spec = pod.get("spec") or {}
        if dspec.get("replicas") != 2:
            self.bad(dep, f"replicas is {dspec.get('replicas')!r}, want 2 (the HA pair)")
        if not selects(dspec.get("selector"), labels):
            self.bad(dep, "spec.selector does not select the pod template's labels")

        aff = (spec.get("affinity") or {}).get("podAntiAffinity") or {}
        required = aff.get("requiredDuringSchedulingIgnoredDuringExecution") or []
        if not any(
            t.get("topologyKey") == "kubernetes.io/hostname"
            and selects(t.get("labelSelector"), labels)
            for t in required
        ):
            self.bad(
                dep, "no required pod anti-affinity on kubernetes.io/hostname for its own pods"
            )
        zone = "topology.kubernetes.io/zone"
        spread = any(
            t.get("topologyKey") == zone and selects(t.get("labelSelector"), labels)
            for t in spec.get("topologySpreadConstraints") or []
        ) or any(
            (t.get("podAffinityTerm") or {}).get("topologyKey") == zone
            and selects((t.get("podAffinityTerm") or {}).get("labelSelector"), labels)
            for t in aff.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        )
        if not spread:
            self.bad(dep, f"no preference to spread its pods over {zone}")
        rolling = (dspec.get("strategy") or {}).get("rollingUpdate") or {}
        if required and str(rolling.get("maxSurge", "25%")) not in ("0", "0%"):
            self.bad(dep, "maxSurge must be 0: with required anti-affinity a surge pod may not fit")

        grace = spec.get("terminationGracePeriodSeconds")
        if self.inventory is not None:
            deadline = self.inventory.config.ha.lease.renew_deadline
            if not isinstance(grace, int) or grace <= deadline:
                self.bad(
                    dep,
                    f"terminationGracePeriodSeconds {grace!r} must be set and longer than "
                    f"ha.lease.renew_deadline ({deadline:g}s)",
                )

        sa = spec.get("serviceAccountName")
        if not sa or self.find("ServiceAccount", sa, namespace_of(dep)) is None:
            self.bad(dep, f"serviceAccountName {sa!r} is not a ServiceAccount defined here")
        if spec.get("automountServiceAccountToken") is False:
            self.bad(dep, "automountServiceAccountToken is false but gtm uses in_cluster access")
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(key):
                self.bad(dep, f"{key} must not be set")

        self.container(dep, c, spec, labels)

    def container(self, dep: Doc, c: Doc, spec: Doc, labels: dict[str, str]) -> None:
        ports = c.get("ports") or []
        for p in ports:
            if int(p.get("containerPort", 0)) < 1024:
                self.bad(dep, f"container port {p.get('containerPort')} needs NET_BIND_SERVICE")
            if p.get("hostPort"):
                self.bad(dep, f"hostPort {p['hostPort']} must not be used")
        dns_port = api_port = None
        if self.inventory is not None:
            cfg = self.inventory.config
            dns_port, api_port = (
                int(cfg.dns.listen.rpartition(":")[2]),
                int(cfg.api.listen.rpartition(":")[2]),
            )
            for proto in ("UDP", "TCP"):
                if resolve_port(c, dns_port, proto) is None:
                    self.bad(dep, f"no {proto} container port {dns_port} (dns.listen)")
            if resolve_port(c, api_port, "TCP") is None:
                self.bad(dep, f"no TCP container port {api_port} (api.listen)")

        for kind, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            probe = c.get(kind) or {}
            get = probe.get("httpGet") or {}
            if get.get("path") != path:
                self.bad(dep, f"{kind} must be an httpGet of {path}")
                continue
            port = resolve_port(c, get.get("port"), "TCP")
            if port is None:
                self.bad(dep, f"{kind} port {get.get('port')!r} is not a container port")
            elif api_port is not None and port != api_port:
                self.bad(dep, f"{kind} port {port} is not the API port {api_port}")

        notes = ((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}
        notes = notes.get("annotations") or {}
        if notes.get("prometheus.io/scrape") != "true":
            self.bad(dep, "the pod template lacks the annotation prometheus.io/scrape: 'true'")
        else:
            port = resolve_port(c, _int_or_str(notes.get("prometheus.io/port", "")), "TCP")
            if port is None or (api_port is not None and port != api_port):
                self.bad(dep, "prometheus.io/port must be the API port (it serves /metrics)")
            if notes.get("prometheus.io/path", "/metrics") != "/metrics":
                self.bad(dep, "prometheus.io/path must be /metrics")

        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            for what in ("cpu", "memory"):
                if quantity((res.get(part) or {}).get(what)) is None:
                    self.bad(dep, f"resources.{part}.{what} is missing or not a quantity")
        for what in ("cpu", "memory"):
            req = quantity((res.get("requests") or {}).get(what))
            lim = quantity((res.get("limits") or {}).get(what))
            if req is not None and lim is not None and req > lim:
                self.bad(dep, f"resources.requests.{what} is above its limit")

        psc, csc = spec.get("securityContext") or {}, c.get("securityContext") or {}
        if not (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            self.bad(dep, "runAsNonRoot is not set")
        if 0 in (csc.get("runAsUser"), psc.get("runAsUser")):
            self.bad(dep, "runAsUser is 0 (root)")
        if csc.get("readOnlyRootFilesystem") is not True:
            self.bad(dep, "readOnlyRootFilesystem is not true")
        if csc.get("allowPrivilegeEscalation") is not False:
            self.bad(dep, "allowPrivilegeEscalation is not false")
        if csc.get("privileged"):
            self.bad(dep, "the container is privileged")
        caps = csc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            self.bad(dep, "capabilities.drop does not include ALL")
        if caps.get("add"):
            self.bad(dep, f"capabilities.add {caps['add']} must be empty (DNS listens on 5353)")

        volumes = {v.get("name") for v in spec.get("volumes") or []}
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                self.bad(dep, f"volumeMount {m.get('name')!r} has no volume")

    # Services -----------------------------------------------------------------------------

    def services(self, dep: Doc, c: Doc) -> None:
        labels = pod_labels(dep)
        dns_pairs = []
        api_ok = False
        dns_port = api_port = None
        if self.inventory is not None:
            dns_port = int(self.inventory.config.dns.listen.rpartition(":")[2])
            api_port = int(self.inventory.config.api.listen.rpartition(":")[2])
        for svc in self.of("Service"):
            spec = svc.get("spec") or {}
            sel = spec.get("selector") or {}
            if not sel or any(labels.get(k) != v for k, v in sel.items()):
                self.bad(svc, "spec.selector does not select the Deployment's pods")
            protos: set[str] = set()
            for p in spec.get("ports") or []:
                proto = p.get("protocol", "TCP")
                target = resolve_port(c, p.get("targetPort", p.get("port")), proto)
                if target is None:
                    self.bad(
                        svc,
                        f"port {p.get('port')}/{proto}: targetPort {p.get('targetPort')!r} "
                        "is not a container port of that protocol",
                    )
                    continue
                if p.get("port") == 53 and target == dns_port:
                    protos.add(proto)
                if proto == "TCP" and target == api_port:
                    api_ok = True
            if protos:
                dns_pairs.append(protos)
                if spec.get("type") in ("LoadBalancer", "NodePort") and (
                    spec.get("externalTrafficPolicy") != "Local"
                ):
                    self.bad(
                        svc,
                        "externalTrafficPolicy must be Local: gtm answers by the "
                        "resolver's source address",
                    )
        if self.inventory is None:
            return  # the ports come from the config, which did not load (reported)
        if not any(p == {"UDP", "TCP"} for p in dns_pairs):
            self.bad("manifests", f"no Service maps both UDP and TCP 53 to the DNS port {dns_port}")
        if not api_ok:
            self.bad("manifests", f"no Service reaches the API port {api_port}")

    def pdb(self, dep: Doc) -> None:
        pdbs = self.of("PodDisruptionBudget")
        if not pdbs:
            self.bad("manifests", "no PodDisruptionBudget")
        for pdb in pdbs:
            spec = pdb.get("spec") or {}
            if spec.get("minAvailable") != 1:
                self.bad(pdb, f"minAvailable is {spec.get('minAvailable')!r}, want 1")
            if not selects(spec.get("selector"), pod_labels(dep)):
                self.bad(pdb, "spec.selector does not select the Deployment's pods")

    # RBAC ---------------------------------------------------------------------------------

    def rbac(self, dep: Doc) -> None:
        ns = namespace_of(dep)
        sa = spec_of(dep).get("serviceAccountName")
        roles = {("Role", namespace_of(r), name_of(r)): r for r in self.of("Role")} | {
            ("ClusterRole", None, name_of(r)): r for r in self.of("ClusterRole")
        }
        for role in roles.values():
            for i, rule in enumerate(role.get("rules") or []):
                for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                    if "*" in (rule.get(field) or []):
                        self.bad(role, f"rules[{i}].{field} has '*'")
                if rule.get("nonResourceURLs"):
                    self.bad(role, f"rules[{i}] grants nonResourceURLs")
                if "create" in (rule.get("verbs") or []) and rule.get("resourceNames"):
                    self.bad(role, f"rules[{i}]: create cannot be limited by resourceNames")

        granted: set[tuple[str, Grant]] = set()  # (namespace or '*', grant)
        used: set[tuple[str, str | None, str]] = set()
        bindings = self.of("RoleBinding") + self.of("ClusterRoleBinding")
        for b in bindings:
            ref = b.get("roleRef") or {}
            key = (
                str(ref.get("kind")),
                namespace_of(b) if ref.get("kind") == "Role" else None,
                str(ref.get("name")),
            )
            role = roles.get(key)
            if role is None:
                self.bad(b, f"roleRef {ref.get('kind')} {ref.get('name')} is not defined here")
                continue
            used.add(key)
            ours = any(
                s.get("kind") == "ServiceAccount"
                and s.get("name") == sa
                and s.get("namespace") == ns
                for s in b.get("subjects") or []
            )
            if not ours:
                self.bad(b, f"does not bind the ServiceAccount {ns}/{sa}")
                continue
            where = namespace_of(b) if b.get("kind") == "RoleBinding" else ALL_NAMESPACES
            for grant in expand(role):
                granted.add((str(where), grant))
        for key, role in roles.items():
            if key not in used:
                self.bad(role, "is bound to nothing")
        if not any(
            s.get("kind") == "ServiceAccount" and s.get("name") == sa
            for b in bindings
            for s in b.get("subjects") or []
        ):
            self.bad(dep, f"the ServiceAccount {sa!r} is bound to no role")
        if self.inventory is None:
            return

        cfg = self.inventory.config
        local = [k for k in cfg.kubernetes.clusters if k.region == self.region]
        if not local:
            return  # no cluster of its own to reconcile (reported): nothing to compare with
        mesh_ns = local[0].namespace
        need: set[tuple[str, Grant]] = set()
        for where, grants in needed_grants(cfg).items():
            at = where if where is not None else (mesh_ns or ALL_NAMESPACES)
            need |= {(at, g) for g in grants}
        for at, g in sorted(need, key=str):
            if (at, g) not in granted and (ALL_NAMESPACES, g) not in granted:
                self.bad("RBAC", f"missing {_grant(g)} in namespace {at}")
        # cluster-wide grants are needed only when gtm watches WLEs in every namespace
        for at, g in sorted(granted - need, key=str):
            self.bad("RBAC", f"grants more than gtm needs: {_grant(g)} in namespace {at}")

    # Secrets ------------------------------------------------------------------------------

    def secrets(self) -> None:
        for s in self.of("Secret"):
            values = {**(s.get("stringData") or {}), **(s.get("data") or {})}
            if not values:
                self.bad(s, "has no data")
            for k, v in values.items():
                if "REPLACE-ME" not in str(v):
                    self.bad(s, f"sample value of {k!r} is not marked as a placeholder")
        cfg = self.inventory.config if self.inventory is not None else None
        if cfg is None or cfg.api.tokens_secret is None:
            return
        ref = cfg.api.tokens_secret
        tokens = self.find("Secret", ref.name, ref.namespace) or {}
        for k, v in (tokens.get("stringData") or {}).items():
            role, sep, token = str(v).partition(":")
            if not sep or role not in ROLES or not token:
                self.bad(tokens, f"{k!r} is not 'ROLE:TOKEN' with ROLE one of {', '.join(ROLES)}")


_SCHEMA_TYPES = ("object", "array", "string", "integer", "number", "boolean")


def structural_problems(node: Any, path: str) -> list[str]:
    """Why an openAPIV3Schema is not structural (what apiextensions-apiserver refuses)."""
    if not isinstance(node, dict):
        return [f"{path or '<root>'}: not a schema"]
    out: list[str] = []
    kind = node.get("type")
    free = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
        "x-kubernetes-int-or-string"
    )
    if kind is None and not free:
        out.append(f"{path or '<root>'}: type is missing")
    elif kind is not None and kind not in _SCHEMA_TYPES:
        out.append(f"{path}: unknown type {kind!r}")
    if kind == "array" and "items" not in node:
        out.append(f"{path}: an array needs items")
    for name in node.get("required") or []:
        if name not in (node.get("properties") or {}):
            out.append(f"{path}: required field {name!r} is not a property")
    if node.get("x-kubernetes-list-type") == "map":
        keys = node.get("x-kubernetes-list-map-keys") or []
        item = node.get("items") or {}
        if not keys:
            out.append(f"{path}: a map list needs x-kubernetes-list-map-keys")
        for key in keys:
            if key not in (item.get("required") or []) and "default" not in (
                (item.get("properties") or {}).get(key) or {}
            ):
                out.append(f"{path}: map key {key!r} must be required or defaulted")
    if "enum" in node and kind == "string":
        if not all(isinstance(v, str) for v in node["enum"]):
            out.append(f"{path}: a string enum with a non-string value")
    for name, child in (node.get("properties") or {}).items():
        out += structural_problems(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        out += structural_problems(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        out += structural_problems(node["additionalProperties"], f"{path}.*")
    return out


def check(docs: list[Doc]) -> list[str]:
    return Checker(docs).run()


def expand(role: Doc) -> Iterator[Grant]:
    for rule in role.get("rules") or []:
        names = rule.get("resourceNames") or [None]
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    for name in names:
                        yield (group, resource, verb, name)


def _grant(g: Grant) -> str:
    group, resource, verb, name = g
    return f"{verb} {resource}{'.' + group if group else ''}{f' ({name})' if name else ''}"


def _var(value: str) -> str | None:
    m = re.fullmatch(r"\$\((\w+)\)", value or "")
    return m.group(1) if m else None


def _int_or_str(value: Any) -> int | str:
    return int(value) if str(value).isdigit() else str(value)


def resolve_port(c: Doc, port: Any, protocol: str) -> int | None:
    """The container port a Service targetPort or probe port names, for that protocol."""
    for p in c.get("ports") or []:
        if p.get("protocol", "TCP") != protocol:
            continue
        if (isinstance(port, str) and p.get("name") == port) or p.get("containerPort") == port:
            return int(p["containerPort"])
    return None


def name_of(d: Doc) -> str:
    return str((d.get("metadata") or {}).get("name"))


def namespace_of(d: Doc) -> str | None:
    return (d.get("metadata") or {}).get("namespace")


def spec_of(dep: Doc) -> Doc:
    return ((dep.get("spec") or {}).get("template") or {}).get("spec") or {}


def pod_labels(dep: Doc) -> dict[str, str]:
    return (((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "labels"
    ) or {}


# -- the shipped manifests -------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    return load_docs()


def test_every_file_parses_and_the_set_is_complete(docs: list[Doc]) -> None:
    kinds = sorted(d["kind"] for d in docs)
    for kind in (
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Secret",
        "Service",
        "PodDisruptionBudget",
        "Deployment",
        "CustomResourceDefinition",
    ):
        assert kind in kinds, f"no {kind} in {DEPLOY}"


def _schema_at(crd: Doc, *path: str) -> Doc:
    node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for name in path:
        node = node["items"] if name == "[]" else node["properties"][name]
    return node


def test_the_accesspoint_crd_declares_the_model(docs: list[Doc]) -> None:
    crd = _first(docs, "CustomResourceDefinition", "accesspoints.gtm.io")
    spec = crd["spec"]
    assert (spec["group"], spec["scope"], spec["names"]["kind"]) == (
        "gtm.io",
        "Namespaced",
        "AccessPoint",
    )
    assert spec["names"]["shortNames"] == ["ap"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert {"Phase", "Revision", "Age"} <= set(columns)
    assert _schema_at(crd, "spec", "scope", "clusters")["type"] == "array"
    for template in ("service", "gateway", "virtualService", "destinationRule"):
        for part in ("metadata", "spec"):
            node = _schema_at(crd, "spec", "trafficTemplate", template, part)
            assert node["x-kubernetes-preserve-unknown-fields"] is True, (template, part)
    override = _schema_at(crd, "spec", "overrides", "[]")
    assert set(override["properties"]) == {"clusters", "jsonPatch", "mergePatch"}
    upstream = _schema_at(crd, "spec", "upstreams", "[]")
    assert set(upstream["properties"]) == {
        "accessPoint",
        "namespace",
        "port",
        "weights",
        "tls",
    }
    assert set(upstream["properties"]["port"]["properties"]) == {"number", "name", "protocol"}
    assert set(upstream["properties"]["weights"]["properties"]) == {"local", "remote"}
    assert set(upstream["properties"]["tls"]["properties"]) == {"mode", "sni"}
    assert set(_schema_at(crd, "spec", "gtm")["properties"]) == {"fqdn", "policy", "probe"}
    rollout = _schema_at(crd, "spec", "policy", "rollout")
    assert set(rollout["properties"]) == {"order", "maxInFlight", "pauseAfter", "gate"}
    assert set(rollout["properties"]["gate"]["properties"]) == {"conditions", "timeout"}
    assert "conflictResolution" in _schema_at(crd, "spec")["properties"]
    status = _schema_at(crd, "status")["properties"]
    assert {"observedGeneration", "clusters", "vips", "rollout", "conditions"} <= set(status)
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_the_simulated_clusters_serve_the_deployed_crd(docs: list[Doc]) -> None:
    """kubesim loads the manifest itself: the two cannot disagree."""
    from chaos.kubesim.crd import ACCESS_POINT_CRD, access_point

    assert ACCESS_POINT_CRD.resolve() == (DEPLOY / "accesspoint-crd.yaml").resolve()
    crd = _first(docs, "CustomResourceDefinition", "accesspoints.gtm.io")
    assert access_point().openapi == crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_the_manifests_have_no_problems(docs: list[Doc]) -> None:
    problems = check(docs)
    assert not problems, "\n".join(problems)


def test_sample_config_is_a_valid_kubernetes_estate(docs: list[Doc]) -> None:
    c = Checker(docs)
    c.run()
    assert c.inventory is not None
    cfg = c.inventory.config
    assert cfg.ha.lease.backend == cfg.ha.store.backend == "kubernetes"
    assert [k.in_cluster for k in cfg.kubernetes.clusters if k.region == c.region] == [True]
    dep = c.of("Deployment")[0]
    assert spec_of(dep)["terminationGracePeriodSeconds"] > cfg.ha.lease.renew_deadline
    assert cfg.ha.lease.renew_deadline < cfg.ha.lease.duration


def test_rbac_is_exactly_what_gtm_needs(docs: list[Doc]) -> None:
    got: dict[tuple[str, str], set[str]] = {}
    for role in [d for d in docs if d["kind"] in ("Role", "ClusterRole")]:
        for group, resource, verb, _ in expand(role):
            got.setdefault((group, resource), set()).add(verb)
    assert got == {
        ("networking.istio.io", "workloadentries"): {
            "get", "list", "watch", "patch", "create", "delete",
        },
        ("networking.istio.io", "workloadentries/status"): {"get", "patch"},
        ("networking.istio.io", "serviceentries"): {"get", "list", "watch", "create", "patch", "delete"},
        ("networking.istio.io", "destinationrules"): {
            "get", "list", "watch", "create", "patch", "delete",
        },
        ("networking.istio.io", "gateways"): {"get", "list", "create", "patch", "delete"},
        ("networking.istio.io", "virtualservices"): {"get", "list", "create", "patch", "delete"},
        ("", "services"): {"get", "list", "create", "patch", "delete"},
        ("gtm.io", "accesspoints"): {"get", "list"},
        ("gtm.io", "accesspoints/status"): {"patch"},
        ("coordination.k8s.io", "leases"): {"get", "create", "update"},
        ("", "configmaps"): {"get", "create", "update", "patch"},
        ("", "secrets"): {"get", "list"},
    }  # fmt: skip


def test_kustomization_lists_every_manifest() -> None:
    kust = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == sorted(p.name for p in manifest_files())


def test_readme_names_the_operator_caveats() -> None:
    text = (DEPLOY / "README.md").read_text()
    for needle in (
        'proxy.istio.io/health-checks-enabled: "true"',
        "ambient",
        "localityLbSetting.distribute",
        "weight: 0",
        "kubectl apply -k",
    ):
        assert needle in text, f"README.md does not mention {needle!r}"


# -- the checker catches what it is for --------------------------------------------------------


def _first(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    return next(d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"]))


def _container(docs: list[Doc]) -> Doc:
    return spec_of(_first(docs, "Deployment"))["containers"][0]


def _estate(docs: list[Doc], edit: Callable[[str], str]) -> None:
    cm = _first(docs, "ConfigMap", "gtm-config")
    cm["data"]["estate.yaml"] = edit(cm["data"]["estate.yaml"])


def _estate_data(docs: list[Doc], edit: Callable[[Doc], None]) -> None:
    def change(text: str) -> str:
        data = yaml.safe_load(text)
        edit(data)
        return yaml.safe_dump(data, sort_keys=False)

    _estate(docs, change)


def _lease_in_other_cluster(estate: Doc) -> None:
    estate["kubernetes"]["clusters"].append({"name": "other", "region": "dc1", "kubeconfig": "k"})
    estate["ha"]["lease"]["cluster"] = "other"


def _role_rule(docs: list[Doc], name: str, resource: str) -> Doc:
    role = _first(docs, "Role", name)
    return next(r for r in role["rules"] if resource in r["resources"])


def _cluster_wide(docs: list[Doc]) -> None:
    """The gtm-mesh Role and RoleBinding made a ClusterRole and a ClusterRoleBinding."""
    role, binding = _first(docs, "Role", "gtm-mesh"), _first(docs, "RoleBinding", "gtm-mesh")
    role["kind"], binding["kind"] = "ClusterRole", "ClusterRoleBinding"
    binding["roleRef"]["kind"] = "ClusterRole"
    del role["metadata"]["namespace"], binding["metadata"]["namespace"]


BREAKAGES: dict[str, tuple[Callable[[list[Doc]], None], str]] = {
    "selector-mismatch": (
        lambda d: _first(d, "Deployment")["spec"]["selector"]["matchLabels"].update(
            {"app.kubernetes.io/component": "other"}
        ),
        "spec.selector does not select the pod template's labels",
    ),
    "service-selects-other-pods": (
        lambda d: _first(d, "Service", "gtm-api")["spec"]["selector"].update(app="x"),
        "Service gtm-system/gtm-api: spec.selector does not select",
    ),
    "dns-target-port-wrong": (
        lambda d: _first(d, "Service", "gtm-dns")["spec"]["ports"][0].update(targetPort=53),
        "targetPort 53 is not a container port",
    ),
    "dns-tcp-missing": (
        lambda d: _first(d, "Service", "gtm-dns")["spec"]["ports"].pop(),
        "no Service maps both UDP and TCP 53",
    ),
    "dns-source-ip-lost": (
        lambda d: _first(d, "Service", "gtm-dns")["spec"].update(externalTrafficPolicy="Cluster"),
        "externalTrafficPolicy must be Local",
    ),
    "replicas-3": (
        lambda d: _first(d, "Deployment")["spec"].update(replicas=3),
        "replicas is 3, want 2",
    ),
    "anti-affinity-only-preferred": (
        lambda d: spec_of(_first(d, "Deployment"))["affinity"].update(
            podAntiAffinity={"preferredDuringSchedulingIgnoredDuringExecution": []}
        ),
        "no required pod anti-affinity",
    ),
    "no-zone-spread": (
        lambda d: spec_of(_first(d, "Deployment")).pop("topologySpreadConstraints"),
        "no preference to spread its pods over topology.kubernetes.io/zone",
    ),
    "pdb-selects-nothing": (
        lambda d: _first(d, "PodDisruptionBudget")["spec"]["selector"].update(
            matchLabels={"app.kubernetes.io/name": "nope"}
        ),
        "PodDisruptionBudget gtm-system/gtm: spec.selector does not select",
    ),
    "pdb-min-available-2": (
        lambda d: _first(d, "PodDisruptionBudget")["spec"].update(minAvailable=2),
        "minAvailable is 2, want 1",
    ),
    "readiness-port-wrong": (
        lambda d: _container(d)["readinessProbe"]["httpGet"].update(port=9999),
        "readinessProbe port 9999 is not a container port",
    ),
    "liveness-path-wrong": (
        lambda d: _container(d)["livenessProbe"]["httpGet"].update(path="/"),
        "livenessProbe must be an httpGet of /healthz",
    ),
    "no-scrape-annotation": (
        lambda d: _first(d, "Deployment")["spec"]["template"]["metadata"]["annotations"].clear(),
        "prometheus.io/scrape",
    ),
    "no-memory-limit": (
        lambda d: _container(d)["resources"]["limits"].pop("memory"),
        "resources.limits.memory is missing",
    ),
    "writable-root": (
        lambda d: _container(d)["securityContext"].update(readOnlyRootFilesystem=False),
        "readOnlyRootFilesystem is not true",
    ),
    "net-bind-service": (
        lambda d: _container(d)["securityContext"]["capabilities"].update(add=["NET_BIND_SERVICE"]),
        "capabilities.add",
    ),
    "grace-too-short": (
        lambda d: spec_of(_first(d, "Deployment")).update(terminationGracePeriodSeconds=10),
        "terminationGracePeriodSeconds 10 must be set and longer than ha.lease.renew_deadline",
    ),
    "unknown-serve-flag": (
        lambda d: _container(d)["args"].append("--verbose"),
        "gtm serve flag '--verbose'",
    ),
    "member-not-pod-name": (
        lambda d: _container(d)["env"][0].update(valueFrom=None, value="gtm-0"),
        "--member must be the pod name",
    ),
    "config-invalid": (
        lambda d: _estate(d, lambda t: t.replace("renew_deadline: 10s", "renew_deadline: 20s")),
        "config does not validate",
    ),
    "config-file-lease": (
        lambda d: _estate(d, lambda t: t.replace("backend: kubernetes", "backend: file", 1)),
        "ha.lease.backend must be kubernetes",
    ),
    "config-lease-elsewhere": (
        lambda d: _estate_data(d, _lease_in_other_cluster),
        "ha.lease.cluster 'other' is not this region's in_cluster cluster",
    ),
    "config-region-unknown": (
        lambda d: _first(d, "ConfigMap", "gtm-config")["data"].update(region="dc9"),
        "--region 'dc9' is not a region of the config",
    ),
    "config-dns-on-loopback": (
        lambda d: _estate(d, lambda t: t.replace("0.0.0.0:5353", "127.0.0.1:5353")),
        "dns.listen 127.0.0.1:5353 is not reachable",
    ),
    "rbac-wildcard-verb": (
        lambda d: _role_rule(d, "gtm-mesh", "workloadentries").update(verbs=["*"]),
        "rules[0].verbs has '*'",
    ),
    "rbac-extra-verb": (
        lambda d: _role_rule(d, "gtm-mesh", "workloadentries")["verbs"].append("delete"),
        "grants more than gtm needs: delete workloadentries.networking.istio.io",
    ),
    "rbac-status-patch-missing": (
        lambda d: _role_rule(d, "gtm-mesh", "workloadentries/status").update(verbs=["get"]),
        "missing patch workloadentries/status.networking.istio.io",
    ),
    "rbac-write-serviceentries": (
        lambda d: _role_rule(d, "gtm-mesh", "serviceentries")["verbs"].append("update"),
        "grants more than gtm needs: update serviceentries",
    ),
    "rbac-any-configmap": (
        lambda d: _role_rule(d, "gtm", "configmaps").pop("resourceNames"),
        "grants more than gtm needs: get configmaps in namespace gtm-system",
    ),
    "rbac-create-by-name": (
        lambda d: _first(d, "Role", "gtm")["rules"][1].update(resourceNames=["gtm-leader"]),
        "create cannot be limited by resourceNames",
    ),
    "rbac-other-secret": (
        lambda d: _role_rule(d, "gtm", "secrets").update(resourceNames=["other"]),
        "missing get secrets (gtm-api-tokens)",
    ),
    "rbac-cluster-wide-wle": (
        lambda d: _cluster_wide(d),
        "grants more than gtm needs: get workloadentries.networking.istio.io in namespace *",
    ),
    "sa-not-bound": (
        lambda d: [b.update(subjects=[]) for b in d if b["kind"] == "RoleBinding"],
        "the ServiceAccount 'gtm' is bound to no role",
    ),
    "sa-missing": (
        lambda d: spec_of(_first(d, "Deployment")).update(serviceAccountName="other"),
        "serviceAccountName 'other' is not a ServiceAccount defined here",
    ),
    "namespace-missing": (
        lambda d: _first(d, "Service", "gtm-dns")["metadata"].pop("namespace"),
        "Service gtm-dns: metadata.namespace is missing",
    ),
    "secret-not-placeholder": (
        lambda d: _first(d, "Secret", "gtm-api-tokens")["stringData"].update(
            ops="operator:hunter2"
        ),
        "sample value of 'ops' is not marked as a placeholder",
    ),
}


def _crd_schema(docs: list[Doc]) -> Doc:
    crd = _first(docs, "CustomResourceDefinition")
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


BREAKAGES.update(
    {
        "crd name not plural.group": (
            lambda d: _first(d, "CustomResourceDefinition")["metadata"].update(name="aps.gtm.io"),
            "metadata.name must be accesspoints.gtm.io",
        ),
        "crd without a storage version": (
            lambda d: _first(d, "CustomResourceDefinition")["spec"]["versions"][0].update(
                storage=False
            ),
            "0 storage versions, want exactly one",
        ),
        "crd schema node without a type": (
            lambda d: _crd_schema(d)["properties"]["spec"]["properties"]["gtm"].pop("type"),
            ".spec.gtm: type is missing",
        ),
        "crd map list without keys": (
            lambda d: _crd_schema(d)["properties"]["status"]["properties"]["conditions"].pop(
                "x-kubernetes-list-map-keys"
            ),
            ".status.conditions: a map list needs x-kubernetes-list-map-keys",
        ),
        "crd status subresource without a status schema": (
            lambda d: _crd_schema(d)["properties"].pop("status"),
            "a status subresource without a status schema",
        ),
    }
)


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_a_broken_manifest_is_caught(docs: list[Doc], name: str) -> None:
    broken = copy.deepcopy(docs)
    breaker, expected = BREAKAGES[name]
    breaker(broken)
    problems = check(broken)
    assert any(expected in p for p in problems), f"{expected!r} not in:\n" + "\n".join(problems)


def test_cluster_wide_rbac_is_accepted_when_gtm_watches_every_namespace(docs: list[Doc]) -> None:
    """The documented variant: `namespace: null` in the config, ClusterRole + ClusterRoleBinding."""
    wide = copy.deepcopy(docs)
    _cluster_wide(wide)
    _estate(wide, lambda t: t.replace("namespace: gtm-mesh", "namespace: null"))
    problems = check(wide)
    assert not problems, "\n".join(problems)


# -- external validators, when the machine has one --------------------------------------------


def test_kustomize_build_yields_the_same_objects(docs: list[Doc]) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("not run: kubectl is not on PATH")
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    built = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert sorted(map(ident, built)) == sorted(map(ident, docs))


def test_strict_schema_validation_offline() -> None:
    """kubeconform with local schemas, or kubernetes-validate (bundled schemas), in strict mode."""
    files = [str(p) for p in manifest_files()]
    kubeconform = shutil.which("kubeconform")
    schemas = os.environ.get("GTM_KUBECONFORM_SCHEMAS")  # a local dir or template: no network
    if kubeconform and schemas:
        out = subprocess.run(
            [kubeconform, "-strict", "-summary", "-schema-location", schemas, *files],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return
    if importlib.util.find_spec("kubernetes_validate") is not None:
        kubernetes_validate = importlib.import_module("kubernetes_validate")
        problems = []
        for doc in load_docs():
            try:
                kubernetes_validate.validate(doc, "1.30.0", strict=True)
            except kubernetes_validate.ValidationError as e:
                problems.append(f"{ident(doc)}: {e.message}")
        assert not problems, "\n".join(problems)
        return
    why = []
    if kubeconform:
        why.append("kubeconform is on PATH but GTM_KUBECONFORM_SCHEMAS names no local schemas")
    else:
        why.append("kubeconform is not on PATH")
    why.append("the kubernetes-validate package is not installed")
    if shutil.which("kubectl"):
        why.append("kubectl validates only against a live API server")
    pytest.skip("not run: " + "; ".join(why))
