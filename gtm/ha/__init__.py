"""Leader election of a region's HA pair: only the leader writes, fenced by its epoch.

    elector = Elector(FileLease("state/dc1.lease"), ElectionSettings("dc1-a", address=url))
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(elector.run())
        async with elector.leading() as term:       # cancelled when the term ends
            epoch = elector.require_leader()         # right before every write
    await elector.release()                          # on SIGTERM: the standby takes over at once

Backends: `FileLease` (two members on one host) and `KubeLease` (a
coordination.k8s.io/v1 Lease); anything with `get`/`create`/`update` works.
"""

from gtm.ha.changes import ChangeFeed, Holder, LeaderChange, LeaderTerm
from gtm.ha.elector import Elector, NotLeader
from gtm.ha.file_lease import FileLease
from gtm.ha.kube_lease import ADDRESS_ANNOTATION, KubeLease
from gtm.ha.microtime import format_micro_time, parse_micro_time
from gtm.ha.record import LeaseBackend, LeaseConflict, LeaseRecord, LeaseUnavailable
from gtm.ha.settings import ElectionSettings
from gtm.ha.term import LeadershipLost, TermScope

__all__ = [
    "ADDRESS_ANNOTATION",
    "ChangeFeed",
    "ElectionSettings",
    "Elector",
    "FileLease",
    "Holder",
    "KubeLease",
    "LeaderChange",
    "LeaderTerm",
    "LeadershipLost",
    "LeaseBackend",
    "LeaseConflict",
    "LeaseRecord",
    "LeaseUnavailable",
    "NotLeader",
    "TermScope",
    "format_micro_time",
    "parse_micro_time",
]
