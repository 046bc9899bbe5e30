"""`gtm validate FILE`: check an estate config and report every problem at once."""

from __future__ import annotations

import sys

import click

from gtm.config import ConfigError, load


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check estate config FILES; exit non-zero with every problem when one is bad."""
    bad = 0
    for f in files:
        try:
            inv = load(f)
        except ConfigError as e:
            bad += 1
            for p in e.problems:
                click.echo(str(p), err=True)
            click.echo(f"{f}: {len(e.problems)} problem(s)", err=True)
            continue
        c = inv.config
        vips = sum(len(v) for s in c.services for v in s.vips.values())
        click.echo(
            f"{f}: ok ({len(c.regions)} regions, {len(c.services)} services, "
            f"{vips} VIPs, {len(c.policies)} policies, {len(c.kubernetes.clusters)} clusters)"
        )
    sys.exit(1 if bad else 0)
