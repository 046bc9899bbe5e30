"""One region's AccessPoint controller in a process of its own, as a member runs it.

    python -m chaos.bench.accesspoint_pass ESTATE REGION NAMESPACE COUNT

Passes over every AccessPoint, one after the other (as a leader woken by its watches
does while things change), and prints one JSON line per pass: `began` (wall time),
`ended`, `settled` (every one of the COUNT APs applied in this region's clusters and
nothing changed), `seconds` and `cpu_s` of the pass, `requests` it was refused
nothing (status not written), and `rss_mb`, the process's peak RSS so far. It runs
until it is terminated; `gtm bench accesspoints` reads the lines of each region's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import sys
import time
from contextlib import AsyncExitStack

import structlog

from failover import WriteFence
from gtm.config import load
from gtm.service.accesspoint_apply import open_objects
from gtm.service.accesspoints import AccessPointController, HomeAccessPoints, Synced


def settled(done: Synced, accesspoints: int) -> bool:
    """Every AP applied in every own cluster, and nothing changed."""
    results = [r for rs in done.results.values() for r in rs]
    return (
        len(done.results) == accesspoints
        and all(r.applied and r.changed == 0 for r in results)
        and not done.unwritten
    )


async def lead(config: str, region: str, namespace: str, accesspoints: int) -> None:
    inventory = load(config)
    async with AsyncExitStack() as stack:
        objects = await open_objects(inventory, stack)
        home_cluster = inventory.config.accesspoints.cluster or region
        home = HomeAccessPoints(objects[home_cluster].client, [namespace])
        controller = AccessPointController(
            inventory, region, home, objects, WriteFence(1, lambda: True)
        )
        while True:
            began, cpu0, t0 = time.time(), time.process_time(), time.perf_counter()
            done = await controller.sync()
            line = {
                "began": began,
                "ended": time.time(),
                "settled": settled(done, accesspoints),
                "seconds": round(time.perf_counter() - t0, 3),
                "cpu_s": round(time.process_time() - cpu0, 3),
                "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    # stdout carries the passes' lines: the log goes to stderr, warnings and above
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    config, region, namespace, count = sys.argv[1:5]
    asyncio.run(lead(config, region, namespace, int(count)))
