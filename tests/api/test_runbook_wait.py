"""`--wait`: done means observed — every member's layers, WorkloadEntries and DNS answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dns.edns
import dns.message
import dns.query
from api_members import Gtm, Members

from chaos.kubesim import Faults


def as_operator(members: Members, files: dict[str, Path]) -> list[str]:
    return ["--server", members.url("dc1-a"), "--token-file", str(files["operator"])]


def answers(members: Members, identity: str, fqdn: str, subnet: str, n: int = 20) -> set[str]:
    """What `identity`'s DNS answers `n` times to clients in `subnet`."""
    host, port = members.dns_listen(identity).rsplit(":", 1)
    ecs = dns.edns.ECSOption(subnet, 24)
    out = set()
    for _ in range(n):
        q = dns.message.make_query(fqdn, "A", use_edns=0, options=[ecs])
        reply = dns.query.udp(q, host, port=int(port), timeout=2)
        out |= {rd.address for rrset in reply.answer for rd in rrset}
    return out


def test_exit_wait_ends_when_every_member_shows_it(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    r = gtm(
        "region", "exit", "dc2", "--reason", "r", "--wait", "--timeout", "20s",
        *as_operator(pair, token_files),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert (
        "waiting for exit-" in out and ": traffic out of dc2 (all services) on every member" in out
    )
    assert "dc1-b (standby): DNS generation" in out
    assert "WLEs patched cluster-dc1 6/6" in out
    assert "dc1-a: DNS 18 answers as expected" in out  # 2 services x 3 client regions x 3
    assert "dc1-b: DNS 18 answers as expected" in out
    assert "converged after" in out and "2 member(s) hold the change in DNS and mesh" in out
    for identity in ("dc1-a", "dc1-b"):
        assert not any(
            a.startswith("127.0.2.")
            for a in answers(pair, identity, "foo.example.com", "127.0.2.0")
        )
    (exit_id,) = pair.intent().overrides
    for identity in ("dc1-a", "dc1-b"):
        layers = pair.members[identity].status().layers  # the controller's last evaluation
        assert layers is not None and layers.mesh_admitted == [exit_id]


def test_enter_wait_sees_the_answers_come_back(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    r = gtm(
        "region", "exit", "dc2", "-s", "foo", "--reason", "r", "--wait", "--timeout", "20s",
        *as_operator(pair, token_files),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    r = gtm(
        "region", "enter", "dc2", "-s", "foo", "--ramp", "0s", "--wait", "--timeout", "20s",
        *as_operator(pair, token_files),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "traffic back into dc2 (foo)" in r.stdout
    assert "converged after" in r.stdout
    assert "127.0.2.1" in answers(pair, "dc1-b", "foo.example.com", "127.0.2.0")


def test_wait_times_out_with_exit_4_saying_what_is_missing(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    assert pair.sim is not None
    pair.sim.faults.set(Faults(error_rate=1.0, verbs=("patch",)))  # the cluster fails patches
    r = gtm(
        "drain", "bar", "--region", "dc3", "--reason", "r", "--wait", "--timeout", "3s",
        *as_operator(pair, token_files),
    )  # fmt: skip
    assert r.returncode == 4, r.stdout + r.stderr
    assert "not converged after 3s" in r.stderr or "not converged after 4s" in r.stderr
    assert "dc1-a (leader)" in r.stderr and "WLEs patched cluster-dc1 4/6" in r.stderr
    assert "dc1-b (standby)" not in r.stderr  # the standby holds the change: it writes nothing


def test_dry_run_does_not_wait(gtm: Gtm, pair: Members, token_files: dict[str, Path]) -> None:
    r = gtm(
        "region", "exit", "dc2", "--reason", "r", "--dry-run", "--wait", "--timeout", "1s",
        *as_operator(pair, token_files),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "waiting" not in r.stdout


def test_wait_goes_on_through_the_other_member_when_the_asked_one_dies(
    tmp_path: Path, token_files: dict[str, Path]
) -> None:
    members = Members(tmp_path / "dying", ["dc1-a", "dc1-b"])
    members.estate["dns"]["ttl"] = 6  # the mesh follows DNS after 6 s: time to lose dc1-a
    with members:
        cli = subprocess.Popen(
            [sys.executable, "-m", "gtm", "region", "exit", "dc2", "--reason", "r", "--wait",
             "--timeout", "60s", *as_operator(members, token_files)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("GTM_")},
                 "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        assert cli.stdout is not None
        seen = []
        for line in cli.stdout:
            seen.append(line)
            if "waiting for exit-" in line:
                break
        members.stop_member("dc1-a")  # the member the CLI asked, the leader, is gone
        out, _ = cli.communicate(timeout=90)
        text = "".join(seen) + out
        assert cli.returncode == 0, text
        assert f"{members.url('dc1-a')}: lost: cannot reach" in text
        assert "converged after" in text and "lost (not asked)" in text
        assert len(members.intent().overrides) == 1  # the exit, rolled forward by dc1-b
        assert members.members["dc1-b"].status().role == "leader"


def test_an_enter_with_a_ramp_waits_for_its_end_before_asking_dns(
    gtm: Gtm, pair: Members, token_files: dict[str, Path]
) -> None:
    r = gtm("region", "exit", "dc2", "-s", "foo", "--reason", "r", *as_operator(pair, token_files))
    assert r.returncode == 0, r.stdout + r.stderr
    r = gtm(
        "region", "enter", "dc2", "-s", "foo", "--ramp", "6s", "--wait", "--timeout", "30s",
        *as_operator(pair, token_files),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "DNS ramps back until" in r.stdout and "its answers are checked then" in r.stdout
    ramp_line = r.stdout.index("DNS ramps back until")
    assert r.stdout.index("answers as expected") > ramp_line  # asked after the ramp, not during
    assert "converged after" in r.stdout
    # without a terminal a block is printed per change of state, not per poll: the ramp
    # raises the table's generation every step, which is not a change of state
    blocks = [line for line in r.stdout.splitlines() if "members hold the change" in line]
    assert 1 <= len(blocks) <= 5, r.stdout
