"""README's first command: `gtm demo` starts the estate, and a second terminal drives it."""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
BASE_PORT = 25000
DNS_PORT = BASE_PORT  # dc1-a's DNS port is the base of the block


def clean_env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GTM_")} | extra


def gtm(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = clean_env()
    return subprocess.run(
        [sys.executable, "-m", "gtm", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def dig(fqdn: str, subnet: str) -> list[str]:
    out = subprocess.run(
        [
            "dig",
            "@127.0.0.1",
            "-p",
            str(DNS_PORT),
            fqdn,
            f"+subnet={subnet}",
            "+short",
            "+tries=1",
            "+time=2",
        ],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return out.stdout.split()


def test_demo_starts_answers_dns_and_obeys_the_runbook(tmp_path: Path) -> None:
    estate = ROOT / "examples" / "estate.yaml"
    log = (tmp_path / "demo.out").open("w")
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gtm",
            "demo",
            "--estate",
            str(estate),
            "--base-port",
            str(BASE_PORT),
            "--no-live",
            "--duration",
            "150",
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while "where to look" not in (tmp_path / "demo.out").read_text():
            assert demo.poll() is None, (tmp_path / "demo.out").read_text()[-3000:]
            assert time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.5)
        text = (tmp_path / "demo.out").read_text()
        assert f"dig @127.0.0.1 -p {DNS_PORT} foo.example.com" in text
        assert (tmp_path / ".gtm-demo" / "cli.yaml").exists()
        dc2_clients = dig("foo.example.com", "127.0.2.0/24")
        assert dc2_clients and all(a.startswith("127.0.") for a in dc2_clients)
        # the AccessPoint it applied: onboarded by every member, answered from its L4 VIPs
        assert "AccessPoint orders/orders-api applied" in text
        onboarded: list[str] = []
        while not onboarded:
            assert time.monotonic() < deadline + 60, "orders.internal.example.com not answered"
            onboarded = dig("orders.internal.example.com", "127.0.2.0/24")
            time.sleep(0.5)
        assert all(a.startswith("127.1.") for a in onboarded), onboarded

        # the second terminal: same directory, no flags: .gtm-demo/cli.yaml says where and who
        exit_ = gtm(
            tmp_path, "region", "exit", "dc2", "--reason", "demo", "--wait", "--timeout", "90"
        )
        assert exit_.returncode == 0, exit_.stdout[-2000:] + exit_.stderr[-2000:]
        assert "converged" in exit_.stdout
        answers = {a for _ in range(10) for a in dig("foo.example.com", "127.0.2.0/24")}
        assert answers and "127.0.2.1" not in answers  # dc2's VIP is out of DNS
        status = gtm(tmp_path, "status")
        assert status.returncode == 0 and "exit" in status.stdout
    finally:
        children = psutil.Process(demo.pid).children(recursive=True) if demo.poll() is None else []
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(timeout=60)
        log.close()
    assert demo.returncode == 0, (tmp_path / "demo.out").read_text()[-3000:]
    time.sleep(1)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


# -- a demo with the live view, moved ports and a work dir elsewhere ----------------------

LIVE_BASE = 25200  # a block of its own: 25200..25276 (VIPs on 25276)
REFRESH = 2.0  # chaos.cli.demo.REFRESH
STAMP = re.compile(r"^refresh (\d+) at (\d\d:\d\d:\d\d\.\d\d\d) ", re.M)


@dataclass
class LiveDemo:
    proc: subprocess.Popen[bytes]
    out: Path
    cwd: Path
    work: Path

    def text(self) -> str:
        return self.out.read_text()

    def views(self) -> list[tuple[int, datetime, str]]:
        """Each refresh printed so far: number, when (today, local time), the view's text."""
        text = self.text()
        found, start = [], text.find("where to look")
        for m in STAMP.finditer(text):
            at = datetime.combine(
                datetime.now().date(), datetime.strptime(m[2], "%H:%M:%S.%f").time()
            )
            found.append((int(m[1]), at, text[start : m.end()]))
            start = m.end()
        return found


def _row(view: str, first: str) -> str:
    return next((line for line in view.splitlines() if line.split(" ")[1:2] == [first]), "")


@pytest.fixture(scope="module")
def live_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    cwd = tmp_path_factory.mktemp("live")
    work = tmp_path_factory.mktemp("elsewhere") / "demo-state"
    out = cwd / "demo.out"
    log = out.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            *("-m", "gtm", "demo", "--estate", str(ROOT / "examples" / "estate.yaml")),
            *("--base-port", str(LIVE_BASE), "--work-dir", str(work), "--duration", "400"),
        ],
        cwd=cwd,
        env=clean_env(COLUMNS="240"),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    demo = LiveDemo(proc, out, cwd, work)
    try:
        deadline = time.monotonic() + 120
        while not demo.views():
            assert proc.poll() is None, demo.text()[-3000:]
            assert time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.5)
        yield demo
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=60)
        log.close()


def test_printed_runbook_lines_work_where_printed_with_another_work_dir(
    live_demo: LiveDemo,
) -> None:
    """--work-dir elsewhere: the lines the demo prints run as they are, from where it runs."""
    text = live_demo.text()
    lines = [
        line.strip(" │").strip()
        for line in text.splitlines()
        if re.search(r"gtm (status|history|region exit)\b", line)
    ]
    assert len(lines) == 3, text[-4000:]
    assert all("GTM_SERVER=http://127.0.0.1:" in line for line in lines), lines
    for line in lines:  # status, history, then an exit as printed, --wait and all
        done = subprocess.run(
            line,
            shell=True,
            cwd=live_demo.cwd,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"


def test_base_port_moves_the_vips_too(live_demo: LiveDemo) -> None:
    """Every port moves with --base-port: the VIPs listen on the block's port, not 18080."""
    vip_port = LIVE_BASE + 76
    assert f"curl http://127.0.1.1:{vip_port}/healthz" in live_demo.text()
    assert ":18080" not in (live_demo.work / "estate.yaml").read_text()
    with urllib.request.urlopen(f"http://127.0.1.1:{vip_port}/healthz", timeout=5) as resp:
        assert resp.status == 200
    with pytest.raises(OSError):
        urllib.request.urlopen("http://127.0.1.1:18080/healthz", timeout=2)


def test_live_view_keeps_its_pace_when_a_member_dies_and_ctrl_c_stops_it(
    live_demo: LiveDemo,
) -> None:
    """SIGKILL dc1-a (dc1's first member, which the DNS sampler once asked alone): the next
    refreshes come on time, show it dead and dc1-b leading, and DNS sampled from dc1-b;
    then SIGINT stops the whole demo within a few seconds."""
    demo = psutil.Process(live_demo.proc.pid)
    (member,) = [c for c in demo.children() if any(a.endswith("dc1-a.yaml") for a in c.cmdline())]
    before = live_demo.views()[-1][0]
    killed_at = datetime.now()
    os.killpg(member.pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        after = [v for v in live_demo.views() if v[0] > before]
        if after and "leader" in _row(after[-1][2], "dc1-b") and len(after) >= 3:
            if sum("leader" in _row(v[2], "dc1-b") for v in after) >= 3:
                break
        assert time.monotonic() < deadline, live_demo.text()[-6000:]
        assert live_demo.proc.poll() is None, live_demo.text()[-3000:]
        time.sleep(0.5)
    stamps = [killed_at] + [at for _, at, _ in after]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    assert max(gaps) < REFRESH + 1.0, gaps  # no refresh waits on the dead member
    last = after[-1][2]
    assert "dead (killed by SIGKILL)" in _row(last, "dc1-a"), last
    assert "leader" in _row(last, "dc1-b"), last
    dns_row = next(line for line in last.splitlines() if re.match(r"^\s*dc1\s+│\s+dc1-b\s+│", line))
    assert dns_row.split("│")[-1].strip() == "0%", dns_row  # the "no answer" column
    assert "no answer" in last

    children = demo.children(recursive=True)
    sent = time.monotonic()
    os.killpg(live_demo.proc.pid, signal.SIGINT)
    live_demo.proc.wait(timeout=30)
    took = time.monotonic() - sent
    assert took < 5.0, f"Ctrl-C took {took:.1f} s"
    assert live_demo.proc.returncode == 0, live_demo.text()[-3000:]
    time.sleep(0.5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


# -- start-up checks ----------------------------------------------------------------------


def _demo_once(cwd: Path, base: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            *("-m", "gtm", "demo", "--estate", str(ROOT / "examples" / "estate.yaml")),
            *("--base-port", str(base), "--no-live", "--duration", "1"),
        ],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_port_in_use_is_named_in_one_line_and_exits_2(tmp_path: Path) -> None:
    base = 25400
    with socket.socket() as held:  # dc2-b's API port
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.0.1", base + 25 + 3))
        held.listen()
        done = _demo_once(tmp_path, base)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    problem = done.stderr.strip().splitlines()
    assert len(problem) == 1 and f"port {base + 28} is in use: dc2-b API" in problem[0], problem
    assert "process.started" not in done.stdout + done.stderr  # nothing was started


def test_a_base_in_the_ephemeral_range_is_warned_about(tmp_path: Path) -> None:
    base = 40400
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    if not low <= base <= high:
        pytest.skip(f"{base} is outside this machine's ephemeral range {low}..{high}")
    with socket.socket() as held:  # a VIP's port: foo's dc1 VIP
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.1.1", base + 76))
        held.listen()
        done = _demo_once(tmp_path, base)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "ephemeral range" in done.stderr and f"{base}..{base + 76}" in done.stderr
    assert f"port {base + 76} is in use: a VIP of foo in dc1 on 127.0.1.1:{base + 76}" in (
        done.stderr
    )
