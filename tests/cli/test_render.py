"""The weight table as plan, status and the demo print it (gtm/cli/render.py)."""

from __future__ import annotations

from rich.console import Console

from gtm.cli.render import table_view
from policies import Cell, Row, WeightTable

REGIONS = ["dc1", "dc2", "dc3"]


def _table(fail_open: frozenset[str] = frozenset()) -> WeightTable:
    def row(service: str, source: str, weights: tuple[int, int, int]) -> Row:
        cells = {r: Cell(w) for r, w in zip(REGIONS, weights, strict=True)}
        return Row(service, source, 100, cells, fail_open=service in fail_open)

    split = {"dc1": (98, 1, 1), "dc2": (1, 98, 1), "dc3": (1, 1, 98)}
    rows = {s: {src: row(s, src, w) for src, w in split.items()} for s in ("foo", "bar")}
    return WeightTable(generation=7, computed_at=0.0, rows=rows)


def _text(table: WeightTable) -> list[list[str]]:
    console = Console(width=120, record=True, color_system=None)
    console.print(table_view(table, REGIONS))
    lines = console.export_text().splitlines()
    return [[c.strip() for c in line.split("│")[1:-1]] for line in lines if "│" in line]


def test_the_table_ends_in_its_last_region_not_an_empty_column() -> None:
    rows = _text(_table())
    assert rows[0] == ["foo", "dc1", "98", "1", "1"]
    assert all(r[-1] for r in rows), rows  # every row's last cell says something
    header = Console(width=120, record=True, color_system=None)
    header.print(table_view(_table(), REGIONS))
    top = next(line for line in header.export_text().splitlines() if "┃" in line)
    assert [c.strip() for c in top.split("┃")[1:-1]] == [
        "service",
        "clients in",
        "→ dc1",
        "→ dc2",
        "→ dc3",
    ]


def test_a_fail_open_row_is_noted_in_a_labelled_column() -> None:
    console = Console(width=120, record=True, color_system=None)
    console.print(table_view(_table(fail_open=frozenset({"bar"})), REGIONS))
    text = console.export_text()
    top = next(line for line in text.splitlines() if "┃" in line)
    assert [c.strip() for c in top.split("┃")[1:-1]][-1] == "note"
    rows = _text(_table(fail_open=frozenset({"bar"})))
    assert rows[0][-1] == "" and rows[3] == ["bar", "dc1", "98", "1", "1", "fail-open"]
