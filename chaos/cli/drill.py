"""`gtm drill run`: chaos drills against the simulated estate, or a practice run against a real one.

    gtm drill run chaos/drills/library/*.yaml --short --report drill-reports
    gtm drill run --against practice.yaml chaos/drills/library/region-exit.yaml

Each drill starts the simulated estate and the gtm members for real, plays
its timeline of faults and operator actions, observes from outside (DNS on
the wire, WorkloadEntries, `/v1/status`), checks its assertions, prints a
summary and writes `report.html` and `samples.json` under `--report/<drill>/`.
Drills run one after another, each in its own block of 100 ports from
`--base-port`. `--against CONFIG` runs the operator actions of one drill
against a deployment instead (see `chaos.drills.against`). Exit 0 when
every assertion held, 1 when one failed, 2 for a bad drill or config file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import click
import structlog
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chaos.drills.against import AgainstError, load_against, run_against
from chaos.drills.layout import DEFAULT_BASE, DrillPorts, find_free_base
from chaos.drills.model import DrillError, DrillFile, load_drill
from chaos.drills.runner import DrillResult, RunOptions, run_drill
from chaos.drills.samples import StepRecord
from chaos.drills.workflow import Stage
from gtm.exits import ExitCode


@click.group()
def drill() -> None:
    """Chaos drills: scripted faults with assertions, and practice runs."""


@drill.command("run")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--short", is_flag=True, help="The short variant of each drill (what CI runs).")
@click.option(
    "--report",
    "report_dir",
    default="drill-reports",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where each drill's report.html and samples.json go (<dir>/<drill>/).",
)
@click.option(
    "--base-port",
    type=click.IntRange(1024, 65000),
    default=None,
    help=f"First port of the drills' blocks of 100 (default: the first free from {DEFAULT_BASE}).",
)
@click.option(
    "--against",
    "against",
    type=click.Path(dir_okay=False),
    help="Practice run: the drill's operator actions against the deployment this file names.",
)
@click.option("--verbose", "-v", is_flag=True, help="Log the estate's events too.")
def run(
    files: Sequence[str],
    short: bool,
    report_dir: str,
    base_port: int | None,
    against: str | None,
    verbose: bool,
) -> None:
    """Run each drill FILE; exit 1 if any assertion failed."""
    with _quiet(verbose):
        _run(files, short, report_dir, base_port, against)


def _run(
    files: Sequence[str],
    short: bool,
    report_dir: str,
    base_port: int | None,
    against: str | None,
) -> None:
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    drills = _load(files)
    out = Path(report_dir)
    if against is not None:
        if len(drills) != 1:
            raise click.UsageError("--against runs one drill file")
        try:
            config = load_against(Path(against))
        except AgainstError as e:
            _fail(str(e))
        result = asyncio.run(run_against(drills[0], config, out, on_step=_print_step(console)))
        _summary(console, [result])
        sys.exit(0 if result.passed else ExitCode.FAILED)
    base = base_port if base_port is not None else find_free_base(DEFAULT_BASE, len(drills))
    results = asyncio.run(_run_all(console, drills, out, short, DrillPorts(base)))
    _summary(console, results)
    sys.exit(0 if all(r.passed for r in results) else ExitCode.FAILED)


async def _run_all(
    console: Console, drills: Sequence[DrillFile], out: Path, short: bool, ports: DrillPorts
) -> list[DrillResult]:
    results = []
    for i, file in enumerate(drills):
        variant = "short" if short else "full"
        console.rule(f"[bold]{escape(file.drill.title)}[/bold] ({file.name}, {variant})")
        result = await run_drill(
            file,
            RunOptions(report_dir=out, short=short),
            ports.nth(i),
            on_stage=_print_stage(console),
            on_step=_print_step(console),
        )
        results.append(result)
        if result.report is not None:
            console.print(f"report: {result.report}")
    return results


def _load(files: Sequence[str]) -> list[DrillFile]:
    loaded, problems = [], []
    for name in files:
        try:
            loaded.append(load_drill(name))
        except DrillError as e:
            problems += [str(p) for p in e.problems]
    if problems:
        _fail("\n".join(problems))
    return loaded


def _fail(message: str) -> NoReturn:
    click.secho(message, fg="red", err=True)
    sys.exit(ExitCode.INPUT)


@contextlib.contextmanager
def _quiet(verbose: bool) -> Iterator[None]:
    """The estate's own events only with --verbose; the logging set up before is put back."""
    before = structlog.get_config()
    level = logging.INFO if verbose else logging.WARNING
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    try:
        yield
    finally:
        structlog.configure(**before)


def _print_stage(console: Console) -> Callable[[Stage], None]:
    def show(stage: Stage) -> None:
        mark = {"ok": "[green]✓[/green]", "failed": "[red]✗[/red]", "skipped": "[dim]-[/dim]"}
        took = f" [dim]{stage.took:.1f}s[/dim]" if stage.outcome != "skipped" else ""
        error = f": [red]{escape(stage.error)}[/red]" if stage.error else ""
        console.print(f"{mark[stage.outcome]} {escape(stage.name)}{took}{error}")

    return show


def _print_step(console: Console) -> Callable[[StepRecord], None]:
    def show(step: StepRecord) -> None:
        mark = "[green]ok[/green]" if step.ok else "[red]FAILED[/red]"
        console.print(
            f"    t={step.t:6.2f}s [bold]{escape(step.id)}[/bold] {escape(step.title)}: {mark}"
            f" [dim]{escape(step.detail)}[/dim]"
        )

    return show


def _summary(console: Console, results: Sequence[DrillResult]) -> None:
    table = Table(title="drill summary", show_lines=False)
    for col in ("drill", "assertion", "result", "measured", "bound"):
        table.add_column(col)
    style = {"passed": "green", "failed": "bold red", "pending": "dim", "skipped": "dim"}
    for r in results:
        first = True
        for v in r.verdicts:
            name = f"{r.drill} ({r.variant}, {r.took:.0f}s)" if first else ""
            first = False
            table.add_row(
                escape(name),
                escape(v.check),
                f"[{style[v.state]}]{v.state}[/{style[v.state]}]",
                escape(v.measured),
                escape(v.bound),
            )
        table.add_section()
    console.print(table)
    failed = [r.drill for r in results if not r.passed]
    if failed:
        console.print(f"[bold red]{len(failed)} drill(s) failed:[/bold red] {', '.join(failed)}")
    else:
        console.print(f"[bold green]{len(results)} drill(s) passed[/bold green]")
