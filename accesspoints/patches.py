"""An AccessPoint's overrides: RFC 6902 JSON patch, then RFC 7386 merge patch, per cluster.

The document patched is the rendered template, its objects under their keys
(`{"service": {...}, "gateway": {...}, "virtualService": ..., "destinationRule": ...}`),
so paths read `/gateway/spec/servers/0/hosts/0` or `/service/metadata/annotations`.
Overrides apply in list order, each one's JSON patch before its merge patch. A
patch that fails (a bad path, a failed `test`) raises `PatchError` naming the
override and the op; the caller refuses the whole AP for that cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import jsonpatch
import jsonpointer

from accesspoints.model import Override


class PatchError(ValueError):
    """An override that cannot be applied: which one, which op, and why."""

    def __init__(self, override: int, op: int | None, message: str) -> None:
        self.override, self.op = override, op
        where = f"spec.overrides[{override}]" + (
            f".jsonPatch[{op}]" if op is not None else ".mergePatch"
        )
        super().__init__(f"{where}: {message}")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: a mapping patch merges key by key (`null` deletes); anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def apply_overrides(
    document: Mapping[str, Any], overrides: Sequence[tuple[int, Override]]
) -> dict[str, Any]:
    """`document` with each (index, override) applied in order; a new value."""
    doc: dict[str, Any] = copy.deepcopy(dict(document))
    for index, override in overrides:
        for k, op in enumerate(override.json_patch):
            try:
                doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=False)
            except jsonpatch.JsonPatchTestFailed as e:
                raise PatchError(index, k, f"test failed: {_op(op)}: {e}") from None
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
                raise PatchError(index, k, f"{_op(op)}: {e}") from None
            except (KeyError, IndexError, TypeError, ValueError) as e:
                raise PatchError(index, k, f"{_op(op)}: {type(e).__name__}: {e}") from None
        if override.merge_patch is not None:
            merged = merge_patch(doc, override.merge_patch)
            if not isinstance(merged, dict):
                raise PatchError(index, None, "must be a mapping of template keys")
            doc = merged
    return doc


def _op(op: Mapping[str, Any]) -> str:
    return f"{op.get('op')} {op.get('path')}"
