"""Label and field selectors, parsed and matched as the apiserver does.

Label selectors: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`,
`!k`, joined by commas. `!=` and `notin` also match objects without the key.
Field selectors: `metadata.name` and `metadata.namespace` with `=`, `==`, `!=`.
A selector that does not parse is a 400 BadRequest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaos.kubesim.errors import bad_request

_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SET = re.compile(r"^\s*(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")
_EQ = re.compile(r"^\s*(?P<key>[^\s!=()]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)\s*$")
_EXISTS = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)\s*$")
FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.op:
            case "exists":
                return present
            case "!exists":
                return not present
            case "=" | "in":
                return present and value in self.values
            case _:  # "!=" and "notin" also match a missing key
                return not present or value not in self.values


@dataclass(frozen=True)
class Selector:
    """All requirements must hold (an empty selector matches everything)."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def _split(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise bad_request(f"unable to parse requirement: unbalanced ')' in {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise bad_request(f"unable to parse requirement: unbalanced '(' in {text!r}")
    parts.append("".join(current))
    return parts


def _check_key(key: str) -> str:
    if len(key.rpartition("/")[2]) > 63 or not _KEY.match(key):
        raise bad_request(f"unable to parse requirement: invalid label key {key!r}")
    return key


def _check_value(value: str) -> str:
    if len(value) > 63 or not _VALUE.match(value):
        raise bad_request(f"unable to parse requirement: invalid label value {value!r}")
    return value


def parse_labels(text: str | None) -> Selector:
    if not text or not text.strip():
        return Selector()
    requirements = []
    for part in _split(text):
        if m := _SET.match(part):
            values = frozenset(_check_value(v.strip()) for v in m["values"].split(","))
            requirements.append(Requirement(_check_key(m["key"]), m["op"], values))
        elif m := _EQ.match(part):
            op = "!=" if m["op"] == "!=" else "="
            requirements.append(
                Requirement(_check_key(m["key"]), op, frozenset({_check_value(m["value"])}))
            )
        elif m := _EXISTS.match(part):
            op = "!exists" if m["neg"] else "exists"
            requirements.append(Requirement(_check_key(m["key"]), op))
        else:
            raise bad_request(f"unable to parse requirement: {part.strip()!r}")
    return Selector(tuple(requirements))


def parse_fields(text: str | None) -> Selector:
    """Field selectors reuse `Selector` over a flat {field: value} mapping."""
    if not text or not text.strip():
        return Selector()
    requirements = []
    for part in text.split(","):
        m = re.match(r"^\s*(?P<key>[^\s!=]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s]*)\s*$", part)
        if not m:
            raise bad_request(f"invalid selector: {text!r}; can't understand {part.strip()!r}")
        if m["key"] not in FIELDS:
            raise bad_request(f"field label not supported: {m['key']}")
        op = "!=" if m["op"] == "!=" else "="
        requirements.append(Requirement(m["key"], op, frozenset({m["value"]})))
    return Selector(tuple(requirements))


@dataclass(frozen=True)
class ObjectFilter:
    """The label and field selectors of one list or watch request."""

    labels: Selector = Selector()
    fields: Selector = Selector()

    @classmethod
    def parse(cls, label_selector: str | None, field_selector: str | None) -> ObjectFilter:
        return cls(parse_labels(label_selector), parse_fields(field_selector))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        if not self.labels.matches(meta.get("labels") or {}):
            return False
        flat = {
            "metadata.name": meta.get("name", ""),
            "metadata.namespace": meta.get("namespace", ""),
        }
        return self.fields.matches(flat)
