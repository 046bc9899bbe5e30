"""API tokens of the simulated estate: one file the members read, one file per token.

`<work>/tokens.yaml` is what `api.tokens_file` points at:
`{tokens: [{name, token, role}]}`, one token per person as a real estate hands
them out — `alice` and `bob` (operators: the demo's CLI acts as alice, so the
audit says who), `grafana` (viewer) — and `peer`, the token members present to
each other (role peer: status, intent and observations, nothing else). Each
token is also alone in `<work>/<name>.token`, for the runbook CLI
(`token_file`) and `api.peer_token_file`. An existing tokens file is kept, so the CLI's token
stays valid across restarts of the same work dir.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROLES = {"alice": "operator", "bob": "operator", "grafana": "viewer", "peer": "peer"}
OPERATOR, VIEWER, PEER = "alice", "grafana", "peer"  # whose token the estate's tools use


@dataclass(frozen=True)
class Tokens:
    operator: str
    viewer: str
    peer: str
    tokens_file: Path

    def file_of(self, name: str) -> Path:
        return self.tokens_file.parent / f"{name}.token"

    @property
    def operator_file(self) -> Path:
        return self.file_of(OPERATOR)

    @property
    def viewer_file(self) -> Path:
        return self.file_of(VIEWER)

    @property
    def peer_file(self) -> Path:
        return self.file_of(PEER)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _existing(path: Path) -> dict[str, str] | None:
    if not path.exists():
        return None
    try:
        data: Any = yaml.safe_load(path.read_text())
        found = {t["name"]: t["token"] for t in data["tokens"] if t.get("role") == ROLES[t["name"]]}
    except (yaml.YAMLError, KeyError, TypeError):
        return None
    return found if set(found) == set(ROLES) else None


def write_tokens(work_dir: Path) -> Tokens:
    """The estate's tokens: read from `<work>/tokens.yaml` if it is whole, else made anew."""
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "tokens.yaml"
    values = _existing(path)
    if values is None:
        values = {name: secrets.token_urlsafe(32) for name in ROLES}
        body = {"tokens": [{"name": n, "token": values[n], "role": r} for n, r in ROLES.items()]}
        _write_private(path, yaml.safe_dump(body, sort_keys=False))
    tokens = Tokens(values[OPERATOR], values[VIEWER], values[PEER], path)
    for name in ROLES:
        _write_private(tokens.file_of(name), values[name])  # no newline: read as is
    return tokens
