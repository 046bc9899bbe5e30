"""One region's AccessPoint controller alone in a process: one pass, its peak memory.

    python -m chaos.bench.accesspoint_pass ESTATE REGION NAMESPACE

Prints `{"rss_mb", "seconds", "cpu_s", "accesspoints"}` as JSON: what a member's
controller costs in memory with the estate's AccessPoints (gtm's imports, its
clients, one whole pass: the APs listed, discovery, the snapshot of its clusters,
the render of every AP), without the other regions' controllers and the L4
controllers the benchmark's own process holds.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from contextlib import AsyncExitStack

from failover import WriteFence
from gtm.config import load
from gtm.service.accesspoint_apply import open_objects
from gtm.service.accesspoints import AccessPointController, HomeAccessPoints


async def one_pass(config: str, region: str, namespace: str) -> dict[str, float]:
    inventory = load(config)
    async with AsyncExitStack() as stack:
        objects = await open_objects(inventory, stack)
        home_cluster = inventory.config.accesspoints.cluster or region
        home = HomeAccessPoints(objects[home_cluster].client, [namespace])
        controller = AccessPointController(
            inventory, region, home, objects, WriteFence(1, lambda: True)
        )
        cpu0, t0 = time.process_time(), time.perf_counter()
        done = await controller.sync()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "seconds": round(seconds, 2),
        "cpu_s": round(cpu, 2),
        "accesspoints": done.accesspoints,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(one_pass(*sys.argv[1:4]))))
