"""The status in the shape `chaos.drills.samples` still builds it, read as `gtm.status`.

That file (changed in another work in progress) makes a status from what the
drills sampled with `admitted: {dns, mesh}`, `mesh_generation` and override
ids in `intent.active`; `MemberStatus.model_validate` here turns that into
the one `gtm.status.MemberStatus`. It goes once samples builds
`gtm.status.MemberStatus` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gtm.status import MemberStatus as Status
from gtm.status import StatusError, read_status


class MemberStatus:
    @staticmethod
    def model_validate(data: Mapping[str, Any]) -> Status:
        doc = dict(data)
        admitted = doc.pop("admitted", None) or {}
        layers = {
            "dns_admitted": admitted.get("dns", []),
            "mesh_admitted": admitted.get("mesh", []),
            "mesh_generation": doc.pop("mesh_generation", None),
        }
        intent = dict(doc.get("intent") or {})
        intent["active"] = [
            o if isinstance(o, Mapping) else {"id": o} for o in intent.get("active", [])
        ]
        return Status.model_validate({**doc, "intent": intent, "layers": layers})


__all__ = ["MemberStatus", "StatusError", "read_status"]
