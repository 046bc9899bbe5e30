"""How late the member's event loop runs what it was asked to: `gtm_member_loop_lag_seconds`.

A task asks to wake every `INTERVAL` seconds and records how much later than
that it woke: the longest any single step of the control plane held the loop
in that interval, at least. DNS does not run on this loop (gtm.dns.pool);
the API, the probes, the peers and the leader's writes do.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Gauge, Histogram

INTERVAL = 0.1
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopLag:
    def __init__(self, registry: CollectorRegistry, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.worst = 0.0  # the longest lag seen since start
        self._histogram = Histogram(
            "gtm_member_loop_lag_seconds",
            "How much later than asked the member's event loop woke a timer",
            buckets=BUCKETS,
            registry=registry,
        )
        self._worst = Gauge(
            "gtm_member_loop_lag_max_seconds",
            "The longest the member's event loop was late since the member started",
            registry=registry,
        )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - asked)
            self._histogram.observe(lag)
            if lag > self.worst:
                self.worst = lag
                self._worst.set(lag)
