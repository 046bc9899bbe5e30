"""Strategic merge patch (`application/strategic-merge-patch+json`), for built-in kinds.

What kubectl's client-side `apply`, `edit` and `patch` send for a built-in
kind: maps merge as in a merge patch (`null` deletes), and a list merges as
its Go type declares (`patchStrategy:"merge" patchMergeKey:"port"` on a
Service's `ports`, `type` on conditions, `uid` on ownerReferences): items
with the same key merge, new ones are added, the rest stay. Lists without a
strategy are replaced whole. Directives: `$patch: delete|replace|merge` (on a
map or a list item), `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`,
`$retainKeys`. The declarations come from the kinds' schemas
(`Schema.patch_strategy`, `Schema.patch_key`), the same ones served as
`x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` on `/openapi/v3`.
"""

from __future__ import annotations

import copy
from typing import Any

from chaos.kubesim.errors import bad_request
from chaos.kubesim.schema import Schema

ORDER = "$setElementOrder/"
DELETE_FROM = "$deleteFromPrimitiveList/"


def _strip(value: Any) -> Any:
    """A patch value with its directives removed (what gets stored when it is new)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and "$patch" in v)]
    return value


def _child(schema: Schema | None, name: str) -> Schema | None:
    return schema.child(name) if schema is not None else None


def strategic_merge(original: Any, patch: Any, schema: Schema | None) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip(patch)
    if directive not in (None, "merge", "delete"):
        raise bad_request(f"Unknown patch type: {directive}")
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        child = _child(schema, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = strategic_merge(result.get(key), value, child)
        elif isinstance(value, list) and child is not None and "merge" in child.patch_strategy:
            result[key] = _merge_list(result.get(key), value, child)
        else:
            result[key] = _strip(value)
    for key, value in patch.items():
        if key.startswith(DELETE_FROM):
            name = key[len(DELETE_FROM) :]
            if isinstance(result.get(name), list) and isinstance(value, list):
                result[name] = [v for v in result[name] if v not in value]
    for key, value in patch.items():
        if key.startswith(ORDER):
            name = key[len(ORDER) :]
            if isinstance(result.get(name), list) and isinstance(value, list):
                result[name] = _order(result[name], value, _child(schema, name))
    if "$retainKeys" in patch:
        keep = patch["$retainKeys"] or []
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _matches(item: Any, probe: Any, key: str) -> bool:
    return isinstance(item, dict) and isinstance(probe, dict) and item.get(key) == probe.get(key)


def _merge_list(original: Any, patch: list[Any], schema: Schema) -> list[Any]:
    items = copy.deepcopy(original) if isinstance(original, list) else []
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return _strip([p for p in patch if not (isinstance(p, dict) and "$patch" in p)])
    key = schema.patch_key
    if not key:  # a list of primitives merged as a set
        return items + [p for p in _strip(patch) if p not in items]
    for entry in patch:
        if not isinstance(entry, dict) or key not in entry:
            raise bad_request(f"map: {entry!r} does not contain declared merge key: {key}")
        found = next((i for i, item in enumerate(items) if _matches(item, entry, key)), None)
        if entry.get("$patch") == "delete":
            items = [item for item in items if not _matches(item, entry, key)]
        elif found is None:
            items.append(_strip(entry))
        else:
            items[found] = strategic_merge(items[found], entry, schema.items)
    return items


def _order(items: list[Any], order: list[Any], schema: Schema | None) -> list[Any]:
    """Items named by `$setElementOrder` in its order; others keep their place after them."""
    key = schema.patch_key if schema is not None else ""

    def position(item: Any) -> int | None:
        for index, probe in enumerate(order):
            if (key and _matches(item, probe, key)) or (not key and item == probe):
                return index
        return None

    listed = sorted((i for i in items if position(i) is not None), key=lambda i: position(i))
    return listed + [i for i in items if position(i) is None]
