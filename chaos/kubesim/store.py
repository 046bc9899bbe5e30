"""The object store, with the apiserver's write rules.

One global resourceVersion counter orders every write. Create drops `status`
(for kinds with a status subresource); a write to the main resource keeps
the old `status`, a write to `/status` keeps everything but `status`;
`metadata.generation` rises only when something outside metadata and status
changes; a stale resourceVersion is a 409; a write that changes nothing keeps
the resourceVersion and publishes no change. Every write keeps
`metadata.managedFields` with each manager's field set (`managed`): an
Update takes what it changed, `apply` is server-side apply (conflicts,
force, removal of disowned fields); managedFields a client sends are taken
as the starting point, as the apiserver does. Deleting a Namespace deletes
its objects. Every committed write is published to the `WatchHub`.

Objects are kept in their storage version; callers convert on the way out.
"""

from __future__ import annotations

import bisect
import copy
import functools
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chaos.kubesim import managed
from chaos.kubesim.errors import (
    Cause,
    already_exists,
    bad_request,
    conflict,
    internal_error,
    invalid,
    not_found,
)
from chaos.kubesim.kinds import merge_schema
from chaos.kubesim.managed import Manager
from chaos.kubesim.patch import json_equal
from chaos.kubesim.resources import Resource, ResourceTable
from chaos.kubesim.selectors import ObjectFilter
from chaos.kubesim.validation import admit
from chaos.kubesim.watch import Change, WatchHub

SYSTEM_FIELDS = (
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)
_KEPT_BY_PUT = ("uid", "creationTimestamp", "generation", "managedFields", "resourceVersion")
_NAME_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    """What `generation` tracks: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _require(resource: Resource, name: str, what: str, wanted: str | None, actual: Any) -> None:
    """A precondition (UID or ResourceVersion) that does not hold is a 409."""
    if wanted is not None and wanted != actual:
        why = (
            f"Precondition failed: {what} in precondition: {wanted},"
            f" {what} in object meta: {actual or ''}"
        )
        raise conflict(resource.group_resource, name, why)


@dataclass(frozen=True)
class WriteResult:
    object: dict[str, Any]
    created: bool = False
    changed: bool = True


@dataclass(frozen=True)
class Preconditions:
    uid: str | None = None
    resource_version: str | None = None


class Store:
    """All objects of one simulated cluster."""

    def __init__(
        self,
        resources: ResourceTable,
        hub: WatchHub,
        clock: Clock = utc_now,
        seed: int | None = None,
    ) -> None:
        self.resources = resources
        self.hub = hub
        self._clock = clock
        self._random = random.Random(seed)
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._rv = 0

    @property
    def resource_version(self) -> int:
        return self._rv

    # -- reads ---------------------------------------------------------------

    def find(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self._objects.get(resource.group_resource, {}).get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        obj = self.find(resource, namespace, name)
        if obj is None:
            raise not_found(resource.group_resource, name)
        return obj

    def select(
        self, resource: Resource, namespace: str | None, selection: ObjectFilter = ObjectFilter()
    ) -> list[dict[str, Any]]:
        """Every matching object, in key order: a list of one page."""
        return self.page(resource, namespace, selection, None, None)[0]

    def page(
        self,
        resource: Resource,
        namespace: str | None,
        selection: ObjectFilter,
        after: tuple[str, str] | None,
        limit: int | None,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of a list: the matching objects after key `after`, in key order, at
        most `limit` of them (None or 0: all), and how many more match. Only the page is
        copied: a list of 16,000 objects in pages of 500 copies each object once, not
        once per page."""
        kept = self._objects.get(resource.group_resource, {})
        keys = sorted(kept)
        start = bisect.bisect_right(keys, after) if after is not None else 0
        out: list[dict[str, Any]] = []
        more = 0
        for key in keys[start:]:
            if namespace is not None and key[0] != namespace:
                continue
            obj = kept[key]
            if not selection.matches(obj):
                continue
            if limit and len(out) == limit:
                more += 1
            else:
                out.append(copy.deepcopy(obj))
        return out, more

    def everything(self) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(o) for kept in self._objects.values() for _, o in sorted(kept.items())
        ]

    # -- writes --------------------------------------------------------------

    def create(
        self,
        resource: Resource,
        namespace: str,
        obj: dict[str, Any],
        *,
        manager: str,
        operation: str = "Update",
        dry_run: bool = False,
        keep_status: bool = False,
        managers: dict[Manager, set[managed.Path]] | None = None,
    ) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        meta = self._place(resource, namespace, obj, name=None)
        if meta.get("resourceVersion"):
            raise internal_error("resourceVersion should not be set on objects to be created")
        if not meta.get("name") and isinstance(meta.get("generateName"), str):
            suffix = "".join(self._random.choice(_NAME_SUFFIX) for _ in range(5))
            meta["name"] = meta["generateName"] + suffix
        for system_field in SYSTEM_FIELDS:
            meta.pop(system_field, None)
        if resource.status_subresource and not keep_status:
            obj.pop("status", None)
        stored = admit(resource, obj, patched=False)
        key = (namespace, stored["metadata"]["name"])
        if key in self._objects.get(resource.group_resource, {}):
            raise already_exists(resource.group_resource, key[1])
        self._stamp_new(resource, stored)
        writer = Manager(manager, operation)
        if managers is None:
            managers = {}
            self._track_update(resource, managers, writer, None, stored)
        self._set_managed(resource, stored, managers, None, writer)
        if not dry_run:
            self._commit(resource, stored, previous=None)
        return copy.deepcopy(stored)

    def update(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        obj: dict[str, Any],
        *,
        manager: str,
        subresource: str | None = None,
        operation: str = "Update",
        patched: bool = False,
        allow_create: bool = False,
        dry_run: bool = False,
    ) -> WriteResult:
        candidate = copy.deepcopy(obj)
        meta = self._place(resource, namespace, candidate, name=name)
        old = self._objects.get(resource.group_resource, {}).get((namespace, name))
        if old is None:
            if subresource or not (resource.create_on_update or allow_create):
                raise not_found(resource.group_resource, name)
            _require(resource, name, "UID", meta.get("uid") or None, None)
            meta.pop("resourceVersion", None)
            created = self.create(
                resource,
                namespace,
                candidate,
                manager=manager,
                operation=operation,
                dry_run=dry_run,
            )
            return WriteResult(created, created=True)
        self._check_preconditions(resource, name, old, meta, patched=patched)
        incoming = meta.get("managedFields")
        base = incoming if isinstance(incoming, list) and incoming and not subresource else None
        managers = managed.decode(
            base if base is not None else old["metadata"].get("managedFields")
        )
        new = self._merge_into(resource, old, candidate, subresource)
        new = admit(resource, new, patched=patched, old=old)
        writer = Manager(manager, operation, subresource or "")
        self._track_update(resource, managers, writer, old, new)
        return self._finish(resource, old, new, managers, writer, dry_run=dry_run)

    def apply(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        applied: dict[str, Any],
        *,
        manager: str,
        force: bool = False,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> WriteResult:
        """Server-side apply (`managed.apply`): merge, conflicts, removal of disowned fields."""
        applied = copy.deepcopy(applied)
        meta = self._place(resource, namespace, applied, name=name)
        old = self._objects.get(resource.group_resource, {}).get((namespace, name))
        if old is None and subresource:
            raise not_found(resource.group_resource, name)
        if old is not None:
            self._check_preconditions(resource, name, old, meta, patched=True)
        schema = merge_schema(resource.kind)
        writer = Manager(manager, "Apply", subresource or "")
        managers = managed.decode(old["metadata"].get("managedFields") if old else None)
        live = old if old is not None else {"metadata": {"name": name}}
        part = functools.partial(managed.tracked, status_subresource=resource.status_subresource)
        merged = managed.apply(
            managers,
            writer,
            part(live, subresource=subresource or ""),
            part(applied, subresource=subresource or ""),
            schema,
            force=force,
            api_version=resource.api_version(resource.storage_version),
        )
        new = self._with_tracked(resource, live, merged, subresource)
        if old is None:
            for kept in ("generateName",):
                if kept in meta:
                    new["metadata"][kept] = meta[kept]
            created = self.create(
                resource,
                namespace,
                new,
                manager=manager,
                operation="Apply",
                dry_run=dry_run,
                managers=managers,
            )
            return WriteResult(created, created=True)
        new = admit(resource, new, patched=False, old=old)
        return self._finish(resource, old, new, managers, writer, dry_run=dry_run)

    def _finish(
        self,
        resource: Resource,
        old: dict[str, Any],
        new: dict[str, Any],
        managers: dict[Manager, set[managed.Path]],
        writer: Manager,
        *,
        dry_run: bool,
    ) -> WriteResult:
        """The common end of an update: no-op check, generation, managedFields, commit."""
        new["metadata"].pop("managedFields", None)
        bare_old = copy.deepcopy(old)
        old_entries = bare_old["metadata"].pop("managedFields", None)
        if json_equal(new, bare_old) and managed.same_sets(managers, managed.decode(old_entries)):
            return WriteResult(copy.deepcopy(old), changed=False)
        meta = new["metadata"]
        if resource.tracks_generation and not json_equal(_content(new), _content(old)):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        self._set_managed(resource, new, managers, old_entries, writer)
        if not dry_run:
            self._commit(resource, new, previous=old)
        return WriteResult(copy.deepcopy(new))

    def delete(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        preconditions: Preconditions = Preconditions(),
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        old = self._objects.get(resource.group_resource, {}).get((namespace, name))
        if old is None:
            raise not_found(resource.group_resource, name)
        meta = old["metadata"]
        _require(resource, name, "UID", preconditions.uid, meta.get("uid"))
        _require(
            resource,
            name,
            "ResourceVersion",
            preconditions.resource_version,
            meta["resourceVersion"],
        )
        if not dry_run:
            if resource.kind == "Namespace" and not resource.group:
                self._empty_namespace(name)
            del self._objects[resource.group_resource][(namespace, name)]
            self._rv += 1
            self.hub.publish(
                Change("DELETED", resource.group_resource, namespace, self._rv, None, old)
            )
        return copy.deepcopy(old)

    def _empty_namespace(self, namespace: str) -> None:
        """What the namespace controller does before a Namespace goes: delete its objects
        (here at once; a real cluster shows the Namespace `Terminating` meanwhile)."""
        for group_resource, kept in self._objects.items():
            for key in [k for k in kept if k[0] == namespace]:
                gone = kept.pop(key)
                self._rv += 1
                self.hub.publish(Change("DELETED", group_resource, namespace, self._rv, None, gone))

    def put(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        """A fixture write: create or overwrite, status included, no preconditions."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        namespace = str(meta.get("namespace") or "default") if resource.namespaced else ""
        self._place(resource, namespace, obj, name=None)
        for system_field in SYSTEM_FIELDS:
            meta.pop(system_field, None)
        new = admit(resource, obj, patched=False)
        meta = new["metadata"]
        old = self._objects.get(resource.group_resource, {}).get((namespace, meta["name"]))
        if old is None:
            self._stamp_new(resource, new)
        else:
            for kept in _KEPT_BY_PUT:
                if kept in old["metadata"]:
                    meta[kept] = copy.deepcopy(old["metadata"][kept])
            if json_equal(new, old):
                return copy.deepcopy(old)
            if resource.tracks_generation and not json_equal(_content(new), _content(old)):
                meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        writer = Manager("kubesim", "Update")
        managers = managed.decode(old["metadata"].get("managedFields") if old else None)
        self._track_update(resource, managers, writer, old, new)
        self._set_managed(
            resource, new, managers, old["metadata"].get("managedFields") if old else None, writer
        )
        self._commit(resource, new, previous=old)
        return copy.deepcopy(new)

    def restore(self, objects: Iterable[dict[str, Any]], resource_version: int) -> None:
        """Load a snapshot: the objects as they were, watches resume only from now on."""
        self._objects.clear()
        for obj in objects:
            found = self.resources.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
            if found is None:
                continue
            resource, _ = found
            meta = obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            self._objects.setdefault(resource.group_resource, {})[key] = copy.deepcopy(obj)
        self._rv = resource_version
        self.hub.forget_history(resource_version)

    # -- internals -----------------------------------------------------------

    def _place(
        self, resource: Resource, namespace: str, obj: dict[str, Any], name: str | None
    ) -> dict[str, Any]:
        """Check the body's name and namespace against the URL's and fill them in."""
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if name is not None:
            if meta.get("name") and meta["name"] != name:
                raise bad_request(
                    f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
                )
            meta["name"] = name
        if resource.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        return meta

    def _check_preconditions(
        self,
        resource: Resource,
        name: str,
        old: dict[str, Any],
        meta: dict[str, Any],
        *,
        patched: bool,
    ) -> None:
        _require(resource, name, "UID", meta.get("uid") or None, old["metadata"]["uid"])
        wanted = meta.get("resourceVersion")
        if not wanted:
            if patched or resource.unconditional_update:
                return
            cause = Cause(
                "metadata.resourceVersion",
                "FieldValueInvalid",
                "Invalid value: 0x0: must be specified for an update",
            )
            raise invalid(resource.group_resource, name, [cause])
        if str(wanted) != old["metadata"]["resourceVersion"]:
            raise conflict(resource.group_resource, name)

    def _merge_into(
        self,
        resource: Resource,
        old: dict[str, Any],
        candidate: dict[str, Any],
        subresource: str | None,
    ) -> dict[str, Any]:
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in candidate:
                new["status"] = candidate["status"]
            else:
                new.pop("status", None)
            return new
        new = candidate
        meta = new["metadata"]
        for system_field in SYSTEM_FIELDS:
            meta.pop(system_field, None)
            if system_field in old["metadata"]:
                meta[system_field] = copy.deepcopy(old["metadata"][system_field])
        if resource.status_subresource:
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        return new

    def _stamp_new(self, resource: Resource, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.UUID(int=self._random.getrandbits(128), version=4))
        meta["creationTimestamp"] = _stamp(self._clock())
        if resource.tracks_generation:
            meta["generation"] = 1

    def _track_update(
        self,
        resource: Resource,
        managers: dict[Manager, set[managed.Path]],
        writer: Manager,
        old: dict[str, Any] | None,
        new: dict[str, Any],
    ) -> None:
        """An Update's field ownership: the writer owns what it added or changed."""

        def part(obj: dict[str, Any] | None) -> dict[str, Any]:
            return managed.tracked(
                obj or {},
                status_subresource=resource.status_subresource,
                subresource=writer.subresource,
            )

        managed.record_update(managers, writer, part(old), part(new), merge_schema(resource.kind))

    def _set_managed(
        self,
        resource: Resource,
        obj: dict[str, Any],
        managers: dict[Manager, set[managed.Path]],
        previous: Any,
        writer: Manager,
    ) -> None:
        entries = managed.encode(
            managers,
            previous,
            api_version=resource.api_version(resource.storage_version),
            now=_stamp(self._clock()),
            touched=writer,
        )
        if entries:
            obj["metadata"]["managedFields"] = entries
        else:
            obj["metadata"].pop("managedFields", None)

    def _with_tracked(
        self,
        resource: Resource,
        base: dict[str, Any],
        part: dict[str, Any],
        subresource: str | None,
    ) -> dict[str, Any]:
        """`base` with its tracked part (see `managed.tracked`) replaced by `part`."""
        new = copy.deepcopy(base)
        if subresource == "status":
            new.pop("status", None)
            if "status" in part:
                new["status"] = copy.deepcopy(part["status"])
            return new
        meta = new.setdefault("metadata", {})
        for key in managed.TRACKED_METADATA:
            meta.pop(key, None)
        # an emptied map or list of ObjectMeta is omitted (Go's omitempty)
        meta.update({k: copy.deepcopy(v) for k, v in (part.get("metadata") or {}).items() if v})
        for key in list(new):
            if key in ("apiVersion", "kind", "metadata"):
                continue
            if key == "status" and resource.status_subresource:
                continue
            del new[key]
        new.update({k: copy.deepcopy(v) for k, v in part.items() if k != "metadata"})
        return new

    def _commit(
        self, resource: Resource, obj: dict[str, Any], previous: dict[str, Any] | None
    ) -> None:
        self._rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._rv)
        key = (meta.get("namespace", ""), meta["name"])
        stored = copy.deepcopy(obj)
        self._objects.setdefault(resource.group_resource, {})[key] = stored
        kind = "ADDED" if previous is None else "MODIFIED"
        self.hub.publish(Change(kind, resource.group_resource, key[0], self._rv, stored, previous))
