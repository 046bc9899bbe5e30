"""`gtm bench intent`: years of operator intent replayed through the real stores.

The replay: `--actions-per-day` operator actions a day (drains and their
removes, exits for some services that expire by themselves, exits of a whole
region closed by an `enter`, drains that expire), spread over each day, for
`--days` days, on a clock the bench advances (the stores read none). Before
each action the replay expires what is due, as the leader's tick does; once
an hour of replayed time it compacts, as the leader does on a peer's pull
(`gtm.service.intent_merge.compactable`: the peer regions' states, here in
sync with this one, and the week of `TOMBSTONE_BOUND`).

Where it goes through the stores: the state is a `FileIntentStore` with its
`FileAudit` in a temporary state directory. Most days are pure state
operations (`IntentState.add/remove/enter/expire/compact`) on the overrides in
force and the tombstones made since the last compaction (the rest are joined
back at each compaction and at the end of the day), their audit entries
(`intent.transitions` of each operation) appended to the real audit once a
day (so it rotates as it would); the last `--store-days` days before each checkpoint (the end of each
year, and the end of the run) go through `store.update` action by action, as
the member writes them (one compare-and-swap write and one audit append
each). At the start of such a window the state replayed so far is placed as
the store's next version file (`intent.versioned`, the store's own write;
its audit was appended day by day already).

At each checkpoint: the intent file's size, the audit's (live file and
rotated segments), and the median of `--repeat` runs of each per-tick and
per-action cost — `store.load()`, one drain through `store.update()`, the
state's `digest`, `IntentState.from_dict(to_dict())`, `expire` and
`compactable` scans, `history(limit=100)` — with the tombstones kept and
retired. The peer in the same run is the state without compaction (the peer
region never heard from, so nothing is compactable), replayed for the first
year only and measured the same way: ratios say what compaction saves.

Quick run: `gtm bench intent --days 20 --actions-per-day 50`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import structlog
from rich.console import Console
from rich.table import Table

from chaos.bench.timing import timed
from gtm.service.intent_merge import compactable
from intent import FileAudit, FileIntentStore, IntentState, transitions
from intent.audit import AuditEntry
from intent.versioned import VersionedFiles
from policies import Kind, Override

DAY = 86400.0
HOUR = 3600.0
YEAR = 365
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
EPOCH = 1
REGION = "dc1"  # the pair whose store is replayed
PEERS = ("dc2", "dc3")
REGIONS = (REGION, *PEERS)
WHO = ("alice", "bob", "carol", "dave", "erin", "frank")
WHY = (
    "rack maintenance in row {n}",
    "network change {n}: core switch upgrade",
    "canary of release 2026.{n}",
    "capacity rebalance after incident {n}",
    "certificate rotation on the ingress gateways, batch {n}",
)
SERVICES = tuple(f"svc{n:04d}" for n in range(500))
EXIT_EXPIRY = 30 * 60.0  # an exit of some services that expires by itself
DRAIN_EXPIRY = 4 * HOUR  # a drain that expires by itself
ENTER_RAMP = 120.0
ENTER_LASTS = 150.0  # hold + propagation, as the operations give an enter


@dataclass(frozen=True)
class Spec:
    days: int = 5 * YEAR
    actions_per_day: int = 200
    store_days: int = 1  # days before each checkpoint written through the store
    baseline_days: int = YEAR  # the replay without compaction (capped at `days`)
    repeat: int = 9
    seed: int = 1


@dataclass
class Checkpoint:
    """The figures at the end of one replayed day (sizes in bytes, times in ms)."""

    day: int
    compaction: bool
    actions: int  # operator actions so far
    overrides_in_force: int
    tombstones_kept: int
    tombstones_retired: int
    version: int
    intent_bytes: int
    audit_live_bytes: int
    audit_segment_bytes: int
    audit_segments: int
    load_ms: float
    update_drain_ms: float
    digest_ms: float
    round_trip_ms: float
    expire_scan_ms: float
    compactable_ms: float
    history_100_ms: float
    history_entries: int
    tick_ms: float  # load + expire scan + digest + compactable: what every tick pays
    store_window_writes: int  # writes through the store in the window before this checkpoint
    store_window_update_ms_median: float
    store_window_update_ms_max: float

    @property
    def years(self) -> float:
        return self.day / YEAR

    def report(self) -> dict[str, Any]:
        out = asdict(self)
        out["years"] = round(self.years, 3)
        out["audit_bytes"] = self.audit_live_bytes + self.audit_segment_bytes
        out["intent_bytes_per_action"] = round(self.intent_bytes / max(self.actions, 1), 2)
        out["audit_bytes_per_action"] = round(out["audit_bytes"] / max(self.actions, 1), 1)
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


@dataclass
class Operators:
    """The operators' actions, as pure state changes, from a seeded generator."""

    rng: random.Random
    drains: list[str] = field(default_factory=list)  # in force, to be removed, oldest first
    count: int = 0

    def _id(self, kind: Kind) -> str:
        return f"{kind.value}-{self.rng.getrandbits(40):010x}"

    def _override(
        self, kind: Kind, region: str, now: float, services: frozenset[str] | None, lasts: float
    ) -> Override:
        self.count += 1
        why = self.rng.choice(WHY).format(n=self.count)
        return Override(
            self._id(kind),
            kind,
            region,
            self.rng.choice(WHO),
            why,
            now,
            services,
            f"CHG-{100000 + self.count}",
            None if lasts == 0 else now + lasts,
        )

    def drain(self, now: float, expires: float = 0.0) -> Override:
        region = self.rng.choice(REGIONS)
        services = frozenset(self.rng.sample(SERVICES, self.rng.randint(1, 3)))
        o = self._override(Kind.DRAIN, region, now, services, expires)
        if not expires:
            self.drains.append(o.id)
        return o

    def action(self, i: int, now: float) -> tuple[str, Callable[[IntentState], IntentState]]:
        """The `i`-th action of a day: of every ten, three drains removed later the
        same day, a drain and an exit of some services that expire by themselves, an
        exit of a whole region and the enter that closes it."""
        region = REGIONS[i // 10 % len(REGIONS)]
        step = i % 10
        if step in (0, 1, 8):
            o = self.drain(now)
            return "drain", lambda s: s.add(o)
        if step in (3, 4, 9) and self.drains:
            oid = self.drains.pop(0)
            who = self.rng.choice(WHO)
            return "remove", lambda s: s.remove(oid, who, "done", now)
        if step == 2:
            o = self.drain(now, DRAIN_EXPIRY)
            return "drain", lambda s: s.add(o)
        if step == 5:
            other = REGIONS[(i // 10 + 1) % len(REGIONS)]
            some = frozenset(self.rng.sample(SERVICES, self.rng.randint(1, 5)))
            o = self._override(Kind.EXIT, other, now, some, EXIT_EXPIRY)
            return "exit", lambda s: s.add(o)
        if step == 6:
            o = self._override(Kind.EXIT, region, now, None, 0.0)
            return "exit", lambda s: s.add(o)
        if step == 7:
            who, why = self.rng.choice(WHO), f"back after CHG-{100000 + self.count}"
            ticket = f"CHG-{100000 + self.count}"

            def enter(s: IntentState) -> IntentState:
                return s.enter(
                    region, None, ENTER_RAMP, who, why, now, ticket=ticket, lasts=ENTER_LASTS
                )

            return "enter", enter
        o = self.drain(now)  # a remove with nothing left to remove
        return "drain", lambda s: s.add(o)


class Replay:
    """One replay (with compaction or without) in its own state directory."""

    def __init__(self, spec: Spec, directory: Path, *, compaction: bool) -> None:
        self.spec = spec
        self.compaction = compaction
        self.audit = FileAudit(directory / "audit.jsonl")
        self.store = FileIntentStore(directory / "intent.json", audit=self.audit)
        self.files = VersionedFiles(directory / "intent.json")
        self.operators = Operators(random.Random(spec.seed))
        self.state = IntentState()
        self.actions = 0
        self.window: list[float] = []  # seconds of each write through the store in a window

    def peers(self, state: IntentState) -> dict[str, IntentState]:
        """The peer regions' latest states: in sync, or never heard from."""
        return {r: state for r in PEERS} if self.compaction else {}

    def _compact_ids(self, state: IntentState, now: float) -> frozenset[str]:
        return compactable(state, self.peers(state), set(PEERS), now)

    # --- the replayed day ----------------------------------------------------

    def pure_day(self, day: int) -> None:
        """A day of pure state operations; their audit entries appended at its end.

        The operations run on the overrides in force and the tombstones they made
        since the last compaction (an operation reads no other tombstone: every id
        is new); the rest of the tombstones are joined back at each compaction
        and at the end of the day, so an operation costs what it does, not what the
        history holds."""
        entries: list[AuditEntry] = []
        full = self.state
        work = IntentState(full.overrides)
        for i, now in self._times(day):
            work = self._step(work, self._expire(now), entries)
            _, change = self.operators.action(i, now)
            work = self._step(work, change, entries)
            self.actions += 1
            if self.compaction and self._on_the_hour(i):
                full = _joined(full, work)
                full = full.compact(self._compact_ids(full, now))
                work = IntentState(full.overrides)
        self.state = _joined(full, work)
        if entries:
            self.audit.append_now(entries)

    async def store_day(self, day: int) -> None:
        """A day through `store.update`, one write per change, as the member makes them."""
        for i, now in self._times(day):
            if self.state.expire(now)[1]:
                await self._write(self._expire(now))
            _, change = self.operators.action(i, now)
            await self._write(change)
            self.actions += 1
            if self._on_the_hour(i) and self._compact_ids(self.state, now):
                await self._write(self._compact(self.peers(self.state), now))

    def seed_store(self) -> None:
        """The state replayed so far as the store's next version file."""
        top = max(self.files.versions(), default=0)
        self.files.write(top + 1, self.state.with_epoch(EPOCH).to_json().encode())
        self.state = self.state.with_epoch(EPOCH)

    def _times(self, day: int) -> Iterator[tuple[int, float]]:
        per = self.spec.actions_per_day
        start = T0 + day * DAY
        for i in range(per):
            yield i, start + (i + 0.5) * DAY / per

    def _on_the_hour(self, i: int) -> bool:
        per = self.spec.actions_per_day
        return int((i + 1) * 24 / per) != int(i * 24 / per)

    @staticmethod
    def _compact(peers: dict[str, IntentState], now: float) -> Callable[[IntentState], IntentState]:
        return lambda s: s.compact(compactable(s, peers, set(PEERS), now))

    @staticmethod
    def _expire(now: float) -> Callable[[IntentState], IntentState]:
        return lambda s: s.expire(now)[0]

    @staticmethod
    def _step(
        state: IntentState, change: Callable[[IntentState], IntentState], entries: list[AuditEntry]
    ) -> IntentState:
        after = change(state)
        if after is not state:
            entries += transitions(state, after)
        return after

    async def _write(self, change: Callable[[IntentState], IntentState]) -> None:
        t0 = time.perf_counter()
        self.state = await self.store.update(change, EPOCH)
        self.window.append(time.perf_counter() - t0)

    # --- the figures -----------------------------------------------------------

    async def checkpoint(self, day: int) -> Checkpoint:
        repeat = self.spec.repeat
        window, self.window = self.window, []
        state = await self.store.load()
        assert state.same_intent(self.state), "the store holds what was replayed"
        now = T0 + day * DAY
        load = await _median_async(self.store.load, repeat)
        drains = []
        for k in range(repeat):
            at = now + k
            o = self.operators.drain(at)
            t0 = time.perf_counter()
            self.state = await self.store.update(lambda s, o=o: s.add(o), EPOCH)
            drains.append(time.perf_counter() - t0)
            self.operators.drains.remove(o.id)
            self.state = await self.store.update(
                lambda s, o=o, at=at: s.remove(o.id, "bench", "measured", at + 0.5), EPOCH
            )
            self.actions += 2
        digest = timed(lambda: state.digest, repeat)[0]
        round_trip = timed(lambda: IntentState.from_dict(state.to_dict()), repeat)[0]
        expire = timed(lambda: state.expire(now), repeat)[0]
        scan = timed(lambda: self._compact_ids(state, now), repeat)[0]
        history = await _median_async(lambda: self.audit.history(limit=100), repeat)
        entries = len(await self.audit.history(limit=100))
        newest = self.files.versions()[-1]
        segments = self.audit.segments()
        live = self.audit.path.stat().st_size if self.audit.path.exists() else 0
        return Checkpoint(
            day=day,
            compaction=self.compaction,
            actions=self.actions,
            overrides_in_force=len(self.state.overrides),
            tombstones_kept=len(self.state.tombstones),
            tombstones_retired=self.state.retired,
            version=self.state.version,
            intent_bytes=self.files.version_path(newest).stat().st_size,
            audit_live_bytes=live,
            audit_segment_bytes=sum(p.stat().st_size for p in segments),
            audit_segments=len(segments),
            load_ms=load * 1e3,
            update_drain_ms=statistics.median(drains) * 1e3,
            digest_ms=digest * 1e3,
            round_trip_ms=round_trip * 1e3,
            expire_scan_ms=expire * 1e3,
            compactable_ms=scan * 1e3,
            history_100_ms=history * 1e3,
            history_entries=entries,
            tick_ms=(load + expire + digest + scan) * 1e3,
            store_window_writes=len(window),
            store_window_update_ms_median=statistics.median(window) * 1e3 if window else 0.0,
            store_window_update_ms_max=max(window) * 1e3 if window else 0.0,
        )

    async def run(
        self, days: int, checkpoints: list[int], progress: Callable[[str], None]
    ) -> list[Checkpoint]:
        """Replay `days` days; the figures at the end of each day in `checkpoints`."""
        out = []
        store_from = {c - self.spec.store_days for c in checkpoints if self.spec.store_days}
        through_store = False
        t0 = time.perf_counter()
        for day in range(days):
            if day in store_from:
                self.seed_store()
                through_store = True
            if through_store:
                await self.store_day(day)
            else:
                self.pure_day(day)
            if day + 1 in checkpoints:
                if not through_store:  # no day through the store (--store-days 0)
                    self.seed_store()
                through_store = False
                out.append(await self.checkpoint(day + 1))
                progress(
                    f"{'compacted' if self.compaction else 'uncompacted'}: day {day + 1} "
                    f"({time.perf_counter() - t0:.0f} s)"
                )
        return out


def _joined(full: IntentState, work: IntentState) -> IntentState:
    """`full`'s tombstones with the overrides and tombstones `work` holds since."""
    tombstones = {**full.tombstones, **work.tombstones}
    return IntentState(work.overrides, tombstones, full.epoch, full.retired)


async def _median_async(fn: Callable[[], Awaitable[object]], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


RATIOS = (
    "intent_bytes",
    "audit_bytes",
    "tombstones_kept",
    "load_ms",
    "update_drain_ms",
    "digest_ms",
    "round_trip_ms",
    "expire_scan_ms",
    "history_100_ms",
    "tick_ms",
    "store_window_update_ms_median",
)


async def run(spec: Spec, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Both replays; the report as a dict."""
    if spec.days < 1 or spec.actions_per_day < 1 or spec.repeat < 1 or spec.store_days < 0:
        raise click.BadParameter("days, actions per day and repeat >= 1; store days >= 0")
    checkpoints = sorted({*range(YEAR, spec.days + 1, YEAR), spec.days})
    baseline_days = min(spec.baseline_days, spec.days)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gtm-bench-intent-") as tmp:
        compacted = await Replay(spec, Path(tmp, "compacted"), compaction=True).run(
            spec.days, checkpoints, progress
        )
        uncompacted = (
            await Replay(spec, Path(tmp, "uncompacted"), compaction=False).run(
                baseline_days, [baseline_days], progress
            )
            if baseline_days > 0
            else []
        )
    on = next((c for c in compacted if c.day == baseline_days), None)
    ratios = {}
    if on is not None and uncompacted:
        off, on_r = uncompacted[0].report(), on.report()
        ratios = {k: round(off[k] / on_r[k], 1) if on_r[k] else None for k in RATIOS}
    return {
        "spec": asdict(spec),
        "compacted": [c.report() for c in compacted],
        "uncompacted": [c.report() for c in uncompacted],
        "uncompacted_over_compacted": {"day": baseline_days, **ratios},
        "seconds": round(time.perf_counter() - t0, 1),
        "cpus": os.cpu_count(),
    }


ROWS = (
    ("actions", "operator actions", "{:,}"),
    ("overrides_in_force", "overrides in force", "{:,}"),
    ("tombstones_kept", "tombstones kept", "{:,}"),
    ("tombstones_retired", "tombstones retired", "{:,}"),
    ("intent_bytes", "intent file, bytes", "{:,}"),
    ("intent_bytes_per_action", "intent bytes / action", "{:.2f}"),
    ("audit_bytes", "audit live + segments, bytes", "{:,}"),
    ("audit_segments", "audit segments", "{:,}"),
    ("audit_bytes_per_action", "audit bytes / action", "{:.0f}"),
    ("load_ms", "store.load() ms", "{:.2f}"),
    ("update_drain_ms", "update() of a drain ms", "{:.2f}"),
    ("digest_ms", "digest ms", "{:.3f}"),
    ("round_trip_ms", "from_dict(to_dict()) ms", "{:.2f}"),
    ("expire_scan_ms", "expire scan ms", "{:.3f}"),
    ("compactable_ms", "compactable scan ms", "{:.3f}"),
    ("tick_ms", "per tick (load+expire+digest+compactable) ms", "{:.2f}"),
    ("history_100_ms", "history(limit=100) ms", "{:.2f}"),
    ("store_window_writes", "writes through the store (window)", "{:,}"),
    ("store_window_update_ms_median", "  their update() median ms", "{:.2f}"),
    ("store_window_update_ms_max", "  their update() max ms", "{:.2f}"),
)


def _print(report: dict[str, Any]) -> None:
    columns = [(f"{_when(c['day'])} no compaction", c) for c in report["uncompacted"]]
    columns += [(_when(c["day"]), c) for c in report["compacted"]]
    ratios = report["uncompacted_over_compacted"]
    spec = report["spec"]
    t = Table(
        title=(
            f"intent over {spec['days']} days at {spec['actions_per_day']} actions/day "
            f"(last {spec['store_days']} day(s) before each checkpoint through the store)"
        )
    )
    t.add_column("figure")
    for name, _ in columns:
        t.add_column(name, justify="right")
    if len(ratios) > 1:
        t.add_column(f"x off/on {_when(ratios['day'])}", justify="right")
    for key, label, fmt in ROWS:
        cells = [fmt.format(c[key]) for _, c in columns]
        if len(ratios) > 1:
            r = ratios.get(key)
            cells.append("" if r is None else f"{r:,}")
        t.add_row(label, *cells)
    console = Console()
    console.print(t)
    console.print(f"{report['seconds']} s on {report['cpus']} cpu(s)")


def _when(day: int) -> str:
    return f"year {day // YEAR}" if day % YEAR == 0 else f"day {day}"


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """The stores log one event per write: keep only warnings while the bench runs."""
    before = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    try:
        yield
    finally:
        structlog.configure(**before)


@click.command()
@click.option("--days", default=Spec.days, show_default=True, help="days replayed")
@click.option("--actions-per-day", default=Spec.actions_per_day, show_default=True)
@click.option(
    "--store-days",
    default=Spec.store_days,
    show_default=True,
    help="days before each checkpoint written through the store, action by action",
)
@click.option(
    "--baseline-days",
    default=Spec.baseline_days,
    show_default=True,
    help="days replayed without compaction (the peer in this run)",
)
@click.option("--repeat", default=Spec.repeat, show_default=True, help="runs per timing (median)")
@click.option("--seed", default=Spec.seed, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
def command(as_json: bool, **spec: Any) -> None:
    """Five years of operator intent through the file stores, with and without compaction.

    Quick run: `gtm bench intent --days 20 --actions-per-day 50`.
    """

    def progress(line: str) -> None:
        if not as_json:
            click.echo(line, err=True)

    with _quiet_logs():
        report = asyncio.run(run(Spec(**spec), progress))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _print(report)
