"""The member status as one type, shared by the member that builds it and everyone who reads it.

`MemberStatus` (and its parts), `read_status(data, where)` -> `MemberStatus` or
`StatusError`, `MemberStatus.to_json()`. Imports nothing of the project: the
server (`gtm.service`), the client room (`gtm.client`), the demo and the drills
all import it.
"""

from gtm.status.model import (
    LAYERS,
    ConfigRef,
    DnsRef,
    IntentRef,
    Layers,
    LeaderRef,
    MemberStatus,
    MeshProgress,
    PeerRef,
    Pending,
    RegionRef,
    StatusError,
    read_status,
)

__all__ = [
    "LAYERS",
    "ConfigRef",
    "DnsRef",
    "IntentRef",
    "Layers",
    "LeaderRef",
    "MemberStatus",
    "MeshProgress",
    "PeerRef",
    "Pending",
    "RegionRef",
    "StatusError",
    "read_status",
]
