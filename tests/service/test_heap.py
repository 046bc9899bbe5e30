"""The member's heap: collections timed by generation; settled (collected, frozen) only
in a process of its own."""

from __future__ import annotations

import asyncio
import gc
import weakref

from prometheus_client import CollectorRegistry

from gtm.service.heap import Heap


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def pauses(registry: CollectorRegistry, generation: int) -> float:
    value = registry.get_sample_value(
        "gtm_member_gc_pause_seconds_count", {"generation": str(generation)}
    )
    return value or 0.0


def test_every_collection_is_timed_by_generation_while_the_member_runs() -> None:
    registry = CollectorRegistry()
    with Heap(registry, own_process=True):
        gc.collect(0)
        gc.collect(2)
    gc.collect(2)  # after the member: not counted
    assert pauses(registry, 0) >= 1
    assert pauses(registry, 2) == 1


def test_a_member_in_a_process_of_its_own_freezes_what_lives_after_collecting() -> None:
    registry = CollectorRegistry()
    gc.collect()
    cycle: list[object] = []
    cycle.append(cycle)
    young = weakref.ref(cycle_holder := _Cycle())
    del cycle, cycle_holder  # garbage only the collector can free, in the young generation
    before = gc.get_freeze_count()
    try:
        with Heap(registry, own_process=True) as heap:
            heap.settle()
        assert young() is None  # collected, not frozen
        assert gc.get_freeze_count() > before
        assert pauses(registry, 1) == 1 and pauses(registry, 2) == 0  # never a full one
    finally:
        gc.unfreeze()  # this test process's heap is not the member's


def test_a_member_sharing_its_process_leaves_the_collector_alone() -> None:
    registry = CollectorRegistry()
    before = gc.get_freeze_count()
    with Heap(registry, own_process=False) as heap:
        heap.settle()
        gc.collect(0)
    assert gc.get_freeze_count() == before
    assert pauses(registry, 0) == 0


async def test_a_running_member_settles_often_and_collects_the_whole_heap_now_and_then() -> None:
    registry = CollectorRegistry()
    holder = _Cycle()
    garbage = weakref.ref(holder)
    try:
        with Heap(registry, own_process=True) as heap:
            heap.settle()  # frozen while alive
            del holder  # now a cycle nobody holds
            gc.collect()
            assert garbage() is not None  # out of the reach of a full collection
            task = asyncio.create_task(heap.run(every=0.01, whole_every=0.05))
            await asyncio.sleep(0.2)
            task.cancel()
        assert garbage() is None  # freed by a collection of the whole heap
        assert pauses(registry, 1) >= 3  # the settles between
        assert gc.get_freeze_count() > 0  # frozen again after
    finally:
        gc.unfreeze()
