"""Member configs: every file validates; ports, peers, clusters, lease and store per pair."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from estate_testing import write_estate_file

from chaos.estate import PortPlan, write_cli_config, write_estate, write_members, write_tokens
from gtm.config import ConfigError, load

ROOT = Path(__file__).resolve().parents[3]


def test_demo_estate_members(tmp_path: Path) -> None:
    tokens = write_tokens(tmp_path)
    kubeconfig = tmp_path / "kubeconfig"
    members = write_members(
        ROOT / "examples" / "estate.yaml", tmp_path, kubeconfig=kubeconfig, tokens=tokens
    )
    assert list(members) == ["dc1-a", "dc1-b", "dc2-a", "dc2-b", "dc3-a", "dc3-b"]
    assert (members["dc1-a"].dns_port, members["dc1-a"].api_port) == (5353, 8080)
    assert members["dc1-a"].api_url == "http://127.0.0.1:8080"
    dns = [m.dns_port for m in members.values()]
    api = [m.api_port for m in members.values()]
    assert len(set(dns + api)) == 12

    for name, member in members.items():
        config = load(member.path).config  # what `gtm validate` does
        region = member.region
        assert name.startswith(region + "-")
        assert (config.instance.region, config.instance.member) == (region, name)
        assert config.instance.state_dir == str(tmp_path / "state" / region)
        assert (tmp_path / "state" / region).is_dir()
        assert config.dns.listen == f"127.0.0.1:{member.dns_port}"
        assert config.api.listen == f"127.0.0.1:{member.api_port}"
        assert config.api.tokens_file == str(tokens.tokens_file)
        assert config.api.peer_token_file == str(tokens.peer_file)
        peers = {(p.region, p.url) for p in config.api.peers}
        expected = {(m.region, m.api_url) for n, m in members.items() if n != name}
        assert peers == expected and len(peers) == 5  # its partner and the other regions' four
        # every region's cluster, its own first (the others are read for AccessPoints)
        assert [c.name for c in config.kubernetes.clusters] == [
            region,
            *(r for r in ("dc1", "dc2", "dc3") if r != region),
        ]
        cluster = config.kubernetes.clusters[0]
        assert (cluster.name, cluster.region, cluster.context) == (region, region, region)
        assert cluster.kubeconfig == str(kubeconfig) and cluster.namespace == "gtm-mesh"
        assert (cluster.selector, cluster.service_label) == (
            "gtm.io/managed=true",
            "gtm.io/service",
        )
        assert config.ha.lease.backend == "file" and config.ha.store.backend == "file"
        assert config.ha.lease.path == str(tmp_path / f"{region}.lease")
        # the estate's own settings are kept
        assert config.dns.zones == ["example.com"] and len(config.services) == 6
        # the estate's AccessPoints live in the first region's cluster
        assert (config.accesspoints.cluster, config.accesspoints.namespaces) == (
            "dc1",
            ["pay", "orders"],
        )
    pair = [load(members[n].path).config for n in ("dc2-a", "dc2-b")]
    assert pair[0].ha.lease.path == pair[1].ha.lease.path
    assert pair[0].instance.state_dir == pair[1].instance.state_dir


def test_tokens_and_cli_config(tmp_path: Path) -> None:
    tokens = write_tokens(tmp_path)
    body = yaml.safe_load(tokens.tokens_file.read_text())
    roles = {t["name"]: (t["role"], t["token"]) for t in body["tokens"]}
    assert roles == {
        "alice": ("operator", tokens.operator),
        "bob": ("operator", roles["bob"][1]),
        "grafana": ("viewer", tokens.viewer),
        "peer": ("peer", tokens.peer),
    }  # one token per person, and the peers' own role
    assert len({token for _, token in roles.values()}) == 4
    assert tokens.operator_file.read_text() == tokens.operator
    assert tokens.viewer_file.read_text() == tokens.viewer
    assert tokens.tokens_file.stat().st_mode & 0o077 == 0
    assert write_tokens(tmp_path) == tokens  # kept across restarts of one work dir
    cli = write_cli_config(tmp_path, "http://127.0.0.1:8080", tokens.operator_file)
    assert yaml.safe_load(cli.read_text()) == {
        "server": "http://127.0.0.1:8080",
        "token_file": str(tmp_path / "alice.token"),
    }


def test_ports_from_a_base_and_estate_settings_kept(tmp_path: Path) -> None:
    estate = write_estate_file(tmp_path)
    members = write_members(
        estate,
        tmp_path,
        kubeconfig=tmp_path / "kubeconfig",
        tokens=write_tokens(tmp_path),
        ports=PortPlan.from_base(40000),
        namespace="mesh",
    )
    assert [m.dns_port for m in members.values()] == list(range(40000, 40006))
    assert [m.api_port for m in members.values()] == list(range(40025, 40031))
    config = load(members["dc3-b"].path).config
    assert config.ha.lease.duration == 6.0 and config.dns.ttl == 5  # from the estate file
    assert config.kubernetes.clusters[0].namespace == "mesh"


def test_estate_sections_that_cannot_hold_are_dropped(tmp_path: Path) -> None:
    estate = write_estate_file(tmp_path)
    data = yaml.safe_load(estate.read_text())
    data["api"] = {"tls": {"cert": "c.pem", "key": "k.pem"}, "tokens_secret": {"name": "t"}}
    data["kubernetes"] = {"clusters": [{"name": "real", "region": "dc1", "in_cluster": True}]}
    data["ha"]["lease"] |= {"backend": "kubernetes", "cluster": "real"}
    data["ha"]["store"] = {"backend": "kubernetes", "cluster": "real"}
    estate.write_text(yaml.safe_dump(data))
    members = write_members(
        estate, tmp_path, kubeconfig=tmp_path / "kc", tokens=write_tokens(tmp_path)
    )
    config = load(members["dc1-a"].path).config
    assert config.api.tls is None and config.api.tokens_secret is None
    assert [c.name for c in config.kubernetes.clusters] == ["dc1", "dc2", "dc3"]
    assert config.ha.lease.backend == "file" and config.ha.lease.cluster is None


def test_bad_port_plans_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="overlap"):
        write_members(
            write_estate_file(tmp_path),
            tmp_path,
            kubeconfig=tmp_path / "kc",
            tokens=write_tokens(tmp_path),
            ports=PortPlan(dns=9000, api=9003),
        )
    with pytest.raises(ValueError):
        PortPlan.from_base(80)
    bad = tmp_path / "bad.yaml"
    bad.write_text(write_estate_file(tmp_path).read_text().replace("region02/az01", "bad locality"))
    with pytest.raises(ConfigError):
        write_members(bad, tmp_path, kubeconfig=tmp_path / "kc", tokens=write_tokens(tmp_path))


def test_vip_ports_moved_for_a_second_estate(tmp_path: Path) -> None:
    source = write_estate_file(tmp_path, port=18080)
    moved = load(write_estate(source, tmp_path / "moved.yaml", vip_port_offset=1000)).config
    assert {v.port for s in moved.services for vs in s.vips.values() for v in vs} == {19080}
    assert write_estate(source, tmp_path / "same.yaml").read_text() == source.read_text()


def test_a_base_moves_the_vips_into_its_block() -> None:
    plan = PortPlan.from_base(25000)
    assert plan.vips == 25076 and plan.vip_offset([18080, 18081]) == 25076 - 18080
    assert PortPlan().vips is None and PortPlan().vip_offset([18080]) == 0
    with pytest.raises(ValueError, match=r"overlap vips 25050\.\.25050"):
        PortPlan(dns=25000, api=25025, clusters=25050, vip_control=25075, vips=25050).check(6, 3)
