"""KubeLease against the simulated API server, through the real kubernetes-asyncio client."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest
from kubernetes_asyncio.client import (
    ApiClient,
    CoordinationV1Api,
    V1Lease,
    V1LeaseSpec,
    V1ObjectMeta,
)
from kubernetes_asyncio.client.exceptions import ApiException

from chaos.kubesim import Faults, KubeSim
from gtm.ha import (
    ADDRESS_ANNOTATION,
    ElectionSettings,
    Elector,
    KubeLease,
    LeaseConflict,
    LeaseRecord,
    LeaseUnavailable,
)
from probes.clock import ManualClock

WHOLE_SECOND = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # zero microseconds: the pitfall
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def stored_leases(sim: KubeSim) -> list[dict]:
    return sim.objects("coordination.k8s.io", "v1", "leases", "gtm")


async def test_an_elector_creates_a_lease_the_server_accepts(sim: KubeSim) -> None:
    async with KubeLease.from_configuration(
        sim.configuration(), name="gtm-leader", namespace="gtm"
    ) as lease:
        elector = Elector(
            lease,
            ElectionSettings("dc1-a", address="http://10.0.0.1:8080", duration=15.5),
            clock=ManualClock(wall=WHOLE_SECOND),
        )
        await elector.attempt()
        assert elector.is_leader() and elector.epoch == 1
    [stored] = stored_leases(sim)
    spec = stored["spec"]
    assert spec["holderIdentity"] == "dc1-a"
    assert spec["acquireTime"] == spec["renewTime"] == "2026-11-24T10:00:00.000000Z"
    assert spec["leaseDurationSeconds"] == 16, "whole seconds, rounded up"
    assert spec["leaseTransitions"] == 1
    assert stored["metadata"]["annotations"] == {ADDRESS_ANNOTATION: "http://10.0.0.1:8080"}


async def test_the_clients_own_datetime_serialisation_is_what_gets_rejected(
    sim: KubeSim,
) -> None:
    """Why KubeLease formats MicroTime itself (the server's rule, seen from here)."""
    async with ApiClient(sim.configuration()) as client:
        body = V1Lease(
            metadata=V1ObjectMeta(name="naive"),
            spec=V1LeaseSpec(holder_identity="x", renew_time=WHOLE_SECOND),
        )
        with pytest.raises(ApiException) as error:
            await CoordinationV1Api(client).create_namespaced_lease("gtm", body)
        assert error.value.status == 400


async def test_round_trip_and_compare_and_swap(sim: KubeSim) -> None:
    async with (
        KubeLease.from_configuration(sim.configuration(), name="gtm-leader", namespace="gtm") as a,
        KubeLease.from_configuration(sim.configuration(), name="gtm-leader", namespace="gtm") as b,
    ):
        assert await a.get() is None
        first = LeaseRecord("dc1-a", "http://a", WHOLE_SECOND, WHOLE_SECOND, 2.0, 1)
        created = await a.create(first)
        assert created.version and created == LeaseRecord(
            "dc1-a", "http://a", WHOLE_SECOND, WHOLE_SECOND, 2.0, 1, created.version
        )
        read = await b.get()
        assert read == created
        assert read is not None and read.renew_time is not None
        assert read.renew_time.tzinfo is UTC
        with pytest.raises(LeaseConflict):
            await b.create(first)
        taken = await b.update(
            LeaseRecord("dc1-b", "http://b", WHOLE_SECOND, WHOLE_SECOND, 2.0, 2), created.version
        )
        assert taken.version != created.version
        with pytest.raises(LeaseConflict, match="changed since"):
            await a.update(first, created.version)
        released = await b.update(
            LeaseRecord(None, None, WHOLE_SECOND, WHOLE_SECOND, 2.0, 2), taken.version
        )
        assert released.holder is None and released.address is None
    [stored] = stored_leases(sim)
    assert "holderIdentity" not in stored["spec"]
    assert ADDRESS_ANNOTATION not in (stored["metadata"].get("annotations") or {})
    assert all(MICRO_TIME.match(stored["spec"][k]) for k in ("acquireTime", "renewTime"))


async def test_labels_annotations_and_unmanaged_fields_survive_renewals(sim: KubeSim) -> None:
    sim.seed(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": "gtm-leader",
                "namespace": "gtm",
                "labels": {"app": "gtm"},
                "annotations": {"team": "traffic"},
            },
            "spec": {"leaseTransitions": 7, "strategy": "OldestEmulationVersion"},
        }
    )
    async with KubeLease.from_configuration(
        sim.configuration(), name="gtm-leader", namespace="gtm"
    ) as lease:
        elector = Elector(lease, ElectionSettings("dc1-a", address="http://a"))
        await elector.attempt()
        await elector.attempt()
        assert elector.epoch == 8
    [stored] = stored_leases(sim)
    assert stored["metadata"]["labels"] == {"app": "gtm"}
    assert stored["metadata"]["annotations"] == {"team": "traffic", ADDRESS_ANNOTATION: "http://a"}
    assert stored["spec"]["strategy"] == "OldestEmulationVersion"
    assert stored["spec"]["leaseTransitions"] == 8


async def test_server_errors_are_unavailable_not_conflicts(sim: KubeSim) -> None:
    async with KubeLease.from_configuration(
        sim.configuration(), name="gtm-leader", namespace="gtm"
    ) as lease:
        sim.faults.set(Faults(error_rate=1.0, seed=1))
        with pytest.raises(LeaseUnavailable, match="500"):
            await lease.get()
        sim.faults.clear()
    assert sim.stats()["by_code"] == {"500": 1}, "one attempt: the elector's loop is the retry"


async def test_a_hung_server_is_unavailable_within_the_request_timeout(sim: KubeSim) -> None:
    async with KubeLease.from_configuration(
        sim.configuration(), name="gtm-leader", namespace="gtm", request_timeout=0.2
    ) as lease:
        sim.faults.set(Faults(latency=2.0))
        started = time.monotonic()
        with pytest.raises(LeaseUnavailable, match="TimeoutError"):
            await lease.get()
        assert time.monotonic() - started < 1.0
        sim.faults.clear()
