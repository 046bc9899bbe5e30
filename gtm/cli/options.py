"""Options several commands share: --config, --health, --override."""

from __future__ import annotations

import getpass
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import click

from gtm.config import ConfigError, Inventory, load
from gtm.exits import ExitCode
from gtm.health_snapshot import load_health
from gtm.what_if import what_if_overrides
from policies import Health, Override

OVERRIDE_HELP = (
    "What-if intent, repeatable: exit=REGION[:SVC,…], drain=REGION:SVC[,…], "
    "rollout=REGION[:SVC,…], enter=REGION"
)


def config_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--config",
        "-c",
        "config_path",
        required=True,
        type=click.Path(exists=True, dir_okay=False),
        help="Estate config file (YAML).",
    )(f)


def what_if_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--force", is_flag=True, help="Bypass guardrails (the --override's why).")(f)
    f = click.option("--override", "-o", "override_specs", multiple=True, help=OVERRIDE_HELP)(f)
    f = click.option(
        "--health",
        "health_path",
        type=click.Path(exists=True, dir_okay=False),
        help="Health snapshot (JSON/YAML): what is down.",
    )(f)
    return f


def load_or_exit(path: str) -> Inventory:
    try:
        return load(path)
    except ConfigError as e:
        for p in e.problems:
            click.echo(str(p), err=True)
        sys.exit(ExitCode.INPUT)


def health_or_exit(path: str | None, inventory: Inventory) -> Health:
    if path is None:
        return Health()
    try:
        return load_health(path, inventory)
    except ConfigError as e:
        for p in e.problems:
            click.echo(str(p), err=True)
        sys.exit(ExitCode.INPUT)


def parse_overrides(specs: Sequence[str], *, force: bool, now: float) -> list[Override]:
    """`exit=dc2`, `exit=dc2:foo,bar`, `drain=dc1:foo`, `rollout=dc3`, `enter=dc2`."""
    try:
        return what_if_overrides(
            specs, who=getpass.getuser(), why="what-if (gtm plan)", force=force, now=now
        )
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--override") from None


def now() -> float:
    return time.time()
