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
import copy
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

    type: str  # object | map | array | string | integer | number | boolean | int-or-string | any
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
    min_length: int | None = None
    description: str = ""
    default: Any = None
    # how lists merge: SSA's x-kubernetes-list-type (atomic | map | set) and keys,
    # strategic merge patch's x-kubernetes-patch-strategy and -merge-key (built-ins)
    list_type: str = "atomic"
    list_keys: tuple[str, ...] = ()
    patch_strategy: str = ""
    patch_key: str = ""

    def validate(self, value: Any, path: str) -> list[Cause]:
        if self.type == "any":
            return []
        if self.type == "int-or-string":
            if isinstance(value, int | str) and not isinstance(value, bool):
                return []
            got = _json_type(value)
            return [
                Cause(
                    path,
                    TYPE_INVALID,
                    f'Invalid value: "{got}": {path} in body must be of type integer or string',
                )
            ]
        want = "object" if self.type == "map" else self.type
        got = _json_type(value)
        if want == "number" and got == "integer":
            got = "number"
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
        if self.min_length is not None and len(value) < self.min_length:
            return [
                Cause(
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {_shown(value)}: {path} in body should be at least"
                    f" {self.min_length} chars long",
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

    def child(self, name: str) -> Schema | None:
        """The schema of field `name` (of an object) or of any value (of a map)."""
        if self.type == "object":
            found = self.properties.get(name)
            return found if found is not None else (ANY if self.preserve_unknown else None)
        if self.type == "map":
            return self.items
        if self.type == "any":
            return ANY
        return None

    def unknown_fields(self, value: Any, path: str = "") -> list[str]:
        """Fields the schema does not declare (what `fieldValidation=Strict` refuses)."""
        out: list[str] = []
        if self.type == "object" and isinstance(value, dict) and not self.preserve_unknown:
            for name, item in value.items():
                sub = f"{path}.{name}" if path else name
                if name not in self.properties:
                    out.append(sub)
                else:
                    out += self.properties[name].unknown_fields(item, sub)
        elif self.type == "array" and isinstance(value, list) and self.items is not None:
            for index, item in enumerate(value):
                out += self.items.unknown_fields(item, f"{path}[{index}]")
        elif self.type == "map" and isinstance(value, dict) and self.items is not None:
            for key, item in value.items():
                out += self.items.unknown_fields(item, f"{path}.{key}")
        return out

    def with_defaults(self, value: Any) -> Any:
        """`value` with the schema's `default`s filled in where a field is missing."""
        if self.type == "object" and isinstance(value, dict):
            out = dict(value)
            for name, schema in self.properties.items():
                if name in out:
                    out[name] = schema.with_defaults(out[name])
                elif schema.default is not None:
                    out[name] = copy.deepcopy(schema.default)
            return out
        if self.type == "array" and isinstance(value, list) and self.items is not None:
            return [self.items.with_defaults(item) for item in value]
        if self.type == "map" and isinstance(value, dict) and self.items is not None:
            return {key: self.items.with_defaults(item) for key, item in value.items()}
        return value

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


_OPENAPI_TYPES = {"object", "array", "string", "integer", "boolean", "number"}


def from_openapi(node: Mapping[str, Any]) -> Schema:
    """A structural OpenAPI v3 schema (a CRD's `openAPIV3Schema`) as a `Schema`."""
    kind = node.get("type")
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    common: dict[str, Any] = {
        "description": str(node.get("description", "")),
        "default": node.get("default"),
    }
    if node.get("x-kubernetes-int-or-string"):
        return Schema("int-or-string", **common)
    if kind == "object" or (kind is None and "properties" in node):
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and not node.get("properties"):
            return Schema(
                "map",
                items=from_openapi(extra),
                max_items=node.get("maxProperties"),
                **common,
            )
        return Schema(
            "object",
            properties={k: from_openapi(v) for k, v in (node.get("properties") or {}).items()},
            required=tuple(node.get("required") or ()),
            preserve_unknown=preserve,
            **common,
        )
    if kind == "array":
        return Schema(
            "array",
            items=from_openapi(node.get("items") or {}),
            min_items=node.get("minItems"),
            max_items=node.get("maxItems"),
            list_type=str(node.get("x-kubernetes-list-type", "atomic")),
            list_keys=tuple(node.get("x-kubernetes-list-map-keys") or ()),
            **common,
        )
    if kind in ("integer", "number"):
        return Schema(kind, minimum=node.get("minimum"), maximum=node.get("maximum"), **common)
    if kind == "string":
        return Schema(
            "string",
            enum=tuple(node.get("enum") or ()),
            max_length=node.get("maxLength"),
            min_length=node.get("minLength"),
            **common,
        )
    if kind in _OPENAPI_TYPES:
        return Schema(kind, **common)
    return Schema("any", **common)


def to_openapi(schema: Schema) -> dict[str, Any]:
    """The OpenAPI v3 form of a `Schema` (for /openapi/v3, kubectl explain and apply)."""
    out: dict[str, Any] = {}
    if schema.description:
        out["description"] = schema.description
    match schema.type:
        case "any":
            out["x-kubernetes-preserve-unknown-fields"] = True
            return out
        case "int-or-string":
            out["x-kubernetes-int-or-string"] = True
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
            return out
        case "map":
            out["type"] = "object"
            out["additionalProperties"] = to_openapi(schema.items or ANY)
            return out
        case "object":
            out["type"] = "object"
            if schema.properties:
                out["properties"] = {k: to_openapi(v) for k, v in schema.properties.items()}
            if schema.required:
                out["required"] = list(schema.required)
            if schema.preserve_unknown:
                out["x-kubernetes-preserve-unknown-fields"] = True
            return out
        case "array":
            out["type"] = "array"
            out["items"] = to_openapi(schema.items or ANY)
            if schema.list_type != "atomic" or schema.list_keys:
                out["x-kubernetes-list-type"] = schema.list_type
            if schema.list_keys:
                out["x-kubernetes-list-map-keys"] = list(schema.list_keys)
            if schema.patch_strategy:
                out["x-kubernetes-patch-strategy"] = schema.patch_strategy
            if schema.patch_key:
                out["x-kubernetes-patch-merge-key"] = schema.patch_key
        case _:
            out["type"] = schema.type
    if schema.enum:
        out["enum"] = list(schema.enum)
    for name, value in (
        ("minimum", schema.minimum),
        ("maximum", schema.maximum),
        ("maxLength", schema.max_length),
        ("minLength", schema.min_length),
        ("minItems", schema.min_items),
        ("maxItems", schema.max_items),
        ("default", schema.default),
    ):
        if value is not None:
            out[name] = value
    if schema.format in ("byte", "date-time", "int64", "int32"):
        out["format"] = schema.format
    return out
