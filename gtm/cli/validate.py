"""`gtm validate FILE`: check an estate config and report every problem at once."""

from __future__ import annotations

import sys
from functools import partial

import click

from gtm.api.tokens import TokenBook
from gtm.config import ConfigError, Inventory, Problem, load
from gtm.config.accesspoints import looks_like_accesspoints, read_accesspoints
from gtm.config.readiness import serving
from gtm.exits import ExitCode


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--no-files",
    is_flag=True,
    help="Do not read the files a config names (tokens, TLS, kubeconfig): "
    "for a check away from where gtm serve runs.",
)
def validate(files: tuple[str, ...], no_files: bool) -> None:
    """Check estate config FILES as gtm serve would; exit non-zero with every problem when one is bad."""
    bad = 0
    for f in files:
        if looks_like_accesspoints(f):
            try:
                aps = read_accesspoints(f)
            except ConfigError as e:
                bad += _report(f, list(e.problems))
                continue
            click.echo(f"{f}: ok ({len(aps)} AccessPoint(s))")
            continue
        try:
            inv = load(f, rules=partial(serving, files=not no_files))
            problems = [] if no_files else _token_problems(inv)
        except ConfigError as e:
            problems = list(e.problems)
        if problems:
            bad += 1
            for p in problems:
                click.echo(str(p), err=True)
            click.echo(f"{f}: {len(problems)} problem(s)", err=True)
            continue
        c = inv.config
        vips = sum(len(v) for s in c.services for v in s.vips.values())
        click.echo(
            f"{f}: ok ({len(c.regions)} regions, {len(c.services)} services, "
            f"{vips} VIPs, {len(c.policies)} policies, {len(c.kubernetes.clusters)} clusters)"
        )
    sys.exit(ExitCode.INPUT if bad else ExitCode.OK)


def _report(f: str, problems: list[Problem]) -> int:
    for p in problems:
        click.echo(str(p), err=True)
    click.echo(f"{f}: {len(problems)} problem(s)", err=True)
    return 1


def _token_problems(inv: Inventory) -> list[Problem]:
    """The API's token file, read as gtm serve reads it."""
    if inv.config.api.tokens_file is None:
        return []
    try:
        TokenBook.from_file(inv.config.api.tokens_file)
    except ConfigError as e:
        return list(e.problems)
    return []
