"""What the CRDs and the built-in types accept and refuse."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes_asyncio.client import (
    CoordinationV1Api,
    CoreV1Api,
    CustomObjectsApi,
    V1Lease,
    V1LeaseSpec,
    V1ObjectMeta,
    V1Secret,
)
from kubernetes_asyncio.client.exceptions import ApiException
from kubesim_testing import GROUP, NS, SE, WLE, wle

from chaos.kubesim import KubeSim

MERGE = "application/merge-patch+json"


def causes(error: ApiException) -> list[str]:
    body = json.loads(error.body)
    assert (error.status, body["reason"]) == (422, "Invalid")
    return [c["field"] for c in body["details"]["causes"]]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"weight": 1}, "spec"),  # neither address nor network
        ({"address": "10.0.0.1", "weight": -1}, "spec.weight"),
        ({"address": "10.0.0.1", "weight": 4294967296}, "spec.weight"),
        ({"address": "10.0.0.1", "weight": "98"}, "spec.weight"),
        ({"address": "10.0.0.1", "ports": {"http": 0}}, "spec.ports[http]"),
        ({"address": "10.0.0.1", "ports": {"http": 65536}}, "spec.ports[http]"),
        ({"address": 10}, "spec.address"),
        ({"address": "10.0.0.1", "labels": {"a": 1}}, "spec.labels[a]"),
    ],
)
async def test_workload_entry_refusals(
    custom: CustomObjectsApi, spec: dict[str, Any], field: str
) -> None:
    body = {**wle("a"), "spec": spec}
    with pytest.raises(ApiException) as caught:
        await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, body)
    assert field in causes(caught.value)


async def test_workload_entry_bounds_and_network_only(custom: CustomObjectsApi) -> None:
    top = await custom.create_namespaced_custom_object(
        GROUP, "v1", NS, WLE, wle("a", weight=4294967295, ports={"http": 65535, "x": 1})
    )
    assert top["spec"]["weight"] == 4294967295
    by_network = {**wle("b"), "spec": {"network": "net1", "weight": 0}}
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, by_network)


async def test_missing_spec_and_bad_names(custom: CustomObjectsApi) -> None:
    body = {k: v for k, v in wle("a").items() if k != "spec"}
    with pytest.raises(ApiException) as caught:
        await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, body)
    assert "spec" in causes(caught.value)
    for name in ("Upper", "under_score", "-dash", "a" * 254):
        with pytest.raises(ApiException) as caught:
            await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle(name))
        assert "metadata.name" in causes(caught.value)


async def test_label_keys_and_values_are_checked(custom: CustomObjectsApi) -> None:
    for labels in ({"bad key": "v"}, {"k": "has/slash"}, {"k": "x" * 64}, {"/k": "v"}):
        with pytest.raises(ApiException) as caught:
            await custom.create_namespaced_custom_object(
                GROUP, "v1", NS, WLE, wle("a", labels=labels)
            )
        assert caught.value.status == 422, labels
    fine = {"topology.istio.io/network": "net1", "empty": ""}
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a", labels=fine))


async def test_unknown_fields_are_pruned(custom: CustomObjectsApi) -> None:
    body = wle("a", wieght=5)  # a typo the apiserver silently drops
    body["extra"] = {"x": 1}
    created = await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, body)
    assert "wieght" not in created["spec"]
    assert "extra" not in created


async def test_service_entry_rules(custom: CustomObjectsApi) -> None:
    def se(**spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": "s"},
            "spec": spec,
        }

    for spec, field in (
        ({}, "spec.hosts"),
        ({"hosts": []}, "spec.hosts"),
        ({"hosts": ["foo.example.com"], "ports": [{"number": 80}]}, "spec.ports[0].name"),
        (
            {"hosts": ["foo.example.com"], "ports": [{"number": 0, "name": "h"}]},
            "spec.ports[0].number",
        ),
        ({"hosts": ["foo.example.com"], "resolution": "MAGIC"}, "spec.resolution"),
        ({"hosts": ["foo.example.com"], "endpoints": [{"weight": 1}]}, "spec.endpoints[0]"),
    ):
        with pytest.raises(ApiException) as caught:
            await custom.create_namespaced_custom_object(GROUP, "v1", NS, SE, se(**spec))
        assert field in causes(caught.value), spec
    ok = se(
        hosts=["foo.example.com"],
        location="MESH_INTERNAL",
        resolution="STATIC",
        ports=[{"number": 443, "name": "https", "protocol": "TLS"}],
        workloadSelector={"labels": {"app": "foo"}},
    )
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, SE, ok)


def _lease(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "l"},
        "spec": spec,
    }


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-24T10:00:00+00:00",  # what the client sends for a datetime with zero microseconds
        "2026-11-24T10:00:00Z",
        "2026-11-24T10:00:00.123Z",
        "2026-11-24T10:00:00.1234567Z",
        "2026-11-24T10:00:00.123456",
        "2026-13-24T10:00:00.000000Z",
        "yesterday",
    ],
)
async def test_lease_micro_time_refusals(
    sim: KubeSim, coordination: CoordinationV1Api, stamp: str
) -> None:
    # POST/PUT: the Go decoder fails, which kube-apiserver reports as 400 BadRequest.
    with pytest.raises(ApiException) as caught:
        await coordination.create_namespaced_lease(NS, _lease(holderIdentity="a", renewTime=stamp))
    assert caught.value.status == 400
    assert "MicroTime" in json.loads(caught.value.body)["message"]
    # PATCH: the patched object fails to decode, reported as 422 Invalid.
    await coordination.create_namespaced_lease(NS, _lease(holderIdentity="a"))
    with pytest.raises(ApiException) as caught:
        await coordination.patch_namespaced_lease(
            "l", NS, {"spec": {"acquireTime": stamp}}, _content_type=MERGE
        )
    assert caught.value.status == 422


async def test_lease_micro_time_accepted_with_six_digits_and_z(
    coordination: CoordinationV1Api,
) -> None:
    stamp = "2026-11-24T10:00:00.000000Z"
    created = await coordination.create_namespaced_lease(
        NS,
        _lease(holderIdentity="dc1-a", acquireTime=stamp, renewTime=stamp, leaseDurationSeconds=6),
    )
    assert created.spec.renew_time == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    raw = await coordination.read_namespaced_lease("l", NS, _preload_content=False)
    assert json.loads(await raw.read())["spec"]["renewTime"] == stamp


async def test_lease_client_datetime_with_zero_microseconds_is_refused(
    coordination: CoordinationV1Api,
) -> None:
    """The pitfall in KUBERNETES.md: the model serializes such a datetime without fraction."""
    lease = V1Lease(
        metadata=V1ObjectMeta(name="l"),
        spec=V1LeaseSpec(holder_identity="a", renew_time=datetime(2026, 11, 24, 10, 0, tzinfo=UTC)),
    )
    with pytest.raises(ApiException) as caught:
        await coordination.create_namespaced_lease(NS, lease)
    assert caught.value.status == 400


async def test_lease_numbers(coordination: CoordinationV1Api) -> None:
    for spec, field in (
        ({"leaseDurationSeconds": 0}, "spec.leaseDurationSeconds"),
        ({"leaseTransitions": -1}, "spec.leaseTransitions"),
    ):
        with pytest.raises(ApiException) as caught:
            await coordination.create_namespaced_lease(NS, _lease(**spec))
        assert field in causes(caught.value)
    with pytest.raises(ApiException) as caught:  # a wrong type does not decode
        await coordination.create_namespaced_lease(NS, _lease(leaseDurationSeconds="six"))
    assert caught.value.status == 400


async def test_secret_string_data_becomes_data(core: CoreV1Api) -> None:
    created = await core.create_namespaced_secret(
        NS, V1Secret(metadata=V1ObjectMeta(name="token"), string_data={"token": "s3cret"})
    )
    assert created.type == "Opaque"
    assert created.string_data is None
    assert base64.b64decode(created.data["token"]) == b"s3cret"
    with pytest.raises(ApiException) as caught:
        await core.create_namespaced_secret(
            NS, V1Secret(metadata=V1ObjectMeta(name="bad"), data={"token": "not base64!"})
        )
    assert caught.value.status == 400


async def test_configmap_keys(core: CoreV1Api) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"bad key": "v"},
    }
    with pytest.raises(ApiException) as caught:
        await core.create_namespaced_config_map(NS, body)
    assert caught.value.status == 422


async def test_lease_micro_time_through_apply_is_400(coordination: CoordinationV1Api) -> None:
    await coordination.create_namespaced_lease(NS, _lease(holderIdentity="a"))
    with pytest.raises(ApiException) as caught:
        await coordination.patch_namespaced_lease(
            "l",
            NS,
            _lease(holderIdentity="b", renewTime="2026-11-24T10:00:00Z"),
            _content_type="application/apply-patch+yaml",
            field_manager="gtm",
            force=True,  # holderIdentity belongs to the creator: a conflict otherwise
        )
    assert caught.value.status == 400
