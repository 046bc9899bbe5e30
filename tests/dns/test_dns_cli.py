"""`gtm dns serve` as an operator runs it: a subprocess, answering dig."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed")


@contextmanager
def serve(*args: str) -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gtm", "dns", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.search(r"serving generation \d+ .* on 127\.0\.0\.1:(\d+)", line)
            if m:
                yield int(m.group(1))
                break
        else:
            raise AssertionError(
                f"gtm dns serve did not start: {proc.stderr.read() if proc.stderr else ''}"
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err


def dig(port: int, *args: str) -> list[str]:
    out = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), "+time=2", "+tries=1", "+short", *args],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return out.stdout.split()


def test_serve_answers_dig(estate_file: Path) -> None:
    with serve("-c", str(estate_file), "--listen", "127.0.0.1:0") as port:
        assert dig(port, "-b", "127.0.2.1", "local.example.com") == ["127.0.2.10"]
        assert dig(port, "example.com", "SOA")[2] == "1"


def test_serve_follows_the_what_if_overrides(estate_file: Path) -> None:
    # dc2 exits: clients in dc2 go elsewhere, as `gtm plan -o exit=dc2` shows.
    with serve(
        "-c", str(estate_file), "-o", "exit=dc2", "--listen", "127.0.0.1:0", "--workers", "2"
    ) as port:
        for _ in range(5):
            [address] = dig(port, "-b", "127.0.2.1", "local.example.com")
            assert address in ("127.0.1.10", "127.0.3.10")


def test_serve_rejects_a_bad_listen_address(estate_file: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gtm",
            "dns",
            "serve",
            "-c",
            str(estate_file),
            "--listen",
            "nowhere",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "--listen" in out.stderr


def test_serve_follows_the_health_snapshot(estate_file: Path, tmp_path: Path) -> None:
    health = tmp_path / "health.yaml"
    health.write_text("regions:\n  local/dc2: down\n")
    with serve("-c", str(estate_file), "--health", str(health), "--listen", "127.0.0.1:0") as port:
        for _ in range(5):
            [address] = dig(port, "-b", "127.0.2.1", "local.example.com")
            assert address in ("127.0.1.10", "127.0.3.10")
