"""Bearer tokens of the API: who may read (viewer), who may also write (operator), and
what the other members may pull (peer: status, intent and observations, nothing else).

One token per person: the token's name is the `who` of every action taken with it
(the audit, `gtm history`), so a token shared by a team tells nobody who acted.
A `TokenBook` comes from a YAML/JSON file

    tokens:
      - {name: alice, token: "…", role: operator}
      - {name: bob, token: "…", role: operator}
      - {name: grafana, token: "…", role: viewer}
      - {name: peer-dc2, token: "…", role: peer}

or from a Kubernetes Secret's data (keys are token names, values `role:token`).
It keeps only a SHA-256 digest of each token, so neither its repr nor a
crash dump shows one. `lookup` compares the presented token's digest with
every entry's using `hmac.compare_digest` and never stops early, so its time
does not tell which entry (if any) matched. Problems of a token file are
reported all at once, each with the file, line and entry — never with the
token's value.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from gtm.config.errors import ConfigError, FieldPath, Problem, dotted
from gtm.config.source import Source, read

if TYPE_CHECKING:
    from gtm.config import ApiConfig, Inventory

Role = Literal["peer", "viewer", "operator"]
ROLES: tuple[Role, ...] = ("peer", "viewer", "operator")
# a role may do what the roles it lists may: peer routes are what members pull from each other
_MAY: Mapping[Role, frozenset[Role]] = {
    "peer": frozenset({"peer"}),
    "viewer": frozenset({"peer", "viewer"}),
    "operator": frozenset({"peer", "viewer", "operator"}),
}
MIN_LENGTH = 16  # characters of a token; shorter ones are refused as guessable
_ENTRY_KEYS = {"name", "token", "role"}


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token's holder is: its name (the `who` of their actions) and role."""

    name: str
    role: Role

    def allows(self, needed: Role) -> bool:
        """An operator may do what a viewer may, a viewer what a peer may."""
        return needed in _MAY[self.role]


@dataclass(frozen=True, slots=True)
class _Entry:
    grant: Grant
    digest: bytes = field(repr=False)


class TokenFileError(ConfigError):
    """A token file or Secret that cannot be used; `problems` names file, line and entry."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _token_problem(token: object) -> str | None:
    if not isinstance(token, str) or not token:
        return "token: must be a non-empty string"
    if len(token) < MIN_LENGTH:
        return f"token: must be at least {MIN_LENGTH} characters (it has {len(token)})"
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        return "token: must be printable ASCII without spaces (it travels in an HTTP header)"
    return None


@dataclass(frozen=True)
class TokenBook:
    entries: tuple[_Entry, ...]
    source: str = "<tokens>"

    # --- building ------------------------------------------------------------

    @classmethod
    def of(cls, tokens: Iterable[tuple[str, str, Role]], source: str = "<tokens>") -> TokenBook:
        """From `(name, token, role)` triples (tests, or a caller that has them in hand)."""
        problems: list[Problem] = []
        entries = _entries(
            ((("tokens", i), name, token, role) for i, (name, token, role) in enumerate(tokens)),
            Source(source, None, {}),
            problems,
        )
        if problems:
            raise TokenFileError(problems)
        return cls(entries, source)

    @classmethod
    def from_file(cls, path: str | Path) -> TokenBook:
        try:
            src = read(path)
        except ConfigError as e:  # unreadable, or not YAML: names the file and line
            raise TokenFileError(e.problems) from None
        data = src.data
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise TokenFileError(
                [src.problem((), "expected a mapping with a 'tokens' list of {name, token, role}")]
            )
        problems = [src.problem((k,), "unknown key") for k in data if k != "tokens"]
        raw: list[tuple[FieldPath, object, object, object]] = []
        for i, item in enumerate(cast(list[Any], data["tokens"])):
            at: FieldPath = ("tokens", i)
            if not isinstance(item, dict):
                problems.append(src.problem(at, "expected a mapping {name, token, role}"))
                continue
            for key in sorted(set(item) - _ENTRY_KEYS, key=str):
                problems.append(src.problem((*at, key), "unknown key"))
            for key in sorted(_ENTRY_KEYS - set(item)):
                problems.append(src.problem(at, f"{key}: missing"))
            if _ENTRY_KEYS <= set(item):
                raw.append((at, item["name"], item["token"], item["role"]))
        entries = _entries(raw, src, problems)
        if problems:
            raise TokenFileError(problems)
        return cls(entries, src.file)

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str | bytes], source: str) -> TokenBook:
        """From a Secret's decoded data: token name -> `role:token`."""
        src = Source(source, None, {})
        raw: list[tuple[FieldPath, object, object, object]] = []
        problems: list[Problem] = []
        for name in sorted(data):
            value = data[name]
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            role, sep, token = text.partition(":")
            if not sep:
                problems.append(src.problem((name,), "expected 'role:token'"))
                continue
            raw.append(((name,), name, token, role.strip()))
        entries = _entries(raw, src, problems)
        if problems:
            raise TokenFileError(problems)
        return cls(entries, source)

    @classmethod
    async def from_config(
        cls, api: ApiConfig, inventory: Inventory, region: str | None = None
    ) -> TokenBook:
        """`api.tokens_file` or `api.tokens_secret` (see `gtm.api.token_sources`)."""
        from gtm.api.token_sources import load_tokens  # Kubernetes' client only when asked

        return await load_tokens(api, inventory, region)

    # --- reading -------------------------------------------------------------

    def lookup(self, token: str) -> Grant | None:
        """The grant of `token`, or None; constant time over every entry."""
        presented = _digest(token)
        found: Grant | None = None
        for entry in self.entries:  # no early exit: every entry is compared
            if hmac.compare_digest(presented, entry.digest):
                found = entry.grant
        return found

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.grant.name for e in self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def _entries(
    raw: Iterable[tuple[FieldPath, object, object, object]], src: Source, problems: list[Problem]
) -> tuple[_Entry, ...]:
    entries: list[_Entry] = []
    names: dict[str, FieldPath] = {}
    digests: dict[bytes, str] = {}
    for at, name, token, role in raw:
        if not isinstance(name, str) or not name.strip():
            problems.append(src.problem((*at, "name"), "name: must be a non-empty string"))
            continue
        label = f"{name!r}: "
        bad = _token_problem(token)
        if bad is not None:
            problems.append(src.problem((*at, "token"), label + bad))
        if role not in ROLES:
            problems.append(
                src.problem((*at, "role"), f"{label}role {role!r} is not one of {', '.join(ROLES)}")
            )
        if name in names:
            problems.append(
                src.problem(at, f"{label}name used twice (first at {dotted(names[name])})")
            )
        names.setdefault(name, at)
        if bad is not None or role not in ROLES:
            continue
        digest = _digest(cast(str, token))
        if digest in digests:
            problems.append(
                src.problem((*at, "token"), f"{label}same token as {digests[digest]!r}")
            )
            continue
        digests[digest] = name
        entries.append(_Entry(Grant(name, cast(Role, role)), digest))
    if not entries and not problems:
        problems.append(src.problem((), "no tokens: nobody could use the API"))
    return tuple(entries)


def read_token(path: str | Path) -> str:
    """A single token kept in a file of its own (the CLI's and peers' credentials)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise TokenFileError([Problem(str(p), None, (), f"cannot read: {e.strerror or e}")]) from e
    bad = _token_problem(text)
    if bad is not None:
        raise TokenFileError([Problem(str(p), None, (), bad)])
    return text
