"""AccessPoints: one resource per traffic entry, rendered into every cluster of its scope.

Pure: the model (`model`), the overrides (`patches`: RFC 6902 JSON patch, RFC 7386
merge patch), the render of one AP for one cluster with its upstreams' WorkloadEntries
and ServiceEntries (`render`), their weights (`weights`), and the plan of one cluster
(`plan`: create / update with the changed fields / delete, from what the cluster holds).
Imports nothing else of the project; the controller that applies plans lives above.
"""

from accesspoints.model import (
    AccessPoint,
    AccessPointError,
    Override,
    Upstream,
    parse_accesspoint,
)
from accesspoints.patches import PatchError, apply_overrides, merge_patch
from accesspoints.plan import Change, ClusterPlan, plan_cluster
from accesspoints.render import (
    LABEL_ACCESSPOINT,
    LABEL_MANAGED,
    LABEL_SERVICE,
    LABEL_UPSTREAM,
    Cluster,
    Rendered,
    UpstreamVip,
    render,
    upstream_host,
)
from accesspoints.weights import split_weights

__all__ = [
    "LABEL_ACCESSPOINT",
    "LABEL_MANAGED",
    "LABEL_SERVICE",
    "LABEL_UPSTREAM",
    "AccessPoint",
    "AccessPointError",
    "Change",
    "Cluster",
    "ClusterPlan",
    "Override",
    "PatchError",
    "Rendered",
    "Upstream",
    "UpstreamVip",
    "apply_overrides",
    "merge_patch",
    "parse_accesspoint",
    "plan_cluster",
    "render",
    "split_weights",
    "upstream_host",
]
