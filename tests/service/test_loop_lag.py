"""The member's loop lag: a step that holds the loop shows in the histogram and the max."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry

from gtm.service.loop_lag import LoopLag


async def test_a_step_that_holds_the_loop_is_measured() -> None:
    registry = CollectorRegistry()
    lag = LoopLag(registry, interval=0.02)
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0.1)
    time.sleep(0.3)  # noqa: ASYNC251 - the point: a step that holds the loop
    await asyncio.sleep(0.1)
    task.cancel()
    assert 0.25 < lag.worst < 1.0
    assert registry.get_sample_value("gtm_member_loop_lag_max_seconds") == lag.worst
    over = registry.get_sample_value("gtm_member_loop_lag_seconds_bucket", {"le": "0.1"})
    count = registry.get_sample_value("gtm_member_loop_lag_seconds_count")
    assert count is not None and over is not None and count - over == 1  # one wake over 100 ms
