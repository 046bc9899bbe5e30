"""`Launcher`: start and stop the processes of a drill, each in its own process group.

    with Launcher() as launcher:               # or `async with`
        launcher.start("dc1-a", argv, log_path=work / "logs" / "dc1-a.log")
        await launcher.wait_http("http://127.0.0.1:8080/healthz", name="dc1-a")
        launcher.pause("dc1-a")                # SIGSTOP: a hung leader
        launcher.resume("dc1-a")               # SIGCONT
        launcher.kill("dc1-a")                 # SIGKILL: a crash
        await launcher.terminate("dc1-b")      # SIGTERM, SIGKILL after the timeout

Signals go to the child's whole process group (`start_new_session`), so what
a child starts goes with it. Nothing is left behind: leaving the `with`,
`close()`/`stop_all()`, interpreter exit (atexit, which also runs after
Ctrl-C) stop every child; and on Linux each child gets `PR_SET_PDEATHSIG`
= SIGKILL, so even a parent killed outright (SIGKILL, or SIGTERM with no
handler) takes its children with it. The death signal is tied to the thread
that started the child: call `start` from the thread that lives longest (the
event loop's). Output (stdout and stderr) goes to `log_path`, appended.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import aiohttp
import structlog

log = structlog.get_logger(__name__)

PR_SET_PDEATHSIG = 1
POLL = 0.02


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _load_prctl()


def _die_with_parent(parent: int) -> None:
    """Runs in the child between fork and exec: SIGKILL me when my parent goes."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


class UnknownChild(LookupError):
    pass


class ChildExited(RuntimeError):
    """A child ended while it was expected to run (e.g. while waiting for it to be ready)."""


@dataclass(frozen=True)
class Child:
    name: str
    pid: int  # also its process group id
    argv: tuple[str, ...]
    log_path: Path | None


class Launcher:
    """Owns child processes by name; see the module doc."""

    def __init__(self, *, stop_timeout: float = 5.0) -> None:
        self.stop_timeout = stop_timeout
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._children: dict[str, Child] = {}
        self._cleaned: set[str] = set()  # exited, and their group killed: never signal again
        self._at_exit = False

    # -- starting -------------------------------------------------------------

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        *,
        cwd: str | os.PathLike[str] | None = None,
    ) -> Child:
        """Start `argv` as `name`; `env` is added to this process's environment.

        The child runs with PYTHONUNBUFFERED=1 (unless `env` says otherwise), so a
        Python child's log lines reach `log_path` as they are written.
        """
        if name in self._procs and self.alive(name):
            raise ValueError(f"{name} is already running (pid {self._procs[name].pid})")
        path = Path(log_path) if log_path is not None else None
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        with open(path if path is not None else os.devnull, "ab") as out:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=functools.partial(_die_with_parent, os.getpid()),
            )
        child = Child(name, proc.pid, tuple(argv), path)
        self._procs[name] = proc
        self._children[name] = child
        self._cleaned.discard(name)
        if not self._at_exit:
            atexit.register(self.close)
            self._at_exit = True
        log.info("process.started", name=name, pid=proc.pid, log=str(path) if path else None)
        return child

    # -- looking --------------------------------------------------------------

    def _proc(self, name: str) -> subprocess.Popen[bytes]:
        try:
            return self._procs[name]
        except KeyError:
            raise UnknownChild(f"no process named {name!r}") from None

    def child(self, name: str) -> Child:
        self._proc(name)
        return self._children[name]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._procs)

    def pid(self, name: str) -> int:
        return self._proc(name).pid

    def alive(self, name: str) -> bool:
        """Running or paused (not exited)."""
        return self._proc(name).poll() is None

    def returncode(self, name: str) -> int | None:
        return self._proc(name).poll()

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.child(name).log_path
        if path is None or not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- signals --------------------------------------------------------------

    def _signal_group(self, name: str, signum: int) -> None:
        if name in self._cleaned:
            return  # its pid may belong to someone else by now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc(name).pid, signum)

    def _signal_running(self, name: str, signum: int) -> None:
        if not self.alive(name):
            raise ChildExited(f"{name} has exited (code {self.returncode(name)})")
        self._signal_group(name, signum)

    def kill(self, name: str) -> None:
        """SIGKILL the child's process group (a crash). Does not wait."""
        self._signal_group(name, signal.SIGKILL)
        log.info("process.killed", name=name, pid=self.pid(name))

    def pause(self, name: str) -> None:
        """SIGSTOP the group: the process hangs, its sockets stay open."""
        self._signal_running(name, signal.SIGSTOP)
        log.info("process.paused", name=name, pid=self.pid(name))

    def resume(self, name: str) -> None:
        self._signal_running(name, signal.SIGCONT)
        log.info("process.resumed", name=name, pid=self.pid(name))

    async def wait(self, name: str, timeout: float) -> int:  # noqa: ASYNC109 - launcher API
        """The exit code once the child has ended; TimeoutError after `timeout`."""
        proc = self._proc(name)
        async with asyncio.timeout(timeout):
            while proc.poll() is None:  # noqa: ASYNC110 - a Popen has nothing to await
                await asyncio.sleep(POLL)
        assert proc.returncode is not None
        return proc.returncode

    async def terminate(self, name: str, timeout: float = 5.0) -> int:  # noqa: ASYNC109 - grace
        """SIGTERM (and SIGCONT, should it be paused), SIGKILL after `timeout`; the exit code.

        Whatever of its group outlives the child is killed too.
        """
        proc = self._proc(name)
        if name in self._cleaned and proc.returncode is not None:
            return proc.returncode  # stopped before
        if proc.poll() is None:
            self._signal_group(name, signal.SIGTERM)
            self._signal_group(name, signal.SIGCONT)
            try:
                await self.wait(name, timeout)
            except TimeoutError:
                log.warning("process.term_timeout", name=name, pid=proc.pid, timeout=timeout)
                self._signal_group(name, signal.SIGKILL)
                await self.wait(name, 5.0)
        self._signal_group(name, signal.SIGKILL)  # leftovers of the group
        self._cleaned.add(name)
        assert proc.returncode is not None
        log.info("process.stopped", name=name, pid=proc.pid, code=proc.returncode)
        return proc.returncode

    # -- readiness ------------------------------------------------------------

    async def wait_http(
        self,
        url: str,
        timeout: float = 10.0,  # noqa: ASYNC109 - launcher API
        *,
        name: str | None = None,
        statuses: Container[int] = range(200, 300),
    ) -> None:
        """Until a GET of `url` answers one of `statuses`; TimeoutError after `timeout`.

        With `name`, a child that exits meanwhile raises `ChildExited` at once,
        with the end of its log.
        """
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        client_timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            while True:
                if name is not None and not self.alive(name):
                    raise ChildExited(
                        f"{name} exited (code {self.returncode(name)}) before {url} answered:\n"
                        f"{self.log_tail(name)}"
                    )
                try:
                    async with session.get(url) as response:
                        if response.status in statuses:
                            return
                        last = f"HTTP {response.status}"
                except (aiohttp.ClientError, TimeoutError) as error:
                    last = f"{type(error).__name__}: {error}"
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{url} not ready after {timeout:g}s ({last})")
                await asyncio.sleep(0.05)

    # -- stopping everything --------------------------------------------------

    async def stop_all(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - grace
        """Terminate every child at once (SIGTERM, then SIGKILL after `timeout`)."""
        wait = self.stop_timeout if timeout is None else timeout
        await asyncio.gather(*(self.terminate(name, wait) for name in self._procs))
        self._unregister()

    def close(self, timeout: float | None = None) -> None:
        """Blocking stop of every child: SIGTERM, SIGKILL after `timeout` (atexit, `with`)."""
        wait = self.stop_timeout if timeout is None else timeout
        running = [name for name in self._procs if self.alive(name)]
        for name in running:
            self._signal_group(name, signal.SIGTERM)
            self._signal_group(name, signal.SIGCONT)
        deadline = time.monotonic() + wait
        while any(self.alive(n) for n in running) and time.monotonic() < deadline:
            time.sleep(POLL)
        for name, proc in self._procs.items():
            self._signal_group(name, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5.0)
            if proc.returncode is not None:
                self._cleaned.add(name)
        self._unregister()

    def _unregister(self) -> None:
        if self._at_exit:
            atexit.unregister(self.close)
            self._at_exit = False

    def __enter__(self) -> Launcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Launcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.stop_all()
        finally:
            self.close(timeout=0.5)  # a no-op unless stop_all was interrupted
