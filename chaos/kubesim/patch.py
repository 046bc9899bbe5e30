"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), apply, strategic.

Pure functions over JSON values. A body that is not the shape its media type
requires (an object sent as a JSON patch, a list sent as a merge patch) or a
malformed operation is a 400 BadRequest; a JSON patch that cannot apply (a
failed `test`, a missing path) is a 422, as the apiserver answers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from chaos.kubesim.errors import bad_request, unprocessable
from chaos.kubesim.schema import Schema
from chaos.kubesim.strategic import strategic_merge

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"

_OPS = {"add", "remove", "replace", "move", "copy", "test"}
_NEEDS_VALUE = {"add", "replace", "test"}
_NEEDS_FROM = {"move", "copy"}


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: `true` is not `1`, `1` is `1.0`, order of keys is free."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass(frozen=True)
class Operation:
    """One RFC 6902 operation with its pointers already split into tokens."""

    op: str
    path: tuple[str, ...]
    value: Any = None
    source: tuple[str, ...] = ()  # the `from` pointer of move and copy


def parse_pointer(pointer: Any) -> tuple[str, ...]:
    if not isinstance(pointer, str):
        raise bad_request(f"json patch: path must be a string, got {pointer!r}")
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise bad_request(f"json patch: invalid JSON pointer {pointer!r}")
    tokens = []
    for raw in pointer[1:].split("/"):
        if "~" in raw.replace("~0", "").replace("~1", ""):
            raise bad_request(f"json patch: invalid escape in JSON pointer {pointer!r}")
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tuple(tokens)


def parse_json_patch(body: Any) -> list[Operation]:
    """Check the shape of a JSON patch document; a 400 for anything malformed."""
    if not isinstance(body, list):
        kind = type(body).__name__ if not isinstance(body, dict) else "object"
        raise bad_request(
            f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Patch"
            " (a JSON patch must be a list of operations)"
        )
    ops = []
    for index, raw in enumerate(body):
        if not isinstance(raw, dict):
            raise bad_request(f"json patch: operation {index} is not an object")
        op = raw.get("op")
        if op not in _OPS:
            raise bad_request(f"json patch: operation {index}: unexpected op {op!r}")
        if "path" not in raw:
            raise bad_request(f"json patch: operation {index} ({op}) is missing 'path'")
        if op in _NEEDS_VALUE and "value" not in raw:
            raise bad_request(f"json patch: operation {index} ({op}) is missing 'value'")
        if op in _NEEDS_FROM and "from" not in raw:
            raise bad_request(f"json patch: operation {index} ({op}) is missing 'from'")
        source = parse_pointer(raw["from"]) if op in _NEEDS_FROM else ()
        ops.append(Operation(op, parse_pointer(raw["path"]), raw.get("value"), source))
    return ops


def _show(tokens: tuple[str, ...]) -> str:
    return "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens)


def _index(container: list[Any], token: str, tokens: tuple[str, ...], *, insert: bool) -> int:
    limit = len(container) if insert else len(container) - 1
    if token == "-" and insert:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")) or int(token) > limit:
        raise unprocessable(f"json patch: index {token!r} out of range at {_show(tokens)}")
    return int(token)


def _get(doc: Any, tokens: tuple[str, ...]) -> Any:
    node = doc
    for depth, token in enumerate(tokens):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, tokens[: depth + 1], insert=False)]
        else:
            raise unprocessable(f"json patch: path {_show(tokens)} does not exist")
    return node


def _add(doc: Any, tokens: tuple[str, ...], value: Any, *, replace: bool) -> Any:
    if not tokens:
        return value
    parent = _get(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise unprocessable(f"json patch: replace: path {_show(tokens)} does not exist")
        parent[last] = value
    elif isinstance(parent, list):
        if replace:
            parent[_index(parent, last, tokens, insert=False)] = value
        else:
            parent.insert(_index(parent, last, tokens, insert=True), value)
    else:
        raise unprocessable(f"json patch: parent of {_show(tokens)} is not a container")
    return doc


def _remove(doc: Any, tokens: tuple[str, ...]) -> Any:
    if not tokens:
        raise unprocessable("json patch: cannot remove the whole document")
    parent = _get(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, tokens, insert=False))
    raise unprocessable(f"json patch: remove: path {_show(tokens)} does not exist")


def apply_json_patch(doc: Any, ops: list[Operation]) -> Any:
    """Apply checked operations to a copy of `doc`; a 422 when one cannot apply."""
    result = copy.deepcopy(doc)
    for operation in ops:
        match operation.op:
            case "add" | "replace":
                value = copy.deepcopy(operation.value)
                result = _add(result, operation.path, value, replace=operation.op == "replace")
            case "remove":
                _remove(result, operation.path)
            case "test":
                if not json_equal(_get(result, operation.path), operation.value):
                    raise unprocessable(
                        f"json patch: testing value {_show(operation.path)} failed: test failed"
                    )
            case "move":
                if operation.path[: len(operation.source)] == operation.source and (
                    operation.path != operation.source
                ):
                    raise unprocessable("json patch: cannot move a value into one of its children")
                value = _remove(result, operation.source)
                result = _add(result, operation.path, value, replace=False)
            case "copy":
                value = copy.deepcopy(_get(result, operation.source))
                result = _add(result, operation.path, value, replace=False)
    return result


def patch_object(
    content_type: str, current: dict[str, Any], body: Any, schema: Schema | None = None
) -> Any:
    """The patched document, before any apiserver rule is applied to it."""
    if content_type == JSON_PATCH:
        return apply_json_patch(current, parse_json_patch(body))
    if not isinstance(body, dict):
        raise bad_request(
            f"the body of a {content_type} request must be a JSON object, got {type(body).__name__}"
        )
    if content_type == STRATEGIC_PATCH:
        return strategic_merge(current, body, schema)
    return merge_patch(current, body)
