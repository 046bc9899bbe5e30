"""Helpers shared by the kubesim tests: bodies, constants, a watch recorder."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import watch

GROUP = "networking.istio.io"
WLE = "workloadentries"
SE = "serviceentries"
NS = "default"


def wle(name: str, *, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A WorkloadEntry body (v1) with a VIP address unless the spec says otherwise."""
    body_spec: dict[str, Any] = {"address": "10.0.0.1", "weight": 98, **spec}
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "WorkloadEntry",
        "metadata": meta,
        "spec": body_spec,
    }


class WatchRecorder:
    """Consumes a `Watch().stream(...)` in an owned task; tests await its events."""

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.watch = watch.Watch()
        self._stream = self.watch.stream(func, *args, **kwargs)
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.error: BaseException | None = None
        self.ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        try:
            async for event in self._stream:
                await self.events.put(event)
        except Exception as error:  # the test inspects it
            self.error = error
        finally:
            self.ended.set()

    async def __aenter__(self) -> WatchRecorder:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.watch.close()

    async def next(self, within: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            return await self.events.get()

    async def take(self, count: int, within: float = 5.0) -> list[tuple[str, str]]:
        """The next `count` events as (type, name)."""
        out = []
        for _ in range(count):
            event = await self.next(within)
            out.append((event["type"], event["raw_object"]["metadata"].get("name", "")))
        return out

    async def quiet(self, within: float = 0.3) -> bool:
        """True if no event arrives within `within` seconds."""
        try:
            async with asyncio.timeout(within):
                await self.events.get()
        except TimeoutError:
            return True
        return False


KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


@dataclass(frozen=True)
class Kubectl:
    """The real `kubectl` on one simulated cluster, with a cache of its own."""

    kubeconfig: Path
    cache: Path

    async def run(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            KUBECTL or "kubectl",
            *("--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache)),
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else None,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), 60
        )
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def __call__(self, *args: str, stdin: str | None = None) -> str:
        """stdout of a command that must succeed."""
        code, out, err = await self.run(*args, stdin=stdin)
        assert code == 0, f"kubectl {' '.join(args)} failed ({code}): {err}"
        return out

    async def fails(self, *args: str, stdin: str | None = None) -> str:
        """stderr of a command that must fail."""
        code, out, err = await self.run(*args, stdin=stdin)
        assert code != 0, f"kubectl {' '.join(args)} succeeded: {out}"
        return err


def table_rows(block: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in block.strip().splitlines()]
