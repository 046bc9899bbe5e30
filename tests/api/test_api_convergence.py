"""The status contract and what "converged" means, without servers."""

from __future__ import annotations

from typing import Any

import pytest
from api_members import Members, until

from gtm.client.answers_check import sample, vip_regions
from gtm.client.convergence import Change, MemberView, ended_ids, needs_tombstones, progress
from gtm.service.actions import Enter, Exit
from gtm.status import StatusError, read_status

EXIT = Change(("exit-dc2-1",), "dc2", True, None)


def status(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "identity": "dc1-a",
        "region": "dc1",
        "role": "leader",
        "generation": 3,
        "intent": {"version": 1, "digest": "d", "active": [{"id": "exit-dc2-1"}]},
        "layers": {"dns_admitted": ["exit-dc2-1"], "mesh_admitted": ["exit-dc2-1"]},
        "mesh": {"c1": {"in_sync": 4, "desired": 4}},
    }
    return {**base, **over}


def test_converged_needs_both_layers_and_the_mesh_in_sync() -> None:
    done = progress(EXIT, MemberView("u", read_status(status(), "u")))
    assert done.done
    assert (
        done.line()
        == "dc1-a (leader): DNS generation 3; admitted dns ✓ mesh ✓; WLEs patched c1 4/4"
    )
    dns_only = progress(
        EXIT, MemberView("u", read_status(status(layers={"dns_admitted": ["exit-dc2-1"]}), "u"))
    )
    assert not dns_only.done and dns_only.layers == {"dns": True, "mesh": False}
    lagging = progress(
        EXIT, MemberView("u", read_status(status(mesh={"c1": {"in_sync": 3, "desired": 4}}), "u"))
    )
    assert not lagging.done
    gone = progress(EXIT, MemberView("http://x", None, "cannot reach http://x"))
    assert not gone.done and gone.line() == "http://x (?): cannot reach http://x"


def test_an_ended_override_counts_once_its_tombstone_is_seen() -> None:
    s = read_status(status(intent={"active": []}, layers={}), "u")
    assert needs_tombstones(EXIT, s)
    ended = ended_ids({"tombstones": [{"id": "exit-dc2-1"}]})
    assert progress(EXIT, MemberView("u", s, ended=ended)).done
    assert not needs_tombstones(EXIT, read_status(status(), "u"))


def test_a_status_off_contract_is_named() -> None:
    with pytest.raises(StatusError) as e:
        read_status({"identity": "dc1-a", "mesh": {"c1": {"in_sync": "x"}}}, "http://m1")
    text = str(e.value)
    assert text.startswith("status of http://m1 does not follow the contract: ")
    for part in (
        "region: Field required",
        "role: Field required",
        "mesh.c1.in_sync:",
        "mesh.c1.desired: Field required",
    ):
        assert part in text


def test_the_real_member_follows_the_contract(leader: Members) -> None:
    member = leader.members["dc1-a"]
    result = leader.call(member.act(Exit("dc2", "r"), who="alice", dry_run=False))
    (exit_id,) = result.override_ids
    change = Change((exit_id,), "dc2", True, None)
    # DNS at once, the mesh after the hold (TTL 1s + margin 0.2s)
    until(lambda: progress(change, MemberView("u", leader.status())).done)
    s = leader.status()
    assert read_status(s.to_json(), "real") == s  # one type, one codec: it reads back as it was
    assert s.admits("dns", exit_id) and s.admits("mesh", exit_id)
    assert s.fqdns == {"foo": "foo.example.com", "bar": "bar.example.com"}
    assert s.regions["dc2"].client_subnet() is not None
    assert leader.wle_health()["foo-dc2-127-0-2-1-443"] == "False"
    result = leader.call(member.act(Enter("dc2", "back"), who="alice", dry_run=False))
    (enter_id,) = result.override_ids
    entered = Change((enter_id,), "dc2", False, None)
    until(lambda: progress(entered, MemberView("u", leader.status())).done)
    assert leader.wle_health()["foo-dc2-127-0-2-1-443"] == "True"


def test_vip_regions_and_sample(leader: Members) -> None:
    table = leader.members["dc1-a"].table()
    assert table is not None
    regions_of = vip_regions(table.to_dict())
    assert regions_of["foo"] == {"127.0.1.1": "dc1", "127.0.2.1": "dc2", "127.0.3.1": "dc3"}
    assert sample(EXIT, regions_of) == ["bar", "foo"]
    assert sample(Change((), "dc2", True, frozenset({"foo", "nope"})), regions_of) == ["foo"]


def test_the_members_shape_is_read() -> None:
    doc = {
        "identity": "dc2-a",
        "region": "dc2",
        "role": "standby",
        "leader": None,
        "dns": {"listen": "0.0.0.0:5353", "generation": 4, "ttl": 30},
        "generation": 4,
        "intent": {"version": 1, "digest": "d", "active": [{"id": "exit-dc2-1", "kind": "exit"}]},
        "layers": {
            "dns_admitted": ["exit-dc2-1"],
            "mesh_admitted": ["exit-dc2-1"],
            "mesh_generation": 5,
            "mesh_pending": [],
        },
        "mesh": {"c2": {"in_sync": 4, "desired": 4, "generation": 4, "converged": True}},
        "peers": [{"region": "dc1", "url": "http://10.0.0.1:8080", "exchange": {"error": None}}],
        "prober": {"sent": 10},
    }
    s = read_status(doc, "u")
    assert s.leader is None and s.holder.identity is None and s.intent.ids == ["exit-dc2-1"]
    assert s.admits("mesh", "exit-dc2-1") and s.mesh_generation == 5
    assert [(p.region, p.url) for p in s.peers] == [("dc1", "http://10.0.0.1:8080")]
    assert s.dns is not None and s.dns.address("10.9.9.9") == ("10.9.9.9", 5353)
    behind = progress(EXIT, MemberView("u", s))
    assert not behind.done  # the reconciler still enforces table 4 of the mesh's 5
    assert "c2 4/4 (enforcing table 4, not yet 5)" in behind.line()
    doc["mesh"]["c2"].update(generation=5, refused="would mark 60% of WLEs unhealthy")
    refused = progress(EXIT, MemberView("u", read_status(doc, "u")))
    assert not refused.done and "(refused: would mark 60%" in refused.line()
    doc["mesh"]["c2"]["refused"] = None
    assert progress(EXIT, MemberView("u", read_status(doc, "u"))).done


def test_distribute_conflicts_are_shown_not_waited_on() -> None:
    conflict = "mesh/pin (host foo.example.com): distribute from region01/* sends 100% to …"
    s = read_status(status(mesh={"c1": {"in_sync": 4, "desired": 4, "conflicts": [conflict]}}), "u")
    assert s.mesh["c1"].conflicts == [conflict]
    row = progress(EXIT, MemberView("u", s))
    assert row.done  # gtm does not fight the rule: waiting for it to go would never end
    assert "c1 4/4 (1 overridden by a DestinationRule distribute: gtm status)" in row.line()
    assert read_status(status(), "u").mesh["c1"].conflicts == []  # older members omit it
