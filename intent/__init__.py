"""Durable operator intent, its audit history, and the table the leader last published.

- `IntentState`: the overrides in force and the tombstones of ended ones,
  with a content-derived `version` and the writer `epoch`; pure operations
  (`add`, `enter`, `remove`, `expire`, `merge`).
- `IntentStore` (`FileIntentStore`, `ConfigMapIntentStore`): `load()` and a
  compare-and-swap `update(fn, epoch)` fenced by epoch.
- `AuditLog` (`FileAudit`, `ConfigMapAudit`): append-only history.
- `PublishedStore` (`FilePublishedStore`, `ConfigMapPublishedStore`): the
  table last published, with its generation and epoch.
- The ConfigMap stores take a `kube.Client` (its timeout and `RetrySettings`
  come from the config's `ha.store`).
- `GuardedIntentStore` + `HighWater`: intent versions never go backwards
  unnoticed (a member's high-water mark, kept in its state directory).
- `Disk`: the file calls the file stores make, for a test to fail like a full
  or read-only state directory.
"""

from intent.atomic_file import Disk
from intent.audit import (
    Action,
    AuditEntry,
    AuditLog,
    AuditPage,
    BadCursor,
    FileAudit,
    transitions,
)
from intent.codec import override_from_dict, override_to_dict, refusal_to_dict
from intent.configmap_audit import ConfigMapAudit
from intent.configmap_cas import CONFIGMAP_LIMIT
from intent.configmap_published import ConfigMapPublishedStore
from intent.configmap_store import ConfigMapIntentStore
from intent.errors import (
    CorruptState,
    IntentConflict,
    IntentError,
    RegressedState,
    StaleEpoch,
    StaleGeneration,
    StoreUnavailable,
    TooLarge,
    UnknownOverride,
)
from intent.file_store import FileIntentStore
from intent.high_water import GuardedIntentStore, HighWater, Mark, Regression, StoreMark
from intent.metrics import StoreMetrics
from intent.published import FilePublishedStore, Published, PublishedHead, PublishedStore
from intent.state import EMPTY, TOMBSTONE_BOUND, Ending, IntentState, Tombstone
from intent.store import IntentStore, Update

__all__ = [
    "CONFIGMAP_LIMIT",
    "EMPTY",
    "TOMBSTONE_BOUND",
    "Action",
    "AuditEntry",
    "AuditLog",
    "AuditPage",
    "BadCursor",
    "ConfigMapAudit",
    "ConfigMapIntentStore",
    "ConfigMapPublishedStore",
    "CorruptState",
    "Disk",
    "Ending",
    "FileAudit",
    "FileIntentStore",
    "FilePublishedStore",
    "GuardedIntentStore",
    "HighWater",
    "IntentConflict",
    "IntentError",
    "IntentState",
    "IntentStore",
    "Mark",
    "Published",
    "PublishedHead",
    "PublishedStore",
    "RegressedState",
    "Regression",
    "StaleEpoch",
    "StaleGeneration",
    "StoreMark",
    "StoreMetrics",
    "StoreUnavailable",
    "Tombstone",
    "TooLarge",
    "UnknownOverride",
    "Update",
    "override_from_dict",
    "override_to_dict",
    "refusal_to_dict",
    "transitions",
]
