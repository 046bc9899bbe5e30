"""Field ownership for server-side apply: `managedFields` with `fieldsV1` field sets.

The semantics of structured-merge-diff, as far as gtm and kubectl rely on them:

- A field set is a set of paths. A path element is `f:<field>` (a field of an
  object or a key of a map), `k:{"port":80,"protocol":"TCP"}` (an item of a
  list of `x-kubernetes-list-type: map`, by its keys, a missing key taking its
  schema default) or `v:<json>` (an item of a `set` list). Every other list is
  atomic: the list is one leaf, owned whole. Built-in lists are keyed as
  k8s.io/api declares them (a Service's `ports` by port and protocol), custom
  resources' only where their schema says `x-kubernetes-list-type: map`.
- What an object "has" (`fields_of`): every scalar, every atomic list, every
  keyed item (its `.`), empty maps; maps are granular (`f:labels` holds
  `f:app`). Only labels, annotations, ownerReferences and finalizers of
  `metadata` are tracked; `status` belongs to the `status` subresource.
- Apply (`apply`): the applier's set becomes exactly what it applied. A field
  it applies with a value other than the live one, that another manager owns,
  is a conflict (409 listing the managers and fields) unless forced; forcing
  takes the field from them. Fields it applied before and applies no more are
  removed from the object unless another manager still owns them (or
  something beneath them).
- Update (`record_update`, every create/PUT/patch): the writer takes every
  field it added or changed from whoever owned it, without conflict; a field
  removed from the object leaves every set.
- A manager whose set is empty is dropped. Entries are keyed by (manager,
  operation, subresource), as the apiserver keys them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chaos.kubesim.errors import ApiError, bad_request
from chaos.kubesim.patch import json_equal
from chaos.kubesim.schema import Schema

Path = tuple[str, ...]
MISSING: Any = object()
TRACKED_METADATA = ("labels", "annotations", "ownerReferences", "finalizers")
SELF = "."


@dataclass(frozen=True, order=True)
class Manager:
    """One managedFields entry's identity."""

    manager: str
    operation: str  # Apply | Update
    subresource: str = ""


# -- what part of an object field sets cover -------------------------------------------


def tracked(obj: Mapping[str, Any], *, status_subresource: bool, subresource: str) -> dict:
    """The part of `obj` a write's field set covers."""
    if subresource == "status":
        return {"status": copy.deepcopy(obj["status"])} if "status" in obj else {}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (key == "status" and status_subresource):
            continue
        if key == "metadata" and isinstance(value, Mapping):
            meta = {k: copy.deepcopy(v) for k, v in value.items() if k in TRACKED_METADATA}
            if meta:
                out["metadata"] = meta
            continue
        out[key] = copy.deepcopy(value)
    return out


# -- paths -------------------------------------------------------------------------------


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _item_key(item: Any, schema: Schema) -> dict[str, Any] | None:
    if not isinstance(item, Mapping):
        return None
    out = {}
    element = schema.items
    for key in schema.list_keys:
        if key in item:
            out[key] = item[key]
        else:
            child = element.child(key) if element is not None else None
            if child is None or child.default is None:
                return None
            out[key] = child.default
    return out


def item_elements(items: list[Any], schema: Schema | None) -> list[str] | None:
    """Path elements of a list's items, or None when the list is atomic."""
    if schema is None or schema.type != "array":
        return None
    if schema.list_type == "map" and schema.list_keys:
        keys = [_item_key(item, schema) for item in items]
        if any(k is None for k in keys):
            return None
        elements = ["k:" + _compact(k) for k in keys]
    elif schema.list_type == "set":
        elements = ["v:" + _compact(item) for item in items]
    else:
        return None
    return elements if len(set(elements)) == len(elements) else None


def _child(schema: Schema | None, name: str) -> Schema | None:
    return schema.child(name) if schema is not None else None


def fields_of(value: Any, schema: Schema | None, prefix: Path = ()) -> set[Path]:
    """Every path `value` has, as structured-merge-diff's ToFieldSet sees it."""
    out: set[Path] = set()
    if not isinstance(value, Mapping):
        return out
    struct = schema is not None and schema.type == "object"
    for name, item in value.items():
        path = (*prefix, f"f:{name}")
        child = _child(schema, name)
        declared = struct and schema is not None and name in schema.properties
        if isinstance(item, Mapping) and item:
            out |= fields_of(item, child, path)
            if not declared:
                out.add(path)
        elif isinstance(item, list):
            elements = item_elements(item, child)
            if elements is None:
                out.add(path)
                continue
            element_schema = child.items if child is not None else None
            for element, entry in zip(elements, item, strict=True):
                out.add((*path, element))
                out |= fields_of(entry, element_schema, (*path, element))
        else:
            out.add(path)
    return out


def _find_item(items: list[Any], element: str, schema: Schema | None) -> int | None:
    elements = item_elements(items, schema)
    if elements is None:
        return None
    try:
        return elements.index(element)
    except ValueError:
        return None


def get_at(obj: Any, path: Path, schema: Schema | None) -> Any:
    """The value at `path`, or MISSING."""
    node, node_schema = obj, schema
    for element in path:
        if element.startswith("f:"):
            if not isinstance(node, Mapping) or element[2:] not in node:
                return MISSING
            node, node_schema = node[element[2:]], _child(node_schema, element[2:])
        else:
            if not isinstance(node, list):
                return MISSING
            index = _find_item(node, element, node_schema)
            if index is None:
                return MISSING
            node = node[index]
            node_schema = node_schema.items if node_schema is not None else None
    return node


def remove_at(obj: Any, path: Path, schema: Schema | None) -> None:
    """Remove the field or list item at `path` (nothing if it is not there)."""
    parent = get_at(obj, path[:-1], schema)
    if parent is MISSING:
        return
    last = path[-1]
    if last.startswith("f:") and isinstance(parent, dict):
        parent.pop(last[2:], None)
        return
    if isinstance(parent, list):
        parent_schema: Schema | None = schema
        for element in path[:-1]:
            if element.startswith("f:"):
                parent_schema = _child(parent_schema, element[2:])
            elif parent_schema is not None:
                parent_schema = parent_schema.items
        index = _find_item(parent, last, parent_schema)
        if index is not None:
            del parent[index]


def show_path(path: Path) -> str:
    """A path as the apiserver prints it: `.spec.ports[port=80,protocol="TCP"].name`."""
    out = []
    for element in path:
        kind, body = element[:2], element[2:]
        if kind == "f:":
            out.append(f".{body}")
        elif kind == "k:":
            key = json.loads(body)
            out.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]")
        elif kind == "v:":
            out.append(f"[={body}]")
        else:
            out.append(f"[{body}]")
    return "".join(out)


# -- fieldsV1 -------------------------------------------------------------------------------


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """A field set as fieldsV1: nested elements, `.` marking an owned path with children."""
    owned = set(paths)
    root: dict[str, Any] = {}
    for path in sorted(owned):
        node = root
        for element in path:
            node = node.setdefault(element, {})

    def mark(node: dict[str, Any], prefix: Path) -> None:
        for element, child in node.items():
            here = (*prefix, element)
            if child:
                mark(child, here)
                if here in owned:
                    child[SELF] = {}

    mark(root, ())
    return root


def from_fields_v1(fields: Any, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(fields, Mapping):
        return out
    for element, child in fields.items():
        if element == SELF:
            out.add(prefix)
            continue
        path = (*prefix, element)
        if isinstance(child, Mapping) and any(k != SELF for k in child):
            out |= from_fields_v1(child, path)
        else:
            out.add(path)
    return out


def decode(entries: Any) -> dict[Manager, set[Path]]:
    """managedFields entries as field sets, by manager."""
    out: dict[Manager, set[Path]] = {}
    for entry in entries or []:
        if not isinstance(entry, Mapping) or not entry.get("manager"):
            continue
        key = Manager(
            str(entry["manager"]),
            str(entry.get("operation", "Update")),
            str(entry.get("subresource", "")),
        )
        out.setdefault(key, set()).update(from_fields_v1(entry.get("fieldsV1") or {}))
    return out


def encode(
    managers: Mapping[Manager, set[Path]],
    previous: Any,
    *,
    api_version: str,
    now: str,
    touched: Manager | None,
) -> list[dict[str, Any]]:
    """managedFields entries; an entry keeps its time unless its manager wrote now."""
    times = {}
    for entry in previous or []:
        if isinstance(entry, Mapping) and entry.get("manager"):
            key = Manager(
                str(entry["manager"]),
                str(entry.get("operation", "Update")),
                str(entry.get("subresource", "")),
            )
            times[key] = (entry.get("time"), entry.get("apiVersion"))
    out = []
    for key in sorted(managers, key=lambda m: (m.operation != "Apply", m)):
        paths = managers[key]
        if not paths:
            continue
        when, version = times.get(key, (None, None))
        if key == touched or when is None:
            when, version = now, api_version
        entry: dict[str, Any] = {
            "manager": key.manager,
            "operation": key.operation,
            "apiVersion": version or api_version,
            "time": when,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(paths),
        }
        if key.subresource:
            entry["subresource"] = key.subresource
        out.append(entry)
    return out


def same_sets(a: Mapping[Manager, set[Path]], b: Mapping[Manager, set[Path]]) -> bool:
    keep_a = {k: v for k, v in a.items() if v}
    keep_b = {k: v for k, v in b.items() if v}
    return keep_a == keep_b


# -- writes -----------------------------------------------------------------------------------


def _under(path: Path, prefix: Path) -> bool:
    return path[: len(prefix)] == prefix


def _drop_removed(managers: dict[Manager, set[Path]], removed: set[Path]) -> None:
    if not removed:
        return
    for key, paths in managers.items():
        managers[key] = {p for p in paths if not any(_under(p, r) for r in removed)}


def _is_leaf(value: Any) -> bool:
    return not isinstance(value, Mapping) or not value


def record_update(
    managers: dict[Manager, set[Path]],
    writer: Manager,
    old: Any,
    new: Any,
    schema: Schema | None,
) -> None:
    """An Update: the writer takes what it added or changed; removed fields leave every set."""
    before, after = fields_of(old, schema), fields_of(new, schema)
    changed = set()
    for path in after:
        now_value = get_at(new, path, schema)
        if path not in before:
            changed.add(path)
        elif _is_leaf(now_value) and not json_equal(get_at(old, path, schema), now_value):
            changed.add(path)
    _drop_removed(managers, before - after)
    for key in managers:
        if key != writer:
            managers[key] -= changed
    managers[writer] = (managers.get(writer, set()) - (before - after)) | changed


def merge_applied(live: Any, applied: Any, schema: Schema | None) -> Any:
    """The applied configuration merged into the live object, schema-aware."""
    if not isinstance(applied, Mapping):
        return copy.deepcopy(applied)
    result = copy.deepcopy(live) if isinstance(live, Mapping) else {}
    for name, value in applied.items():
        child = _child(schema, name)
        if value is None:
            result.pop(name, None)
        elif isinstance(value, Mapping):
            result[name] = merge_applied(result.get(name), value, child)
        elif isinstance(value, list):
            result[name] = _merge_list(result.get(name), value, child)
        else:
            result[name] = copy.deepcopy(value)
    return result


def _merge_list(live: Any, applied: list[Any], schema: Schema | None) -> list[Any]:
    applied_elements = item_elements(applied, schema)
    live_items = live if isinstance(live, list) else []
    live_elements = item_elements(live_items, schema)
    if applied_elements is None or live_elements is None:
        return copy.deepcopy(applied)
    element_schema = schema.items if schema is not None else None
    out = copy.deepcopy(live_items)
    for element, item in zip(applied_elements, applied, strict=True):
        if element in live_elements:
            index = live_elements.index(element)
            out[index] = merge_applied(out[index], item, element_schema)
        else:
            out.append(copy.deepcopy(item))
    return out


@dataclass(frozen=True)
class Conflict:
    manager: Manager
    path: Path


def conflict_error(conflicts: list[Conflict], api_version: str) -> ApiError:
    """409 as the apiserver words it (internal.NewConflictError)."""

    def who(manager: Manager) -> str:
        shown = json.dumps(manager.manager)
        if manager.subresource:
            shown += f" with subresource {json.dumps(manager.subresource)}"
        if manager.operation == "Update":
            shown += f" using {api_version}"
        return shown

    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {who(c.manager)}",
            "field": show_path(c.path),
        }
        for c in conflicts
    ]
    if len(conflicts) == 1:
        c = conflicts[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {who(c.manager)}: {show_path(c.path)}"
        )
    else:
        lines = []
        for manager in sorted({c.manager for c in conflicts}, key=lambda m: m.manager):
            lines.append(f"conflicts with {who(manager)}:")
            lines += [f"- {show_path(c.path)}" for c in conflicts if c.manager == manager]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})


def apply(
    managers: dict[Manager, set[Path]],
    applier: Manager,
    live: dict[str, Any],
    applied: dict[str, Any],
    schema: Schema | None,
    *,
    force: bool,
    api_version: str,
) -> dict[str, Any]:
    """Server-side apply of the tracked part `applied` onto the tracked part `live`.

    Updates `managers` in place; returns the new tracked part (or raises the
    409 conflict error).
    """
    if not isinstance(applied, Mapping):
        raise bad_request("an applied configuration must be an object")
    applied_set = fields_of(applied, schema)
    merged = merge_applied(live, applied, schema)
    conflicts = []
    for path in sorted(applied_set):
        before = get_at(live, path, schema)
        after = get_at(merged, path, schema)
        if before is MISSING or not _is_leaf(after) or json_equal(before, after):
            continue
        conflicts += [
            Conflict(key, path)
            for key, paths in managers.items()
            if key != applier and path in paths
        ]
    if conflicts and not force:
        raise conflict_error(conflicts, api_version)
    for c in conflicts:
        managers[c.manager].discard(c.path)
    others = set().union(*(paths for key, paths in managers.items() if key != applier))
    dropped = managers.get(applier, set()) - applied_set
    for path in sorted(dropped, key=len):
        if not any(_under(other, path) for other in others):
            remove_at(merged, path, schema)
    _drop_removed(managers, fields_of(live, schema) - fields_of(merged, schema))
    managers[applier] = applied_set
    return merged
