"""`KubeLease`: the lease as a `coordination.k8s.io/v1` Lease, through `kube.Client`.

    holderIdentity        the leader's identity (absent when released)
    leaseDurationSeconds  the duration, rounded up to whole seconds (at least 1)
    acquireTime/renewTime MicroTime strings formatted here (six digits and Z)
    leaseTransitions      the fencing epoch
    annotations["gtm.io/leader-address"]  where the leader takes writes

Create when missing (409: another member created it first), replace with
the resourceVersion read (409: someone else wrote since). Bodies are plain
JSON dicts with the MicroTime strings formatted here — the client would
otherwise serialise a datetime with `isoformat()`, which a real API server
rejects when the microseconds are zero. Answers come back raw (the client's
JSON) and are parsed here, so timestamps are aware UTC datetimes whatever the
host's time zone. Labels, other annotations and Lease fields gtm does not
manage are kept from the object read. Each call is one attempt (`NO_RETRY`):
the elector's loop is the retry, paced by its retry period.
"""

from __future__ import annotations

import copy
import math
from functools import partial
from types import TracebackType
from typing import Any

from gtm.ha.microtime import format_micro_time, optional_micro_time
from gtm.ha.record import LeaseConflict, LeaseRecord, LeaseUnavailable
from kube import NO_RETRY, Call, Client, Configuration, Conflict, KubeError, NotFound

ADDRESS_ANNOTATION = "gtm.io/leader-address"
API_VERSION = "coordination.k8s.io/v1"
DEFAULT_TIMEOUT = 10.0  # seconds per request, when not given (the elector bounds it too)


class KubeLease:
    def __init__(self, client: Client, *, name: str, namespace: str) -> None:
        self._client = client
        self._api = client.coordination
        self.name = name
        self.namespace = namespace
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
        """A KubeLease with its own client, closed by `aclose()` / leaving `async with`."""
        client = Client(configuration, timeout=request_timeout or DEFAULT_TIMEOUT, retry=NO_RETRY)
        return cls(client, name=name, namespace=namespace)

    def __repr__(self) -> str:
        return f"KubeLease({self.namespace}/{self.name})"

    async def aclose(self) -> None:
        await self._client.aclose()  # closes the connection only if the client opened it

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
        try:
            body = await self._send(
                "get", partial(self._api.read_namespaced_lease, self.name, self.namespace)
            )
        except NotFound:
            return None
        except KubeError as error:
            raise self._unavailable("read", error) from error
        return self._stored(body)

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        call = partial(self._api.create_namespaced_lease, self.namespace, self._body(record, None))
        try:
            body = await self._send("create", call)
        except Conflict as error:
            raise LeaseConflict(
                f"Lease {self.namespace}/{self.name} exists: {error.message or error.reason}"
            ) from error
        except KubeError as error:
            raise self._unavailable("create", error) from error
        return self._stored(body)

    async def update(self, record: LeaseRecord, expected_version: str) -> LeaseRecord:
        call = partial(
            self._api.replace_namespaced_lease,
            self.name,
            self.namespace,
            self._body(record, expected_version),
        )
        try:
            body = await self._send("replace", call)
        except (Conflict, NotFound) as error:
            raise LeaseConflict(
                f"Lease {self.namespace}/{self.name} changed since version"
                f" {expected_version}: {error.message or error.reason}"
            ) from error
        except KubeError as error:
            raise self._unavailable("replace", error) from error
        return self._stored(body)

    # -- wire -------------------------------------------------------------------------

    async def _send(self, verb: str, call: Call) -> dict[str, Any]:
        return await self._client.request(verb, call, what=f"{self.namespace}/{self.name}")

    def _unavailable(self, verb: str, error: KubeError) -> LeaseUnavailable:
        return LeaseUnavailable(f"{verb} Lease {self.namespace}/{self.name}: {error}")

    def _stored(self, body: dict[str, Any]) -> LeaseRecord:
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
