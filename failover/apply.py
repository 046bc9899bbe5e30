"""Applying a mesh plan once (runbooks): every planned WLE written to its target, then a tally.

The plan says which WLEs to write and to what; each is re-diffed against the
copy in the cache at write time (so a change since the plan is neither
overwritten nor written twice). The blast-radius refusal and the fencing
check come first, before anything is written; `concurrency` workers write.
"""

from __future__ import annotations

import asyncio

from failover.cache import EntryCache
from failover.desired import Target
from failover.fencing import WriteFence, WriteStopped
from failover.mesh_plan import MeshPlan
from failover.progress import ApplyResult
from failover.settings import ClusterSettings
from failover.workload import Key
from failover.writer import EntryWriter
from kube import KubeError


async def apply_plan(
    settings: ClusterSettings,
    plan: MeshPlan,
    cache: EntryCache,
    writer: EntryWriter,
    fence: WriteFence,
    *,
    force: bool,
) -> ApplyResult:
    """Raises `UnsafePlan` unless forced, and `WriteStopped` as soon as writing must stop."""
    plan.raise_if_unsafe(settings.max_unhealthy_share, force=force)
    targets: dict[Key, Target] = {p.key: p.target for p in plan.patches}
    if not cache.synced.is_set():
        await cache.refresh()
    for key in [*targets, *((s.namespace, s.name) for s in plan.fenced)]:
        entry = cache.get(key)
        if entry is not None:
            writer.checked(fence.refuse_newer, entry)  # a stale leader writes nothing at all
    todo = iter(list(targets))
    patched = conflicts = 0
    failed: list[str] = []

    async def work() -> None:
        nonlocal patched, conflicts
        for key in todo:
            entry = cache.get(key)
            if entry is None:
                failed.append(f"{key[0]}/{key[1]}: gone")
                continue
            try:
                done = await writer.converge(entry, targets[key], fence)
            except KubeError as e:
                failed.append(f"{key[0]}/{key[1]}: {e}")
                continue
            patched += done.patched
            conflicts += done.conflicts

    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(min(settings.concurrency, len(targets))):
                tg.create_task(work())
    except* WriteStopped as group:
        raise group.exceptions[0] from None
    return ApplyResult(
        settings.name, plan.generation, len(targets), patched, conflicts, tuple(failed)
    )
