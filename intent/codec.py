"""The JSON forms of an operator override and of a guardrail's refusal.

One codec each, shared by the intent state, the audit, the member's status and
the API's answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.guardrails import Refusal
from policies.overrides import Kind, Override


def override_to_dict(o: Override) -> dict[str, Any]:
    return {
        "id": o.id,
        "kind": o.kind.value,
        "region": o.region,
        "who": o.who,
        "why": o.why,
        "created": o.created,
        "services": None if o.services is None else sorted(o.services),
        "ticket": o.ticket,
        "expires": o.expires,
        "ramp": o.ramp,
        "force": o.force,
    }


def override_from_dict(d: Mapping[str, Any]) -> Override:
    """Raises ValueError (with the field) on anything that is not an override."""
    try:
        services = d.get("services")
        return Override(
            id=str(d["id"]),
            kind=Kind(d["kind"]),
            region=str(d["region"]),
            who=str(d["who"]),
            why=str(d["why"]),
            created=float(d["created"]),
            services=None if services is None else frozenset(str(s) for s in services),
            ticket=None if d.get("ticket") is None else str(d["ticket"]),
            expires=None if d.get("expires") is None else float(d["expires"]),
            ramp=None if d.get("ramp") is None else float(d["ramp"]),
            force=bool(d.get("force", False)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"not an override: {e!r} in {dict(d)!r:.200}") from e


def refusal_to_dict(r: Refusal) -> dict[str, Any]:
    return {
        "override_id": r.override_id,
        "rule": r.rule,
        "message": r.message,
        "services": list(r.services),
    }
