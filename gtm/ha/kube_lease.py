"""`KubeLease`: the lease as a `coordination.k8s.io/v1` Lease, through kubernetes-asyncio.

    holderIdentity        the leader's identity (absent when released)
    leaseDurationSeconds  the duration, rounded up to whole seconds (at least 1)
    acquireTime/renewTime MicroTime strings formatted here (six digits and Z)
    leaseTransitions      the fencing epoch
    annotations["gtm.io/leader-address"]  where the leader takes writes

Create when missing (409: another member created it first), replace with
the resourceVersion read (409: someone else wrote since). Bodies are plain
JSON dicts with the MicroTime strings formatted here — the client would
otherwise serialise a datetime with `isoformat()`, which a real API server
rejects when the microseconds are zero. Answers are read raw
(`_preload_content=False`) and parsed here, so timestamps come back as aware
UTC datetimes whatever the host's time zone. Labels, other annotations and
Lease fields gtm does not manage are kept from the object read.
"""

from __future__ import annotations

import copy
import json
import math
from types import TracebackType
from typing import Any

from kubernetes_asyncio.client import ApiClient, Configuration, CoordinationV1Api

from gtm.ha.microtime import format_micro_time, optional_micro_time
from gtm.ha.record import LeaseConflict, LeaseRecord, LeaseUnavailable

ADDRESS_ANNOTATION = "gtm.io/leader-address"
API_VERSION = "coordination.k8s.io/v1"


class KubeLease:
    def __init__(
        self,
        api_client: ApiClient,
        *,
        name: str,
        namespace: str,
        request_timeout: float | None = None,
        owns_client: bool = False,
    ) -> None:
        self._client = api_client
        self._api = CoordinationV1Api(api_client)
        self.name = name
        self.namespace = namespace
        self.request_timeout = request_timeout  # also passed to aiohttp, besides the elector's
        self._owns_client = owns_client
        self._last: dict[str, Any] | None = None  # the object last read or written

    @classmethod
    def from_configuration(
        cls,
        configuration: Configuration,
        *,
        name: str,
        namespace: str,
        request_timeout: float | None = None,
    ) -> KubeLease:
        """A KubeLease with its own ApiClient, closed by `aclose()` / leaving `async with`."""
        return cls(
            ApiClient(configuration),
            name=name,
            namespace=namespace,
            request_timeout=request_timeout,
            owns_client=True,
        )

    def __repr__(self) -> str:
        return f"KubeLease({self.namespace}/{self.name})"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.close()

    async def __aenter__(self) -> KubeLease:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the backend ------------------------------------------------------------------

    async def get(self) -> LeaseRecord | None:
        status, body = await self._send(
            self._api.read_namespaced_lease(self.name, self.namespace, **self._options())
        )
        if status == 404:
            return None
        return self._stored(status, body, "read")

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        status, body = await self._send(
            self._api.create_namespaced_lease(
                self.namespace, self._body(record, None), **self._options()
            )
        )
        if status == 409:
            raise LeaseConflict(f"Lease {self.namespace}/{self.name} exists: {_message(body)}")
        return self._stored(status, body, "create")

    async def update(self, record: LeaseRecord, expected_version: str) -> LeaseRecord:
        status, body = await self._send(
            self._api.replace_namespaced_lease(
                self.name,
                self.namespace,
                self._body(record, expected_version),
                **self._options(),
            )
        )
        if status in (404, 409):
            raise LeaseConflict(
                f"Lease {self.namespace}/{self.name} changed since version"
                f" {expected_version}: {_message(body)}"
            )
        return self._stored(status, body, "replace")

    # -- wire -------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"_preload_content": False}
        if self.request_timeout is not None:
            options["_request_timeout"] = self.request_timeout
        return options

    async def _send(self, request: Any) -> tuple[int, dict[str, Any]]:
        response = await request
        async with response:
            raw = await response.read()
            status = int(response.status)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"message": raw[:200].decode("utf-8", "replace")}
        return status, body if isinstance(body, dict) else {}

    def _stored(self, status: int, body: dict[str, Any], verb: str) -> LeaseRecord:
        if not 200 <= status < 300:
            raise LeaseUnavailable(
                f"{verb} Lease {self.namespace}/{self.name}: {status} {_message(body)}"
            )
        try:
            record = decode(body)
        except (ValueError, KeyError, TypeError) as error:
            raise LeaseUnavailable(
                f"unreadable Lease {self.namespace}/{self.name}: {error}"
            ) from error
        self._last = body
        return record

    def _body(self, record: LeaseRecord, resource_version: str | None) -> dict[str, Any]:
        """The whole Lease to send, starting from the object last seen at this version."""
        base: dict[str, Any] = {}
        last = self._last
        if last is not None and resource_version is not None:
            if (last.get("metadata") or {}).get("resourceVersion") == resource_version:
                base = copy.deepcopy(last)
        metadata = {
            key: value
            for key, value in (base.get("metadata") or {}).items()
            if key in ("labels", "annotations", "ownerReferences", "finalizers")
        }
        annotations = dict(metadata.get("annotations") or {})
        if record.address:
            annotations[ADDRESS_ANNOTATION] = record.address
        else:
            annotations.pop(ADDRESS_ANNOTATION, None)
        metadata.update(name=self.name, namespace=self.namespace, annotations=annotations)
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": API_VERSION,
            "kind": "Lease",
            "metadata": metadata,
            "spec": encode_spec(record, base.get("spec") or {}),
        }


def encode_spec(record: LeaseRecord, keep: dict[str, Any]) -> dict[str, Any]:
    """The Lease spec for `record`, keeping the fields of `keep` gtm does not manage."""
    spec = {
        key: value
        for key, value in keep.items()
        if key not in ("holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime")
    }
    if record.holder:
        spec["holderIdentity"] = record.holder
    spec["leaseDurationSeconds"] = max(1, math.ceil(record.duration))
    if record.acquire_time is not None:
        spec["acquireTime"] = format_micro_time(record.acquire_time)
    if record.renew_time is not None:
        spec["renewTime"] = format_micro_time(record.renew_time)
    spec["leaseTransitions"] = record.transitions
    return spec


def decode(lease: dict[str, Any]) -> LeaseRecord:
    metadata = lease["metadata"]
    spec = lease.get("spec") or {}
    annotations = metadata.get("annotations") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or None,
        address=annotations.get(ADDRESS_ANNOTATION) or None,
        acquire_time=optional_micro_time(spec.get("acquireTime")),
        renew_time=optional_micro_time(spec.get("renewTime")),
        duration=float(spec.get("leaseDurationSeconds") or 0),
        transitions=int(spec.get("leaseTransitions") or 0),
        version=str(metadata["resourceVersion"]),
    )


def _message(body: dict[str, Any]) -> str:
    return str(body.get("message") or body.get("reason") or "no message")
