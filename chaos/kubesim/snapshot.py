"""Saving the store to a file and loading it back (`--state FILE`).

The demo restarts processes; a snapshot keeps the cluster's objects and its
resourceVersion counter across a restart, so resourceVersions never go back.
The watch history is not kept: a watch resuming from before the restart gets
410 Expired and re-lists, as after an apiserver restart with compaction.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import structlog

from chaos.kubesim.store import Store

log = structlog.get_logger(__name__)
FORMAT = "kubesim/v1"


def save(store: Store, path: Path) -> None:
    """Write atomically: a crash mid-write leaves the previous snapshot intact."""
    body: dict[str, Any] = {
        "format": FORMAT,
        "resourceVersion": store.resource_version,
        "objects": store.everything(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(body, out, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("kubesim.state.saved", path=str(path), objects=len(body["objects"]))


def load(store: Store, path: Path) -> bool:
    """Load a snapshot if the file exists; False when there is none."""
    if not path.exists():
        return False
    body = json.loads(path.read_text())
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ValueError(f"{path}: not a kubesim state file (format {FORMAT})")
    store.restore(body["objects"], int(body["resourceVersion"]))
    log.info("kubesim.state.loaded", path=str(path), objects=len(body["objects"]))
    return True
