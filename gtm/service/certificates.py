"""An AccessPoint's certificates in one cluster: the Secrets its Gateways' TLS servers name.

A Gateway server's `tls.credentialName` names a Secret with `tls.crt`/`tls.key`
(or `cert`/`key`); gtm reads it in the Gateway's namespace and takes `notAfter`
of the first certificate of `tls.crt` (the leaf). A Secret that is missing, has
no certificate, or has one that does not parse is a problem; so is a certificate
with fewer than the configured days left (`accesspoints.certificate_days`).
cert-manager's `Ready` says more, for the Secrets it manages; this reads what
istiod would serve, whoever wrote it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from gtm.service.accesspoint_apply import ClusterObjects, Snapshot

KEYS = ("tls.crt", "cert")  # where a Secret holds the certificate, in istiod's order


@dataclass(frozen=True)
class Certificate:
    secret: str  # namespace/name
    not_after: datetime | None = None
    days_left: int | None = None
    problem: str | None = None  # None: valid for long enough

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {"secret": self.secret}
        if self.not_after is not None:
            out["notAfter"] = self.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
            out["daysLeft"] = self.days_left
        if self.problem is not None:
            out["problem"] = self.problem
        return out


def credential_names(objects: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(namespace, Secret name) of each TLS server of the rendered Gateways, once each."""
    found: dict[tuple[str, str], None] = {}
    for obj in objects:
        if obj.get("kind") != "Gateway":
            continue
        namespace = str((obj.get("metadata") or {}).get("namespace", ""))
        for server in (obj.get("spec") or {}).get("servers") or []:
            tls = server.get("tls") if isinstance(server, Mapping) else None
            name = tls.get("credentialName") if isinstance(tls, Mapping) else None
            if isinstance(name, str) and name:
                found[(namespace, name)] = None
    return list(found)


def not_after(secret: Mapping[str, Any]) -> datetime:
    """The leaf certificate's end of validity (`ValueError`: why there is none)."""
    data = secret.get("data") or {}
    key = next((k for k in KEYS if data.get(k)), None)
    if key is None:
        raise ValueError(f"no {' or '.join(KEYS)} in the Secret")
    try:
        pem = base64.b64decode(data[key], validate=True)
        leaf = x509.load_pem_x509_certificates(pem)[0]
    except (binascii.Error, ValueError, IndexError) as e:
        raise ValueError(f"{key} is not a PEM certificate ({e})") from None
    return leaf.not_valid_after_utc


async def check(
    objects: ClusterObjects | Snapshot,
    rendered: Iterable[Mapping[str, Any]],
    now: datetime,
    min_days: int,
) -> list[Certificate]:
    """Each named Secret's certificate in the cluster (`KubeError`: it could not be read)."""
    out = []
    for namespace, name in credential_names(rendered):
        ref = f"{namespace}/{name}"
        secret = await objects.secret(namespace, name)
        if secret is None:
            out.append(Certificate(ref, problem=f"Secret {ref} not found"))
            continue
        try:
            end = not_after(secret)
        except ValueError as e:
            out.append(Certificate(ref, problem=f"Secret {ref}: {e}"))
            continue
        days = int((end - now).total_seconds() // 86400)
        problem = None
        if end <= now:
            problem = f"Secret {ref}: expired at {end:%Y-%m-%dT%H:%M:%SZ}"
        elif days < min_days:
            problem = f"Secret {ref}: {days} days left (fewer than {min_days})"
        out.append(Certificate(ref, end, days, problem))
    return out
