"""Anti-entropy of intent across regions: the leader merges what its peers hold.

The peer exchange (`gtm.service.peers`) pulls each other region's intent and
hands it to `received`. Every member keeps the latest state of each peer
region; the leader merges a peer's overrides into the pair's store under its
epoch (a region that missed an override catches up) and evaluates at once
when that merge changed something. It also drops the tombstones (ended
overrides kept so a merge cannot bring them back) that every peer region has
let go of: none until each has been heard from, then those `TOMBSTONE_BOUND`
past their end that no peer holds in force (`compactable`). The standby only
reads; its leader merges.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Set

import structlog

from gtm.config import Inventory
from intent import TOMBSTONE_BOUND, IntentState, IntentStore

log = structlog.get_logger("gtm.intent")


class IntentMerge:
    def __init__(
        self,
        *,
        region: str,
        inventory: Callable[[], Inventory],
        store: IntentStore,
        epoch: Callable[[], int | None],  # the leader's epoch while this member leads, else None
        intent: Callable[[], IntentState],  # this member's intent as last read or written
        on_stored: Callable[[IntentState], None],  # the intent as a merge or compaction stored it
        wake: Callable[[], None],  # evaluate now
    ) -> None:
        self._region = region
        self._inventory = inventory
        self._store = store
        self._epoch = epoch
        self._intent = intent
        self._on_stored = on_stored
        self._wake = wake
        self._peers: dict[str, IntentState] = {}  # the latest intent of each peer region

    async def received(self, theirs: IntentState, region: str) -> None:
        """A peer region's intent, as its member holds it now."""
        self._peers[region] = theirs
        epoch = self._epoch()
        if epoch is None:
            return  # the standby only reads; its leader merges
        mine = self._intent()
        if not (mine.version == theirs.version and mine.digest == theirs.digest):
            if not mine.merge(theirs).same_intent(mine):
                mine = await self._store.update(lambda s: s.merge(theirs), epoch)
                self._on_stored(mine)
                log.info("intent.merged", peer=region, version=mine.version)
                self._wake()  # new intent: evaluate it now
        regions = {p.region for p in self._inventory().config.api.peers} - {self._region}
        if compactable(mine, self._peers, regions, time.time()):
            peers = dict(self._peers)
            mine = await self._store.update(
                lambda s: s.compact(compactable(s, peers, regions, time.time())), epoch
            )
            self._on_stored(mine)
            log.info("intent.compacted", retired=mine.retired, version=mine.version)


def compactable(
    mine: IntentState, peers: Mapping[str, IntentState], regions: Set[str], now: float
) -> frozenset[str]:
    """The tombstones to drop: none until every peer region has been heard from (one not
    heard from may hold the override in force), then those `TOMBSTONE_BOUND` past their end
    that no peer holds in force."""
    if not regions <= peers.keys():
        return frozenset()
    return mine.compactable((peers[r] for r in regions), now - TOMBSTONE_BOUND)
