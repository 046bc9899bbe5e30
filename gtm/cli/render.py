"""Rich renderings of tables, decisions and refusals, shared by plan, status and the demo."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.table import Table

from policies import Decision, Refusal, Row, WeightTable

_SHORT = {"Region Exit": "exit", "Service Drain": "drain", "VIP Down": "down", "No VIPs": "—"}


def cell_text(row: Row, target: str, old: Row | None = None) -> str:
    cell = row.cells[target]
    prev = None if old is None else old.cells.get(target)
    text = str(cell.weight)
    if cell.out is not None:
        text = (
            f"[red]{text} {_SHORT.get(cell.out, cell.out)}[/red]"
            if cell.out != "No VIPs"
            else "[dim]—[/dim]"
        )
    elif cell.ramp_start is not None:
        text = f"[yellow]{text} ramp[/yellow]"
    if prev is not None and prev.weight != cell.weight:
        text = f"[bold]{text}[/bold] [dim](was {prev.weight})[/dim]"
    return text


def table_view(
    table: WeightTable,
    regions: Sequence[str],
    *,
    old: WeightTable | None = None,
    services: Iterable[str] | None = None,
    title: str | None = None,
) -> Table:
    """Service, clients' region, a weight per target region; a `note` column only
    when a row shown fails open (no empty, unlabelled column)."""
    wanted = set(services) if services is not None else None
    shown = [
        (service, by_source)
        for service, by_source in table.rows.items()
        if wanted is None or service in wanted
    ]
    notes = any(row.fail_open for _, by_source in shown for row in by_source.values())
    t = Table(title=title or f"weight table, generation {table.generation}", show_lines=False)
    t.add_column("service")
    t.add_column("clients in")
    for r in regions:
        t.add_column(f"→ {r}", justify="right")
    if notes:
        t.add_column("note")
    for service, by_source in shown:
        for i, source in enumerate(regions):
            row = by_source.get(source)
            if row is None:
                continue
            prev = None if old is None else old.row(service, source)
            note = ["[yellow]fail-open[/yellow]" if row.fail_open else ""] if notes else []
            t.add_row(
                service if i == 0 else "",
                source,
                *(cell_text(row, r, prev) for r in regions),
                *note,
                end_section=i == len(regions) - 1,
            )
    return t


def decisions_view(decisions: Sequence[Decision], limit: int = 200) -> Table:
    t = Table(title=f"decisions ({len(decisions)})")
    for col in ("service", "row", "cell", "rule", "old → new", "why"):
        t.add_column(col)
    for d in decisions[:limit]:
        old = "—" if d.old is None else str(d.old)
        t.add_row(d.service, d.source, d.target, d.rule, f"{old} → {d.new}", d.input)
    if len(decisions) > limit:
        t.add_row("…", "", "", "", "", f"{len(decisions) - limit} more")
    return t


def refusals_view(refusals: Sequence[Refusal]) -> Table:
    t = Table(title="refused", style="red")
    t.add_column("override")
    t.add_column("guardrail")
    t.add_column("why")
    for r in refusals:
        t.add_row(r.override_id, r.rule, r.message)
    return t
