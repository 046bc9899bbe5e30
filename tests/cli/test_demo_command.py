"""README's first command: `gtm demo` starts the estate, and a second terminal drives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent.parent
BASE_PORT = 25000
DNS_PORT = BASE_PORT  # dc1-a's DNS port is the base of the block


def gtm(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GTM_")}
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
