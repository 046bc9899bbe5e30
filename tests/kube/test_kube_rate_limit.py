"""kube.rate_limit: the client-side token bucket, driven by a hand-moved clock."""

from __future__ import annotations

import pytest

from kube import TokenBucket


async def test_token_bucket_paces_to_qps_after_the_burst() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(10.0, 3, clock=lambda: now[0], sleep=sleep)
    for _ in range(8):
        await bucket.take()
    assert len(slept) == 5  # three from the burst, then one per 0.1 s
    assert now[0] == pytest.approx(0.5)
