"""A small structural schema: what a CRD's openAPIV3Schema (or a Go type) checks.

Enough of OpenAPI v3 for the kinds served here: types, required fields,
numeric bounds, string length, item counts, enums, CEL-like rules on an
object, string formats (MicroTime, base64) — and pruning of unknown fields,
which the apiserver does silently for structural schemas. Causes read like
the apiserver's (`spec.weight: Invalid value: 5000000000: spec.weight in body
should be less than or equal to 4294967295`).

A wrong JSON type or format is reported with reason `FieldValueTypeInvalid`:
for a built-in (Go-typed) kind that is a decode error, not a validation one.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chaos.kubesim.errors import Cause

TYPE_INVALID = "FieldValueTypeInvalid"
_MICRO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


@dataclass(frozen=True)
class Rule:
    """A rule over a whole object (a CRD's `x-kubernetes-validations`)."""

    holds: Callable[[Mapping[str, Any]], bool]
    message: str


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def _check_format(fmt: str, value: str, path: str) -> list[Cause]:
    if fmt == "micro-time":
        ok = bool(_MICRO_TIME.match(value))
        if ok:
            try:
                datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
            except ValueError:
                ok = False
        if not ok:
            return [
                Cause(
                    path,
                    TYPE_INVALID,
                    f'Invalid value: "{value}": parsing time "{value}" as'
                    ' "2006-01-02T15:04:05.000000Z07:00": a MicroTime needs exactly six'
                    " fractional digits and Z, e.g. 2026-11-24T10:00:00.000000Z",
                )
            ]
    if fmt == "byte":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return [Cause(path, TYPE_INVALID, f"Invalid value: illegal base64 data: {value!r}")]
    return []


@dataclass(frozen=True)
class Schema:
    """One node of a structural schema. `type` "map" is an object of `items` values."""

    type: str  # object | map | array | string | integer | boolean | any
    properties: Mapping[str, Schema] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    items: Schema | None = None
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    enum: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    format: str | None = None
    preserve_unknown: bool = False

    def validate(self, value: Any, path: str) -> list[Cause]:
        if self.type == "any":
            return []
        want = "object" if self.type == "map" else self.type
        got = _json_type(value)
        if got != want:
            return [
                Cause(
                    path,
                    TYPE_INVALID,
                    f'Invalid value: "{got}": {path} in body must be of type {want}: "{got}"',
                )
            ]
        match self.type:
            case "object":
                return self._validate_object(value, path)
            case "map" | "array":
                return self._validate_collection(value, path)
            case "integer":
                return self._validate_integer(value, path)
            case "string":
                return self._validate_string(value, path)
        return []

    def _validate_object(self, value: Mapping[str, Any], path: str) -> list[Cause]:
        def child(name: str) -> str:
            return f"{path}.{name}" if path else name

        causes = [
            Cause(child(name), "FieldValueRequired", "Required value")
            for name in self.required
            if name not in value
        ]
        for name, schema in self.properties.items():
            if name in value:
                causes += schema.validate(value[name], child(name))
        if not causes:
            causes += [
                Cause(path, "FieldValueInvalid", f'Invalid value: "object": {rule.message}')
                for rule in self.rules
                if not rule.holds(value)
            ]
        return causes

    def _validate_collection(self, value: Any, path: str) -> list[Cause]:
        causes = []
        count = len(value)
        noun = "items" if self.type == "array" else "properties"
        if self.min_items is not None and count < self.min_items:
            causes.append(
                Cause(
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {count}: {path} in body should have at least"
                    f" {self.min_items} {noun}",
                )
            )
        if self.max_items is not None and count > self.max_items:
            causes.append(
                Cause(
                    path,
                    "FieldValueTooMany",
                    f"Too many: {count}: must have at most {self.max_items} {noun}",
                )
            )
        if self.items is not None:
            entries = enumerate(value) if self.type == "array" else value.items()
            for key, item in entries:
                sub = f"{path}[{key}]"
                causes += self.items.validate(item, sub)
        return causes

    def _validate_integer(self, value: int, path: str) -> list[Cause]:
        if self.minimum is not None and value < self.minimum:
            why = f"{path} in body should be greater than or equal to {self.minimum}"
            return [Cause(path, "FieldValueInvalid", f"Invalid value: {value}: {why}")]
        if self.maximum is not None and value > self.maximum:
            why = f"{path} in body should be less than or equal to {self.maximum}"
            return [Cause(path, "FieldValueInvalid", f"Invalid value: {value}: {why}")]
        return []

    def _validate_string(self, value: str, path: str) -> list[Cause]:
        if self.enum and value not in self.enum:
            supported = ", ".join(f'"{v}"' for v in self.enum)
            return [
                Cause(
                    path,
                    "FieldValueNotSupported",
                    f"Unsupported value: {_shown(value)}: supported values: {supported}",
                )
            ]
        if self.max_length is not None and len(value) > self.max_length:
            return [
                Cause(
                    path,
                    "FieldValueTooLong",
                    f"Too long: may not be more than {self.max_length} bytes",
                )
            ]
        return _check_format(self.format, value, path) if self.format else []

    def prune(self, value: Any) -> Any:
        """Drop fields the schema does not know, as the apiserver does on write."""
        if self.type == "object" and isinstance(value, dict):
            if self.preserve_unknown:
                return value
            return {
                name: self.properties[name].prune(item)
                for name, item in value.items()
                if name in self.properties
            }
        if self.type == "array" and isinstance(value, list) and self.items is not None:
            return [self.items.prune(item) for item in value]
        if self.type == "map" and isinstance(value, dict) and self.items is not None:
            return {key: self.items.prune(item) for key, item in value.items()}
        return value


ANY = Schema("any")
STRING = Schema("string")
BOOLEAN = Schema("boolean")
STRING_MAP = Schema("map", items=STRING)
STRING_LIST = Schema("array", items=STRING)
PRESERVED = Schema("object", preserve_unknown=True)


def integer(minimum: int | None = None, maximum: int | None = None) -> Schema:
    return Schema("integer", minimum=minimum, maximum=maximum)


def string(
    max_length: int | None = None, enum: tuple[str, ...] = (), fmt: str | None = None
) -> Schema:
    return Schema("string", max_length=max_length, enum=enum, format=fmt)
