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

Anti-entropy is also how lost intent comes back. While the store holds less
than this member has seen (`intent.GuardedIntentStore`: the newest intent
file deleted, the ConfigMap recreated), the leader neither evaluates nor
writes less over it (`gtm.service.leader`); `restore` merges back what this
member still knows — the intent it last read, held in memory, and each peer
region's latest — onto the store's copy, and the store takes it once it
reaches the high-water mark: the lost exit is in force again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Set

import structlog

from gtm.config import Inventory
from intent import TOMBSTONE_BOUND, IntentState, IntentStore, RegressedState, StoreUnavailable

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
        regressed: Callable[[], bool] = lambda: False,  # the store holds less than was seen
    ) -> None:
        self._region = region
        self._inventory = inventory
        self._store = store
        self._epoch = epoch
        self._intent = intent
        self._on_stored = on_stored
        self._wake = wake
        self._regressed = regressed
        self._peers: dict[str, IntentState] = {}  # the latest intent of each peer region
        self._unrestored: tuple[int, int] | None = None  # (stored, seen) last said unrestored

    async def received(self, theirs: IntentState, region: str) -> None:
        """A peer region's intent, as its member holds it now."""
        self._peers[region] = theirs
        epoch = self._epoch()
        if epoch is None:
            return  # the standby only reads; its leader merges
        if self._regressed():
            await self.restore()
            return
        try:
            await self._merge(theirs, region, epoch)
        except RegressedState:  # the store went back since it was last read: restore it
            await self.restore()

    async def _merge(self, theirs: IntentState, region: str, epoch: int) -> None:
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

    async def restore(self) -> bool:
        """While leading on a regressed store: merge back the intent this member last read
        and every peer region's latest; True once the store took it (it reached the mark)."""
        epoch = self._epoch()
        if epoch is None:
            return False
        known = [self._intent(), *self._peers.values()]

        def merged_back(state: IntentState) -> IntentState:
            for other in known:
                state = state.merge(other)
            return state

        try:
            mine = await self._store.update(merged_back, epoch)
        except StoreUnavailable as e:  # tried again at the next pull, or by the leader
            log.warning("intent.not_restored", error=str(e))
            return False
        except RegressedState as e:
            if self._unrestored == (e.stored, e.seen):
                return False
            self._unrestored = (e.stored, e.seen)
            log.warning(
                "intent.not_restored",
                stored=e.stored,
                seen=e.seen,
                peers=sorted(self._peers),
                why="what this member and its peers hold does not reach the version seen",
            )
            return False
        self._unrestored = None
        self._on_stored(mine)
        log.info("intent.merged_back", version=mine.version, peers=sorted(self._peers))
        self._wake()
        return True


def compactable(
    mine: IntentState, peers: Mapping[str, IntentState], regions: Set[str], now: float
) -> frozenset[str]:
    """The tombstones to drop: none until every peer region has been heard from (one not
    heard from may hold the override in force), then those `TOMBSTONE_BOUND` past their end
    that no peer holds in force."""
    if not regions <= peers.keys():
        return frozenset()
    return mine.compactable((peers[r] for r in regions), now - TOMBSTONE_BOUND)
