"""A staged rollout: a changed template reaches the clusters of the scope one by one.

    policy:
      rollout:
        order: [dc1, dc2, dc3]     # the clusters of the scope not named go last, in scope order
        maxInFlight: 1             # clusters started whose gate has not held yet, at most
        pauseAfter: [dc1]          # wait for `gtm accesspoint resume` after these
        gate: {conditions: [Applied, L4Ready], timeout: 5m}

The unit of a rollout is the **template revision** (`template_revision`): a hash of
what the operator wrote that shapes the rendered objects (`trafficTemplate`,
`overrides`, `upstreams`). What discovery changes (an upstream's VIP that appears or
leaves) is not a new template: it reaches every cluster already on the revision at
once, rollout or not. Each cluster's status entry records the template revision it
took (`template`) and when it took it (`templateSince`); `progress` reads those
entries, the gate's conditions in each cluster, the operator's resume and the last
rollout status, and says which clusters may take the revision now.

- A cluster **starts** (takes the revision) when every cluster before it in the
  order has started, fewer than `maxInFlight` started clusters wait for their gate,
  no pause before it is unreleased, and the rollout is not aborted.
- Its **gate holds** when every gate condition is true in it (`model.GATES`).
- A gate that has not held `timeout` seconds after its cluster started (or after
  the last resume) **aborts** the rollout: nothing more starts; the clusters not
  started keep the old revision (they are not touched at all: gtm cannot render a
  template it no longer has). Aborted stays aborted for that revision until
  `gtm accesspoint resume` (a new clock for every gate) or a new revision.
- After a cluster of `pauseAfter` whose gate held, the rollout is **paused** until
  `gtm accesspoint resume` names that cluster (or a later one) for this revision.

Pure: the controller gives the facts and writes what it returns into
`status.rollout`; the leader of each region acts for its own clusters, the next
cluster's leader when the AP's status shows the previous cluster's gate held.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from accesspoints.model import AccessPoint

RESUME = "gtm.io/rollout-resume"  # annotation: {"revision", "after", "at"} (`Resume`)
Phase = Literal["Progressing", "Paused", "Aborted", "Complete"]


def template_revision(ap: AccessPoint) -> str:
    """The hash of what the operator wrote that shapes the rendered objects."""
    spec = ap.spec.model_dump(
        mode="json", by_alias=True, include={"traffic_template", "overrides", "upstreams"}
    )
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def order_of(ap: AccessPoint) -> list[str]:
    """The clusters in rollout order: `order` first, the rest of the scope after it."""
    rollout = ap.spec.policy.rollout
    named = [c for c in (rollout.order if rollout else ()) if c in ap.spec.scope.clusters]
    return [*dict.fromkeys(named), *(c for c in ap.spec.scope.clusters if c not in named)]


@dataclass(frozen=True)
class Resume:
    """An operator's `gtm accesspoint resume`: release the pause after `after` for
    `revision`, and give every gate a new clock from `at`."""

    revision: str
    after: str
    at: datetime

    def annotation(self) -> str:
        at = self.at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return json.dumps({"revision": self.revision, "after": self.after, "at": at})

    @staticmethod
    def of(doc: Mapping[str, Any]) -> Resume | None:
        """The AP document's resume annotation; None when absent or not one."""
        raw = ((doc.get("metadata") or {}).get("annotations") or {}).get(RESUME)
        try:
            value = json.loads(raw) if isinstance(raw, str) else None
            at = datetime.fromisoformat(str(value["at"]).replace("Z", "+00:00"))
            return Resume(str(value["revision"]), str(value["after"]), at)
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class Progress:
    """Where a rollout stands, and what may start now."""

    revision: str
    phase: Phase
    step: int  # 1-based position in the order of the cluster it waits on (len: complete)
    cluster: str | None  # the cluster it waits on
    message: str
    since: str  # when it entered this phase (RFC 3339)
    may_start: frozenset[str] = field(default_factory=frozenset)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "revision": self.revision,
            "phase": self.phase,
            "step": self.step,
            "message": self.message,
            "since": self.since,
            "cluster": self.cluster,  # null removes it (the status is written by merge patch)
        }
        return out


def started(entry: Mapping[str, Any] | None, revision: str) -> bool:
    return bool(entry) and entry.get("template") == revision  # type: ignore[union-attr]


def _at(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def progress(
    ap: AccessPoint,
    revision: str,
    entries: Mapping[str, Mapping[str, Any]],
    failing: Callable[[str], Sequence[str]],
    *,
    last: Mapping[str, Any] | None,
    resume: Resume | None,
    now: datetime,
) -> Progress:
    """The rollout of `revision` from each cluster's status entry (`entries`), the gate
    conditions not true in a cluster (`failing`), the last `status.rollout` and resume."""
    rollout = ap.spec.policy.rollout
    order = order_of(ap)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    last = last or {}
    resumed = resume if resume is not None and resume.revision == revision else None

    def phase(kind: Phase, step: int, cluster: str | None, message: str, may=()) -> Progress:
        same = last.get("revision") == revision and last.get("phase") == kind
        since = str(last.get("since")) if same and last.get("since") else stamp
        return Progress(revision, kind, step, cluster, message, since, frozenset(may))

    if rollout is None:  # no staged rollout: every cluster takes it at once
        return Progress(revision, "Complete", len(order), None, "", stamp, frozenset(order))
    if last.get("revision") == revision and last.get("phase") == "Aborted":
        aborted_at = _at(last.get("since"))
        if resumed is None or aborted_at is None or resumed.at <= aborted_at:
            return Progress(
                revision, "Aborted", int(last.get("step") or 1), last.get("cluster"),
                str(last.get("message") or ""), str(last.get("since") or stamp),
            )  # fmt: skip
    released = order.index(resumed.after) if resumed and resumed.after in order else -1
    may: list[str] = []
    waiting: list[tuple[int, str, Sequence[str]]] = []
    paused: tuple[int, str] | None = None
    for i, cluster in enumerate(order):
        if not started(entries.get(cluster), revision):
            if paused is None and len(waiting) + len(may) < rollout.max_in_flight:
                may.append(cluster)
            else:
                paused = paused or (-1, "")  # nothing after a cluster that may not start
            continue
        fails = failing(cluster)
        if not fails:
            if cluster in rollout.pause_after and released < i and paused is None:
                paused = (i, cluster)
            continue
        begun = _at((entries.get(cluster) or {}).get("templateSince")) or now
        if resumed is not None and resumed.at > begun:
            begun = resumed.at
        if (now - begun).total_seconds() > rollout.gate.timeout:
            return phase(
                "Aborted", i + 1, cluster,
                f"gate not held in {cluster} within {rollout.gate.timeout:g}s: "
                f"{', '.join(fails)}; the clusters after it keep their revision",
            )  # fmt: skip
        waiting.append((i, cluster, fails))
    if waiting:
        i, cluster, fails = waiting[0]
        message = f"waiting for the gate in {cluster}: {', '.join(fails)}"
        return phase("Progressing", i + 1, cluster, message, may)
    if paused is not None and paused[0] >= 0:
        i, cluster = paused
        message = f"paused after {cluster}: gtm accesspoint resume {ap.name} -n {ap.namespace}"
        return phase("Paused", i + 1, cluster, message)
    if may:
        return phase(
            "Progressing", order.index(may[0]) + 1, may[0], f"starting in {', '.join(may)}", may
        )
    return phase("Complete", len(order), None, "every cluster holds it")
