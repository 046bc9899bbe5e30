"""The weight table: for every service, one row per source region.

A row holds a cell per target region: the integer weight clients (or mesh
sidecars) in the source region send to the target, whether the target is
out and why, and the relative weights of the target's VIPs. Rows of one
table are one generation; the generation rises whenever a weight changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from policies import pieces
from policies.steps import collector_paused


class Out:
    """Why a target is out. The mesh writes these as the Healthy condition's message."""

    EXIT = "Region Exit"
    DRAIN = "Service Drain"
    DOWN = "VIP Down"
    NO_VIPS = "No VIPs"


# Cell and Row are NamedTuples, not frozen dataclasses: a table of 4,000
# services holds 48,000 of them and a frozen dataclass costs 2.5x as much to
# build (gtm bench policy). They are immutable values all the same.


class Cell(NamedTuple):
    weight: int
    out: str | None = None  # None: the target is in; else an `Out` reason
    vips: Mapping[str, int] = {}  # vip id -> share within the region (never mutated)
    ramp_start: float | None = None  # set while the cell ramps back
    ramp: float | None = None  # the ramp's duration, seconds

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"weight": self.weight, "vips": dict(self.vips)}
        if self.out is not None:
            d["out"] = self.out
        if self.ramp_start is not None:
            d["ramp_start"] = self.ramp_start
            d["ramp"] = self.ramp
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cell:
        return cls(
            weight=int(d["weight"]),
            out=d.get("out"),
            vips={str(k): int(v) for k, v in d.get("vips", {}).items()},
            ramp_start=d.get("ramp_start"),
            ramp=d.get("ramp"),
        )


class Row(NamedTuple):
    service: str
    source: str
    total: int
    cells: Mapping[str, Cell]  # target region -> cell, in estate region order
    fail_open: bool = False

    def weights(self) -> dict[str, int]:
        return {t: c.weight for t, c in self.cells.items()}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "total": self.total,
            "cells": {t: c.to_dict() for t, c in self.cells.items()},
        }
        if self.fail_open:
            d["fail_open"] = True
        return d

    @classmethod
    def from_dict(cls, service: str, source: str, d: Mapping[str, Any]) -> Row:
        return cls(
            service=service,
            source=source,
            total=int(d["total"]),
            cells={t: Cell.from_dict(c) for t, c in d["cells"].items()},
            fail_open=bool(d.get("fail_open", False)),
        )


@dataclass(frozen=True)
class WeightTable:
    generation: int
    computed_at: float
    rows: Mapping[str, Mapping[str, Row]]  # service -> source region -> row
    # The engine's private note of what each service's rows were computed
    # from, so an unchanged service is not solved again; not serialised.
    memo: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def row(self, service: str, source: str) -> Row | None:
        return self.rows.get(service, {}).get(source)

    def __iter__(self) -> Iterator[Row]:
        for by_source in self.rows.values():
            yield from by_source.values()

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "computed_at": self.computed_at,
            "rows": {
                svc: {src: row.to_dict() for src, row in by_source.items()}
                for svc, by_source in self.rows.items()
            },
        }

    def to_json(self) -> bytes:
        """`json.dumps(self.to_dict(), separators=(",", ":"))`, a service at a time: a
        worker thread encoding it lets the event loop run (`policies.pieces`)."""
        with collector_paused():
            return pieces.dumps(self.to_dict(), depth=2).encode()

    @classmethod
    def from_json(cls, body: bytes | str) -> WeightTable:
        """The table `to_json` wrote, decoded a service at a time; ValueError if it is not one."""
        with collector_paused():
            return cls.from_dict(pieces.loads(body, depth=2))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WeightTable:
        try:
            return cls(
                generation=int(d["generation"]),
                computed_at=float(d["computed_at"]),
                rows={
                    svc: {src: Row.from_dict(svc, src, r) for src, r in by_source.items()}
                    for svc, by_source in d["rows"].items()
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"not a weight table: {e!r}") from e


EMPTY = WeightTable(generation=0, computed_at=0.0, rows={})
