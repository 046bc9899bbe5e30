"""A drill file: the estate, the timeline, the assertions; loaded with every problem at once.

    name: vip-outage
    title: VIP outage and recovery
    estate: {path: ../estates/fast.yaml, members_per_region: 1}
    duration: 30s
    short_duration: 20s
    timeline: [...]      # chaos.drills.steps
    assertions: [...]    # chaos.drills.checks

`load_drill(path)` returns a `DrillFile`, or raises `DrillError` whose
problems name the file, the line and the field (as `gtm validate` does):
shape errors from pydantic, then the rules that span the file — unique step
ids, assertions naming steps of the right kind, regions, services and VIPs
the estate has, times within the drill, and the AccessPoint documents of the
AP steps (`chaos.drills.aps`: `DrillFile.accesspoints`). Paths in the file are relative to
it; the estate defaults to the demo's `examples/estate.yaml`, and
`estate.overrides` are merged into it (mappings merged key by key, anything
else replaced).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import Field, ValidationError

from chaos.drills.aps import ApDoc, accesspoint_rules, gtm_services, named, step_accesspoints
from chaos.drills.checks import (
    ALWAYS,
    AccesspointReady,
    AccesspointStatus,
    AnyCheck,
    Check,
    Converged,
    FailOpen,
    Impaired,
    NoFlipFlop,
    Ordered,
    Reflects,
    Split,
    Steady,
    Swept,
    Takeover,
    Untouched,
    Withdrawn,
)
from chaos.drills.steps import (
    ACTIONS,
    AccesspointApply,
    AccesspointDelete,
    AnyStep,
    BadReload,
    DrainAction,
    Heal,
    KillLeader,
    L4Withdraw,
    MeasureSplit,
    Model,
    Partition,
    PauseLeader,
    RegionDown,
    RegionEnter,
    RegionExit,
    RegionUp,
    RemoveAction,
    StateClear,
    StateFull,
    Step,
    VantageImpaired,
    VipClear,
    VipFault,
)
from gtm.config import ConfigError, Inventory, Problem, loads
from gtm.config.accesspoints import cluster_regions
from gtm.config.errors import FieldPath
from gtm.config.source import Source, parse
from gtm.config.values import Duration, Name

ROOT = Path(__file__).resolve().parents[2]
DEMO_ESTATE = ROOT / "examples" / "estate.yaml"

FAULTS_OUT = (VipFault, RegionDown, RegionExit, DrainAction, L4Withdraw)
FAULTS_BACK = (VipClear, RegionUp, RegionEnter)


class EstateSpec(Model):
    path: str | None = None  # None: the demo's examples/estate.yaml
    members_per_region: Literal[1, 2] = 2
    overrides: dict[str, Any] = {}


class Drill(Model):
    name: Name
    title: str
    description: str = ""
    estate: EstateSpec = EstateSpec()
    duration: Duration  # the timeline ends this long after the estate is healthy
    short_duration: Duration | None = None
    sample_every: Duration = Field(default=0.5, gt=0)
    dns_queries: int = Field(default=1, ge=1, le=20)  # per member, service, client region, sample
    timeline: list[AnyStep] = Field(min_length=1)
    assertions: list[AnyCheck] = []

    def length(self, short: bool) -> float:
        return self.short_duration if short and self.short_duration is not None else self.duration

    def step(self, step_id: str) -> Step:
        for s in self.timeline:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def schedule(self, short: bool) -> list[Step]:
        """The steps in the order they run (by time, then as written)."""
        return sorted(self.timeline, key=lambda s: s.when(short))

    def checks(self) -> list[Check]:
        """The drill's assertions, plus the ones every drill runs that it does not list."""
        listed: list[Check] = list(self.assertions)
        for kind in ALWAYS:
            if not any(isinstance(c, kind) for c in listed):
                listed.append(kind.model_validate({"check": _tag(kind)}))
        return listed


def _tag(kind: type[Check]) -> str:
    """The `check:` name of an assertion class (its Literal's one value)."""
    annotation = kind.model_fields["check"].annotation
    return str(get_args(annotation)[0])


@dataclass(frozen=True)
class DrillFile:
    """A drill that loaded, the estate it runs against (overrides merged) and where it came from."""

    path: Path
    drill: Drill
    estate_data: Mapping[str, Any]
    inventory: Inventory
    estate_source: Path
    accesspoints: Mapping[str, tuple[ApDoc, ...]] = dataclass_field(default_factory=dict)  # by step

    @property
    def name(self) -> str:
        return self.drill.name

    def estate_text(self) -> str:
        head = f"# {self.estate_source} for drill {self.drill.name}, overrides merged\n"
        return head + yaml.safe_dump(dict(self.estate_data), sort_keys=False)


class DrillError(ConfigError):
    """A drill file that cannot run; `problems` lists every reason with file and line."""


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_drill(path: str | Path) -> DrillFile:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise DrillError([Problem(str(file), None, (), f"cannot read: {e.strerror or e}")]) from e
    return loads_drill(text, file)


def loads_drill(text: str, file: Path) -> DrillFile:
    try:
        src = parse(text, str(file))
    except ConfigError as e:
        raise DrillError(e.problems) from None
    if not isinstance(src.data, dict):
        raise DrillError([src.problem((), "a drill file holds a mapping (name:, timeline:, …)")])
    try:
        drill = Drill.model_validate(src.data)
    except ValidationError as e:
        raise DrillError([_problem(src, err) for err in e.errors()]) from None
    problems = [src.problem(p, m) for p, m in _structure(drill)]
    estate_source = _estate_path(drill, file)
    estate_data: dict[str, Any] = {}
    inventory = None
    try:
        estate_data = merge(yaml.safe_load(estate_source.read_text()) or {}, drill.estate.overrides)
        inventory = loads(yaml.safe_dump(estate_data, sort_keys=False), str(estate_source))
    except OSError as e:
        problems.append(src.problem(("estate", "path"), f"cannot read {estate_source}: {e}"))
    except yaml.YAMLError as e:
        problems.append(src.problem(("estate", "path"), f"{estate_source} is not YAML: {e}"))
    except ConfigError as e:
        where = ("estate", "overrides") if drill.estate.overrides else ("estate", "path")
        problems += [src.problem(where, f"the estate does not validate: {p}") for p in e.problems]
    docs: dict[str, tuple[ApDoc, ...]] = {}
    if inventory is not None:
        docs, found = accesspoint_rules(
            drill.timeline, lambda s, short: s.when(short), file, inventory, estate_data
        )
        problems += [src.problem(p, m) for p, m in found]
        problems += [src.problem(p, m) for p, m in _references(drill, inventory, docs)]
    if problems or inventory is None:
        raise DrillError(problems)
    return DrillFile(file, drill, estate_data, inventory, estate_source, docs)


def _estate_path(drill: Drill, file: Path) -> Path:
    if drill.estate.path is None:
        return DEMO_ESTATE
    p = Path(drill.estate.path)
    return p if p.is_absolute() else (file.parent / p).resolve()


_TAGS = {"timeline", "assertions"}


def _problem(src: Source, err: Any) -> Problem:
    loc = list(err["loc"])
    # A tagged union puts the tag after the item's index: ('timeline', 0, 'vip_fault', 'mode').
    if len(loc) >= 3 and loc[0] in _TAGS and isinstance(loc[1], int) and isinstance(loc[2], str):
        item = src.data.get(loc[0]) if isinstance(src.data, dict) else None
        if isinstance(item, list) and loc[1] < len(item) and isinstance(item[loc[1]], dict):
            tag = item[loc[1]].get("do" if loc[0] == "timeline" else "check")
            if tag == loc[2]:
                del loc[2]
    path: FieldPath = tuple(p for p in loc if isinstance(p, int | str))
    kind = err["type"]
    if kind == "missing":
        message = "required field is missing"
    elif kind == "extra_forbidden":
        message = "unknown field (misspelt?)"
    elif kind == "union_tag_invalid":
        message = err["msg"]
    elif kind == "union_tag_not_found":
        message = "needs `do:` (a step) or `check:` (an assertion)"
    elif kind == "value_error" and isinstance(err.get("input"), dict):
        message = str(err["msg"]).removeprefix("Value error, ")  # a rule over a whole item
    else:
        value = err.get("input")
        shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
        message = f"{shown}: {str(err['msg']).removeprefix('Value error, ')}"
    return src.problem(path, message)


# --- rules that span the file -------------------------------------------------------------

Found = Iterator[tuple[FieldPath, str]]

_NEEDS: dict[type[Check], tuple[tuple[type[Step], ...], str]] = {
    Reflects: (
        (*FAULTS_OUT, *FAULTS_BACK),
        "a VIP or region fault, its repair, an exit, enter or drain",
    ),
    Converged: (ACTIONS[:4], "an operator action (region_exit, region_enter, drain, rollout)"),
    Ordered: ((RegionExit, RegionEnter, DrainAction), "region_exit, region_enter or drain"),
    Takeover: ((KillLeader, PauseLeader), "kill_leader or pause_leader"),
    Impaired: ((VantageImpaired,), "vantage_impaired"),
    FailOpen: ((VipFault, RegionDown), "vip_fault or region_down"),
    Split: ((MeasureSplit,), "measure_split"),
    AccesspointReady: ((AccesspointApply,), "accesspoint_apply"),
    Withdrawn: ((L4Withdraw,), "l4_withdraw"),
    Swept: ((AccesspointDelete,), "accesspoint_delete"),
}


def _structure(drill: Drill) -> Found:
    """Rules on the file alone: ids, references between steps and checks, times."""
    index: dict[str, int] = {}
    for i, s in enumerate(drill.timeline):
        if s.id in index:
            yield ("timeline", i, "id"), f"{s.id!r} is already the id of timeline[{index[s.id]}]"
        index.setdefault(s.id, i)
        for short in (False, True):
            if short and s.short_at is None and drill.short_duration is None:
                continue  # the short variant is the full one
            at, end = s.when(short), drill.length(short)
            if at > end:
                field = "short_at" if short and s.short_at is not None else "at"
                variant = "short_duration" if short else "duration"
                yield ("timeline", i, field), f"{at:g}s is after the drill's {variant} ({end:g}s)"
        if isinstance(s, RemoveAction):
            j = index.get(s.override_of)
            if j is None or j == i:
                yield ("timeline", i, "override_of"), f"no earlier step {s.override_of!r}"
            elif not isinstance(drill.timeline[j], ACTIONS[:4]):
                yield ("timeline", i, "override_of"), f"step {s.override_of!r} stores no override"
        if isinstance(s, ACTIONS) and s.expect != "refused" and s.rule is not None:
            yield ("timeline", i, "rule"), "a rule names the guardrail of an expected refusal"
        if isinstance(s, ACTIONS) and s.expect != "unavailable" and s.cause is not None:
            yield ("timeline", i, "cause"), "a cause names the errno of an expected 503"
        if isinstance(s, StateFull) and not any(
            isinstance(c, StateClear) and c.region == s.region for c in drill.timeline
        ):
            yield ("timeline", i, "do"), f"no state_clear of {s.region} after it"
        if isinstance(s, BadReload) and s.member == "b" and drill.estate.members_per_region < 2:
            yield ("timeline", i, "member"), "no member b: set estate.members_per_region: 2"
        if isinstance(s, (KillLeader, PauseLeader)) and drill.estate.members_per_region < 2:
            yield (
                ("timeline", i, "do"),
                f"{s.do} needs a standby: set estate.members_per_region: 2",
            )
    for i, c in enumerate(drill.assertions):
        for field in ("step", "start", "until"):
            value = getattr(c, field, None)
            key = "from" if field == "start" else field
            for ref in [value] if isinstance(value, str) else value or []:
                if ref not in index:
                    yield ("assertions", i, key), f"no step {ref!r} in the timeline"
                    continue
                wanted = _NEEDS.get(type(c))
                if field == "step" and wanted and not isinstance(drill.step(ref), wanted[0]):
                    yield ("assertions", i, key), f"step {ref!r} is not {wanted[1]}"
        yield from _deadlines(drill, i, c, index)
        if isinstance(c, (Steady, NoFlipFlop)) and c.start and c.until:
            for short in (False, True):
                if drill.step(c.start).when(short) > drill.step(c.until).when(short):
                    yield ("assertions", i, "until"), f"step {c.until!r} comes before {c.start!r}"
                    break


def _deadlines(drill: Drill, i: int, c: Check, index: dict[str, int]) -> Found:
    """A deadline the drill ends before cannot be met: say so rather than fail at run time."""
    bounds = [
        getattr(c, name)
        for name in ("within", "dns_within", "wles_within", "deleted_within")
        if getattr(c, name, None) is not None
    ]
    steps = c.steps if isinstance(c, Reflects) else [getattr(c, "step", None)]
    if not bounds:
        return
    for ref in steps:
        if ref not in index:
            continue
        for short in (False, True):
            left = drill.length(short) - drill.step(ref).when(short)
            if left < max(bounds):
                variant = "short variant" if short else "drill"
                yield (
                    ("assertions", i),
                    f"the {variant} ends {left:g}s after step {ref!r}, before its"
                    f" {max(bounds):g}s deadline",
                )
                break


def _references(
    drill: Drill, inv: Inventory, docs: Mapping[str, tuple[ApDoc, ...]] | None = None
) -> Found:
    """Rules against the estate: regions, services and VIPs the steps and checks name (an
    AccessPoint with `spec.gtm` the drill applies is a service too)."""
    regions = set(inv.region_names)
    docs = docs or {}
    services = set(inv.services) | gtm_services(docs)
    for i, s in enumerate(drill.timeline):
        for field in ("region", "regions"):
            value = getattr(s, field, None)
            for name in [value] if isinstance(value, str) else value or []:
                if name not in regions:
                    yield ("timeline", i, field), f"no region {name!r} (regions: {_names(regions)})"
        if isinstance(s, Partition | Heal) and s.regions and s.regions[0] == s.regions[1]:
            yield ("timeline", i, "regions"), "a partition is between two different regions"
        for name in getattr(s, "services", None) or []:
            if name not in services:
                yield (
                    ("timeline", i, "services"),
                    f"no service {name!r} (services: {_names(services)})",
                )
        for j, ref in enumerate(getattr(s, "vips", None) or []):
            problem = vip_ref_problem(ref, inv)
            if problem:
                yield ("timeline", i, "vips", j), problem
        if isinstance(s, MeasureSplit) and s.members:
            known = {f"{r}-{x}" for r in regions for x in ("a", "b")}
            for name in s.members:
                if name not in known:
                    yield ("timeline", i, "members"), f"no member {name!r} (like dc1-a)"
    for i, c in enumerate(drill.assertions):
        for name in getattr(c, "services", None) or []:
            if name not in services:
                yield ("assertions", i, "services"), f"no service {name!r}"
        if isinstance(c, FailOpen) and c.service not in services:
            yield ("assertions", i, "service"), f"no service {c.service!r}"
        if isinstance(c, AccesspointReady):
            applied = step_accesspoints(drill.step(c.step), docs) if c.step in _ids(drill) else []
            names = {a.name for a in applied} | {f"{a.namespace}/{a.name}" for a in applied}
            for name in c.accesspoints or []:
                if name not in names:
                    yield (
                        ("assertions", i, "accesspoints"),
                        f"step {c.step} applies no AccessPoint {name!r}"
                        f" (it applies {_names({a.name for a in applied}) or 'none'})",
                    )
        if isinstance(c, AccesspointStatus | Untouched) and c.step in _ids(drill):
            if c.accesspoint is not None and named(docs, c.accesspoint) is None:
                known = {a.name for found in docs.values() for a in (d.ap for d in found)}
                yield (
                    ("assertions", i, "accesspoint"),
                    f"no AccessPoint {c.accesspoint!r} in the drill"
                    f" (AccessPoints: {_names(known) or 'none'})",
                )
            elif c.accesspoint is None and len(step_accesspoints(drill.step(c.step), docs)) != 1:
                yield (
                    ("assertions", i, "accesspoint"),
                    f"step {c.step} does not name exactly one AccessPoint: name it",
                )
        if isinstance(c, Untouched):
            known_clusters = cluster_regions(inv)
            for name in c.clusters:
                if name not in known_clusters:
                    yield (
                        ("assertions", i, "clusters"),
                        f"no cluster {name!r} (clusters: {_names(set(known_clusters))})",
                    )
        if isinstance(c, Split) and isinstance(c.expected, dict):
            for source, row in c.expected.items():
                for name in [source, *row]:
                    if name not in regions:
                        yield ("assertions", i, "expected"), f"no region {name!r}"


def _ids(drill: Drill) -> set[str]:
    return {s.id for s in drill.timeline}


def vip_ref_problem(ref: str, inv: Inventory) -> str | None:
    """What is wrong with `service/region[/address]`, or None."""
    parts = ref.split("/")
    service, region = parts[0], parts[1]
    if service not in inv.services:
        return f"{ref}: no service {service!r}"
    vips = inv.estate.service(service).vips.get(region)
    if not vips:
        return f"{ref}: {service} has no VIPs in {region!r}"
    if len(parts) == 3 and not any(v.address == parts[2] for v in vips):
        return f"{ref}: {service} has no VIP {parts[2]} in {region}"
    return None


def _names(values: set[str]) -> str:
    return ", ".join(sorted(values))
