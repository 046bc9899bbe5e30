"""The mesh objects a region's cluster is seeded with (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from estate_testing import NET, write_estate_file

from chaos.estate import MeshSeed, mesh_objects, seed_weights, wle_name
from failover.vip_index import Identity, VipIndex
from failover.workload import WorkloadEntry
from gtm.config import Inventory, load
from policies import Vip


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    return load(write_estate_file(tmp_path, port=18080))


def test_weights_are_the_seed_split_exactly(inventory: Inventory) -> None:
    bar = next(s for s in inventory.estate.services if s.name == "bar")
    # dc1 has two VIPs weighted 2:1; dc2 and dc3 one each: lcm(3, 1, 1) = 3.
    weights = seed_weights(bar, "dc1")
    by_region: dict[str, int] = {}
    for vip_id, weight in weights.items():
        by_region[vip_id.split("/")[1]] = by_region.get(vip_id.split("/")[1], 0) + weight
    assert by_region == {"dc1": 98 * 3, "dc2": 3, "dc3": 3}  # 98/1/1
    assert weights[f"bar/dc1/{NET}.1.2:18080"] == 2 * weights[f"bar/dc1/{NET}.1.3:18080"]
    from_dc2 = seed_weights(bar, "dc2")
    assert from_dc2[f"bar/dc2/{NET}.2.2:18080"] == 98 * 3
    assert from_dc2[f"bar/dc1/{NET}.1.2:18080"] == 2 and from_dc2[f"bar/dc1/{NET}.1.3:18080"] == 1
    assert all(w >= 1 for w in (*weights.values(), *from_dc2.values()))
    custom = seed_weights(bar, "dc3", MeshSeed(local=90, remote=5))
    assert custom[f"bar/dc3/{NET}.3.2:18080"] == 270 and custom[f"bar/dc2/{NET}.2.2:18080"] == 15


def test_objects_of_a_cluster(inventory: Inventory) -> None:
    objects = mesh_objects(inventory, "dc2")
    assert [o["metadata"]["name"] for o in objects.service_entries] == ["foo", "bar", "static"]
    foo_se = objects.service_entries[0]
    assert foo_se["metadata"]["namespace"] == "gtm-mesh"
    assert foo_se["spec"] == {
        "hosts": ["foo.example.com"],
        "location": "MESH_INTERNAL",
        "resolution": "STATIC",
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
        "workloadSelector": {"labels": {"gtm.io/service": "foo"}},
    }
    assert objects.service_entries[1]["spec"]["ports"][0] == {
        "number": 18080,
        "name": "tcp",
        "protocol": "TCP",
    }
    assert len(objects.workload_entries) == 9  # every VIP of every region
    for obj in objects.workload_entries:
        assert "status" not in obj  # a create body: status goes through /status
        meta, spec = obj["metadata"], obj["spec"]
        service = meta["labels"]["gtm.io/service"]
        assert meta["labels"] == {
            "gtm.io/managed": "true",
            "gtm.io/service": service,
            "app": service,
        }
        assert spec["labels"] == meta["labels"]  # the ServiceEntry selects on these
        assert meta["annotations"] == {"proxy.istio.io/health-checks-enabled": "true"}
        assert meta["namespace"] == "gtm-mesh"
    foo_dc1 = next(
        o for o in objects.workload_entries if o["metadata"]["name"].startswith("foo-dc1")
    )
    assert foo_dc1["metadata"]["name"] == "foo-dc1-127-61-1-1-18080"
    assert foo_dc1["spec"] == {
        "address": f"{NET}.1.1",
        "ports": {"http": 18080},
        "locality": "region01/az01",
        "weight": 1,
        "labels": foo_dc1["metadata"]["labels"],
    }
    foo_dc2 = next(
        o for o in objects.workload_entries if o["metadata"]["name"].startswith("foo-dc2")
    )
    assert foo_dc2["spec"]["weight"] == 98 and foo_dc2["spec"]["locality"] == "region02/az01"
    with pytest.raises(KeyError):
        mesh_objects(inventory, "dc9")


def test_the_reconciler_identifies_every_seeded_wle(inventory: Inventory) -> None:
    index = VipIndex(
        inventory.estate,
        {r.name: r.locality for r in inventory.config.regions},
        service_label="gtm.io/service",
    )
    vips = {v.id: v for s in inventory.estate.services for vs in s.vips.values() for v in vs}
    for region in inventory.region_names:
        for obj in mesh_objects(inventory, region).workload_entries:
            who = index.identify(WorkloadEntry.parse(obj))
            assert isinstance(who, Identity), who
            assert obj["metadata"]["name"] == wle_name(vips[who.vip.id])


def test_names_are_dns_labels() -> None:
    assert wle_name(Vip("x", "api", "dc1", "2001:db8::1", 443)) == "api-dc1-2001-db8--1-443"
    assert wle_name(Vip("x", "api", "dc1", "GW.Example.com", 443)) == "api-dc1-gw-example-com-443"
    with pytest.raises(ValueError):
        MeshSeed(remote=0)
