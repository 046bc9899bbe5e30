"""What wakes the leader's AccessPoint controller before its resync: watches on what it
renders from.

- every cluster of the estate, each AccessPoint namespace: the Services gtm rendered
  (`gtm.io/managed=true`). A VIP that appears in, or leaves, a Service's
  `status.loadBalancer`, or a Service created or deleted, wakes the controller;
- the home cluster: the AccessPoints. A changed spec (its `generation`), a resume
  (`gtm.io/rollout-resume`), a rollout that moved (`status.rollout`), an AP created
  or deleted wake it. The leaders' own status writes of conditions and entries do
  not: they would wake the three regions' leaders in turn forever.

A wake-up is a whole pass, as the resync is (discovery still reads by list: one list
per kind, namespace and cluster); the watches only decide *when*. `Wakeup.wait`
coalesces: wake-ups during a pass make one pass after it. Each watch lists once
(`limit=1`, for the collection's resourceVersion), then watches from there; a watch
that breaks is resumed from the last version seen, after a backoff; one too old (410)
lists again and wakes the controller (events may have been missed). A watch that
cannot be opened costs nothing but speed: the resync still comes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import structlog

from accesspoints import LABEL_MANAGED
from accesspoints.rollout import RESUME
from gtm.service.accesspoint_apply import ClusterObjects
from kube import Client, Expired, KubeError, WatchEvent

log = structlog.get_logger("gtm.accesspoints")

GROUP, VERSION, PLURAL = "gtm.io", "v1alpha1", "accesspoints"
WATCH_SECONDS = 300  # the server ends a watch after this; it is resumed at once


class Wakeup:
    """Why the controller should pass again before its resync (coalesced)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._why: list[str] = []

    def set(self, why: str) -> None:
        if len(self._why) < 20:
            self._why.append(why)
        self._event.set()

    async def wait(self, at_most: float) -> list[str]:
        """The reasons given since the last wait; [] when `at_most` seconds passed without."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await self._event.wait()
        why, self._why = self._why, []
        self._event.clear()
        return why


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


class ServiceChanges:
    """A Service's VIPs changed (or it came or went)."""

    def __init__(self, cluster: str) -> None:
        self._cluster = cluster
        self._seen: dict[str, tuple[str, ...]] = {}

    def __call__(self, event: WatchEvent) -> str | None:
        key = _key(event.object)
        if event.type == "DELETED":
            self._seen.pop(key, None)
            return f"{self._cluster}: Service {key} deleted"
        status = event.object.get("status") or {}
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        vips = tuple(sorted(str(i.get("ip")) for i in ingress if isinstance(i, Mapping)))
        before = self._seen.get(key)
        self._seen[key] = vips
        if before == vips:
            return None
        return f"{self._cluster}: Service {key} VIPs {', '.join(vips) or 'none'}"


class AccessPointChanges:
    """An AP's spec, resume or rollout changed (or it came or went); not its other status."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[Any, ...]] = {}

    def __call__(self, event: WatchEvent) -> str | None:
        key = _key(event.object)
        if event.type == "DELETED":
            self._seen.pop(key, None)
            return f"AccessPoint {key} deleted"
        meta = event.object.get("metadata") or {}
        rollout = (event.object.get("status") or {}).get("rollout") or {}
        state = (
            meta.get("generation"),
            (meta.get("annotations") or {}).get(RESUME),
            rollout.get("revision"),
            rollout.get("phase"),
            rollout.get("cluster"),
        )
        before = self._seen.get(key)
        self._seen[key] = state
        return None if before == state else f"AccessPoint {key} changed"


async def follow(
    client: Client,
    call: Callable[..., Any],
    what: str,
    changed: Callable[[WatchEvent], str | None],
    wake: Wakeup,
) -> None:
    """List once, then watch `call` for good, waking `wake` on what `changed` reports."""
    version: str | None = None
    failures = 0
    while True:
        try:
            if version is None:
                page = await client.request("list", partial(call, limit=1), what=what)
                version = str((page.get("metadata") or {}).get("resourceVersion") or "")
            async with contextlib.aclosing(
                client.watch(call, resource_version=version, seconds=WATCH_SECONDS)
            ) as events:
                async for event in events:
                    failures = 0
                    version = event.resource_version or version
                    if event.type != "BOOKMARK" and (why := changed(event)):
                        wake.set(why)
        except Expired:
            version = None
            wake.set(f"{what}: watch too old, listed again")
        except KubeError as e:
            failures += 1
            if failures == 1:
                log.warning("accesspoint.watch_lost", what=what, error=str(e))
            await asyncio.sleep(client.retry.pause(failures))


def watches(
    home: Client,
    namespaces: tuple[str, ...],
    objects: Mapping[str, ClusterObjects],
    wake: Wakeup,
) -> list[Any]:
    """The coroutines that watch the home cluster's APs and every cluster's Services."""
    out = []
    for ns in namespaces:
        aps = partial(home.custom_objects.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL)
        out.append(follow(home, aps, f"AccessPoint {ns}", AccessPointChanges(), wake))
        for name, cluster in sorted(objects.items()):
            services = partial(
                cluster.client.core.list_namespaced_service,
                ns,
                label_selector=f"{LABEL_MANAGED}=true",
            )
            out.append(
                follow(
                    cluster.client, services, f"{name}: Services {ns}", ServiceChanges(name), wake
                )
            )
    return out
