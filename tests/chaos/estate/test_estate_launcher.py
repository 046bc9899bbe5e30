"""The launcher on small Python children: kill, pause, resume, terminate, and no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import aiohttp
import pytest
from estate_testing import eventually, free_port, pid_gone

from chaos.estate import ChildExited, Launcher, UnknownChild

PY = sys.executable


def http_server(port: int) -> list[str]:
    return [PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"]


def with_grandchild(port: int) -> list[str]:
    """An http.server that first starts a `sleep` of its own and prints its pid."""
    code = textwrap.dedent(
        f"""
        import runpy, subprocess, sys
        sleeper = subprocess.Popen(["sleep", "120"])
        print("grandchild", sleeper.pid, flush=True)
        sys.argv = ["http.server", "{port}", "--bind", "127.0.0.1"]
        runpy.run_module("http.server", run_name="__main__")
        """
    )
    return [PY, "-c", code]


def grandchild_pid(log: Path) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines() if log.exists() else []:
            if line.startswith("grandchild "):
                return int(line.split()[1])
        time.sleep(0.02)
    raise AssertionError(f"no grandchild pid in {log}")


async def answers(url: str, within: float = 0.5) -> bool:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=within)) as session,
            session.get(url) as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def test_kill_pause_resume(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    url = f"http://127.0.0.1:{port}/"
    async with Launcher() as launcher:
        child = launcher.start("web", http_server(port), log_path=tmp_path / "web.log")
        await launcher.wait_http(url, 10, name="web")
        assert launcher.alive("web") and child.pid == launcher.pid("web")

        launcher.pause("web")
        assert launcher.alive("web")  # stopped, not dead
        assert not await answers(url)
        launcher.resume("web")
        assert await answers(url, within=5)
        assert "GET / HTTP/1.1" in (tmp_path / "web.log").read_text()  # its output, logged

        launcher.kill("web")
        assert await launcher.wait("web", 5) == -signal.SIGKILL
        assert not launcher.alive("web") and pid_gone(child.pid)
        with pytest.raises(ChildExited):
            launcher.pause("web")

        again = launcher.start("web", http_server(port), log_path=tmp_path / "web.log")
        assert again.pid != child.pid
        with pytest.raises(ValueError, match="already running"):
            launcher.start("web", http_server(port))
        await launcher.wait_http(url, 10, name="web")
    assert pid_gone(again.pid)


async def test_terminate_stops_gracefully_or_kills(tmp_path: Path) -> None:
    stubborn = [PY, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                " print('ready', flush=True); time.sleep(60)"]  # fmt: skip
    port = free_port("127.0.0.1")
    async with Launcher() as launcher:
        launcher.start("web", http_server(port))
        launcher.start("stubborn", stubborn, log_path=tmp_path / "stubborn.log")
        await launcher.wait_http(f"http://127.0.0.1:{port}/", 10, name="web")
        launcher.pause("web")  # a paused process still gets to handle SIGTERM
        assert await launcher.terminate("web", 5) == -signal.SIGTERM
        assert await eventually(lambda: "ready" in (tmp_path / "stubborn.log").read_text())
        started = time.monotonic()
        assert await launcher.terminate("stubborn", 0.5) == -signal.SIGKILL
        assert time.monotonic() - started >= 0.5
        assert await launcher.terminate("stubborn", 0.5) == -signal.SIGKILL  # idempotent
        with pytest.raises(UnknownChild):
            launcher.kill("nobody")


async def test_no_orphans_when_the_context_exits(tmp_path: Path) -> None:
    log = tmp_path / "family.log"
    with Launcher(stop_timeout=2) as launcher:
        child = launcher.start("family", with_grandchild(free_port("127.0.0.1")), log_path=log)
        grandchild = grandchild_pid(log)
        assert not pid_gone(grandchild)
    # the group's SIGKILL is sent; a loaded machine takes a moment to carry it out
    assert await eventually(lambda: pid_gone(child.pid) and pid_gone(grandchild), within=5)

    log2 = tmp_path / "family2.log"
    async with Launcher() as launcher:
        child = launcher.start("family", with_grandchild(free_port("127.0.0.1")), log_path=log2)
        grandchild = grandchild_pid(log2)
        launcher.kill("family")  # SIGKILL goes to the whole group
        await launcher.wait("family", 5)
    assert await eventually(lambda: pid_gone(child.pid) and pid_gone(grandchild), within=5)


PARENT = """
import signal, sys, time
# Ctrl-C as at a terminal: a shell without job control starts background commands with
# SIGINT ignored, and this parent would inherit that from a test run started so
signal.signal(signal.SIGINT, signal.default_int_handler)
from chaos.estate import Launcher
launcher = Launcher()
child = launcher.start("family", sys.argv[1:], log_path=sys.argv[0] + ".log")
print("child", child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_orphans_when_the_parent_is_interrupted(tmp_path: Path, signum: int) -> None:
    """Ctrl-C: atexit stops the whole group. SIGTERM (unhandled) or SIGKILL: no atexit, but
    the child dies with its parent (PR_SET_PDEATHSIG); its own children are its business."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [PY, str(script), *with_grandchild(free_port("127.0.0.1"))],
        stdout=subprocess.PIPE,
        text=True,
    )
    grandchild = None
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        while not line.startswith("child "):  # after the launcher's own log lines
            line = parent.stdout.readline()
        child = int(line.split()[1])
        grandchild = grandchild_pid(Path(str(script) + ".log"))
        parent.send_signal(signum)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while not pid_gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid_gone(child), "the child outlived its parent"
        if signum == signal.SIGINT:
            assert pid_gone(grandchild), "the grandchild outlived its grandparent"
    finally:
        parent.kill()
        parent.communicate()
        if grandchild is not None and not pid_gone(grandchild):
            os.kill(grandchild, signal.SIGKILL)


async def test_wait_http_reports_a_dead_child_and_times_out(tmp_path: Path) -> None:
    async with Launcher() as launcher:
        launcher.start(
            "crash", [PY, "-c", "raise SystemExit('no config')"], log_path=tmp_path / "crash.log"
        )
        with pytest.raises(ChildExited, match="no config"):
            await launcher.wait_http(
                f"http://127.0.0.1:{free_port('127.0.0.1')}/", 10, name="crash"
            )
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="not ready"):
            await launcher.wait_http(f"http://127.0.0.1:{free_port('127.0.0.1')}/", 0.3)
        assert time.monotonic() - started < 3
