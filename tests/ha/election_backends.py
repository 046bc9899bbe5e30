"""Both lease backends for one test, made per member on the same lease."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from chaos.kubesim import KubeSim
from gtm.ha import ElectionSettings, FileLease, KubeLease, LeaseBackend

# Real-time timings, short: a lease of whole seconds for the Lease object.
TIMINGS = {
    "file": {"duration": 0.6, "renew_deadline": 0.4, "retry_period": 0.1},
    "kube": {"duration": 1.0, "renew_deadline": 0.6, "retry_period": 0.2},
}


class Backends:
    """Makes one backend per member on the same lease; closes them at the end of the test."""

    def __init__(self, kind: str, tmp_path: Path, sim: KubeSim | None, stack: AsyncExitStack):
        self.kind = kind
        self.path = tmp_path / "dc1.lease"
        self.sim = sim
        self._stack = stack

    def settings(self, identity: str, **overrides: float) -> ElectionSettings:
        timings: dict[str, float] = {**TIMINGS[self.kind], **overrides}
        return ElectionSettings(identity, address=f"http://{identity}.test:8080", **timings)

    @asynccontextmanager
    async def open(self) -> AsyncIterator[LeaseBackend]:
        """A backend made (and closed) on the running loop, e.g. in a member's own thread."""
        if self.kind == "file":
            yield FileLease(self.path)
            return
        assert self.sim is not None
        async with KubeLease.from_configuration(
            self.sim.configuration(), name="gtm-leader", namespace="gtm"
        ) as lease:
            yield lease

    async def make(self, url: str | None = None) -> LeaseBackend:
        if self.kind == "file":
            return FileLease(self.path)
        assert self.sim is not None
        configuration = self.sim.configuration()
        if url is not None:
            configuration.host = url
        lease = KubeLease.from_configuration(configuration, name="gtm-leader", namespace="gtm")
        self._stack.push_async_callback(lease.aclose)
        return lease
