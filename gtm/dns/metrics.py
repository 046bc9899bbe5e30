"""DNS counters: plain integers in the hot path, Prometheus families on scrape.

A `Tally` belongs to one table generation (one `Answers`): every precomputed
answer owns a slot in `hits`, labelled once with its qtype, rcode, service
and target region, so counting a query is one list increment. Queries the
slow path answers go to `other`. `DnsMetrics` keeps the totals of retired
generations; `DnsCollector` turns snapshots into metric families when
Prometheus scrapes, so nothing is formatted per query.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache

import dns.rcode
import dns.rdatatype
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True)
class Label:
    qtype: int  # -1 when the query had no readable question
    rcode: int
    service: str = ""  # set on answers drawn from a service's row
    region: str = ""  # the target region of the (first) record


class Tally:
    """The counters of one generation; `hits[i]` counts answers labelled `labels[i]`."""

    __slots__ = ("hits", "index", "labels", "other")

    def __init__(self) -> None:
        self.hits: list[int] = []
        self.labels: list[Label] = []
        self.index: dict[Label, int] = {}
        self.other: dict[tuple[int, int], int] = {}

    def slot(self, label: Label) -> int:
        """The slot counting answers labelled `label` (one per distinct label)."""
        slot = self.index.get(label)
        if slot is None:
            slot = self.index[label] = len(self.hits)
            self.hits.append(0)
            self.labels.append(label)
        return slot

    def count(self, qtype: int, rcode: int) -> None:
        key = (qtype, rcode)
        self.other[key] = self.other.get(key, 0) + 1

    def snapshot(self) -> Snapshot:
        queries: Counter[tuple[int, int]] = Counter(self.other)
        answers: Counter[tuple[str, str]] = Counter()
        for n, label in zip(self.hits, self.labels, strict=True):
            if n:
                queries[(label.qtype, label.rcode)] += n
                if label.service:
                    answers[(label.service, label.region)] += n
        return Snapshot(dict(queries), dict(answers))


@dataclass(frozen=True)
class Snapshot:
    queries: Mapping[tuple[int, int], int] = field(default_factory=dict)  # (qtype, rcode) -> n
    answers: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (service, region) -> n
    generation: int = 0
    errors: int = 0  # queries dropped because answering them raised

    def __add__(self, other: Snapshot) -> Snapshot:
        q, a = Counter(self.queries), Counter(self.answers)
        q.update(other.queries)
        a.update(other.answers)
        return Snapshot(
            dict(q), dict(a), max(self.generation, other.generation), self.errors + other.errors
        )

    @property
    def total(self) -> int:
        return sum(self.queries.values())


class DnsMetrics:
    """One server's counters across generations."""

    def __init__(self) -> None:
        self._retired = Snapshot()
        self._current: Tally | None = None
        self.generation = 0
        self.errors = 0

    def serve(self, tally: Tally, generation: int) -> None:
        """Start counting into `tally`; fold the previous generation's into the totals."""
        if self._current is not None and self._current is not tally:
            self._retired = self._retired + self._current.snapshot()
        self._current = tally
        self.generation = generation

    def snapshot(self) -> Snapshot:
        current = self._current.snapshot() if self._current is not None else Snapshot()
        total = self._retired + current
        return Snapshot(total.queries, total.answers, self.generation, self.errors)


@cache
def _qtype(value: int) -> str:
    return "none" if value < 0 else dns.rdatatype.to_text(dns.rdatatype.RdataType.make(value))


@cache
def _rcode(value: int) -> str:
    return dns.rcode.to_text(dns.rcode.Rcode.make(value))


class DnsCollector(Collector):
    """Exports snapshots, `source()` -> {instance: snapshot}, when Prometheus scrapes."""

    def __init__(
        self, source: Callable[[], Mapping[str, Snapshot]], prefix: str = "gtm_dns"
    ) -> None:
        self._source = source
        self._prefix = prefix

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterable[Metric]:
        snaps = self._source()
        total = Snapshot()
        for s in snaps.values():
            total = total + s
        queries = CounterMetricFamily(
            f"{self._prefix}_queries",
            "DNS queries answered, by qtype and rcode",
            labels=["qtype", "rcode"],
        )
        for (qtype, rcode), n in sorted(total.queries.items()):
            queries.add_metric([_qtype(qtype), _rcode(rcode)], n)
        answers = CounterMetricFamily(
            f"{self._prefix}_answers",
            "Answers drawn from the weight table, by service and target region",
            labels=["service", "region"],
        )
        for (service, region), n in sorted(total.answers.items()):
            answers.add_metric([service, region], n)
        errors = CounterMetricFamily(
            f"{self._prefix}_errors", "Queries dropped because answering them failed"
        )
        errors.add_metric([], total.errors)
        generation = GaugeMetricFamily(
            f"{self._prefix}_generation", "Weight table generation served", labels=["instance"]
        )
        for name, s in sorted(snaps.items()):
            generation.add_metric([name], s.generation)
        return [queries, answers, errors, generation]
