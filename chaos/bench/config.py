"""`gtm bench config`: validate a generated estate config of tens of thousands of services.

Writes a config of `--services` services (three regions, one or two VIPs
each, a probe per service) and runs `gtm validate` on it in a child process,
as an operator would: wall time and peak memory (the child's maximum RSS)
against the targets of 10 s and 500 MB for 30,000 services. The peer in the
same run is the floor any loader pays: a child that only parses the file
with PyYAML's C loader (`yaml.load(…, CSafeLoader)`), building the data and
no more. Then, in this process, the time of each step of `gtm.config.load`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from gtm.config import load, source
from gtm.config.readiness import serving

TARGET_SECONDS = 10.0
TARGET_MB = 500.0
_REGIONS = ("dc1", "dc2", "dc3")


def generate(services: int) -> str:
    """An estate config of `services` services, as YAML text."""
    out = ["regions:"]
    for i, r in enumerate(_REGIONS, 1):
        out.append(f"  - {{name: {r}, locality: region0{i}/az01, client_cidrs: [10.{i}.0.0/16]}}")
    out += [
        "policies:",
        "  - {name: default, max_step: 10, ramp: 2m, guardrails: {min_active_regions: 2}}",
        "  - name: critical",
        "    split: {local: 90, remote: 5}",
        "    bounds: {remote: {min: 1}}",
        "services:",
    ]
    for n in range(services):
        name = f"svc{n:05d}"
        policy = "critical" if n % 10 == 0 else "default"
        out += [
            f"  - name: {name}",
            f"    fqdn: {name}.apps.example.com",
            f"    policy: {policy}",
            f"    probe: {{kind: http, path: /healthz, host: {name}.apps.example.com, "
            "interval: 5s, timeout: 2s}",
            "    vips:",
        ]
        for i, r in enumerate(_REGIONS, 1):
            vips = ", ".join(
                f"{{address: 10.{i}.{n // 250 % 250}.{n % 250 + k}, port: 443}}"
                for k in range(1 + n % 2)
            )
            out.append(f"      {r}: [{vips}]")
    return "\n".join(out) + "\n"


def _child(argv: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds, peak RSS (MB) and output of one child process."""
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - t0
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().strip()
    if child.returncode != 0:
        raise click.ClickException(f"{' '.join(argv[:4])} … failed:\n{text[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


@click.command()
@click.option("--services", default=30_000, show_default=True, help="Services in the config.")
@click.option("--keep", type=click.Path(dir_okay=False), help="Also write the config here.")
def command(services: int, keep: str | None) -> None:
    """Time `gtm validate` on a generated config; targets: 30,000 services in 10 s and 500 MB."""
    text = generate(services)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="gtm-bench-config-") as tmp:
        path = Path(keep) if keep else Path(tmp) / "estate.yaml"
        path.write_text(text, encoding="utf-8")
        validate = _child([sys.executable, "-m", "gtm", "validate", "--no-files", str(path)])
        peer = _child(
            [
                sys.executable,
                "-c",
                "import sys, yaml; yaml.load(open(sys.argv[1]), Loader=yaml.CSafeLoader)",
                str(path),
            ]
        )
        steps = _steps(path)

    t = Table(title=f"gtm validate: {services:,} services, {len(text) / 2**20:.1f} MiB of YAML")
    for col in ("run", "wall s", "CPU s", "peak RSS MB", "x peer (CPU)"):
        t.add_column(col, justify="right" if col != "run" else "left")
    for name, (wall, cpu, rss, _) in (
        ("gtm validate --no-files", validate),
        ("peer: yaml.load with CSafeLoader", peer),
    ):
        t.add_row(name, f"{wall:.2f}", f"{cpu:.2f}", f"{rss:.0f}", f"{cpu / peer[1]:.2f}")
    console.print(t)
    console.print(f"  {validate[3]}")
    s = Table(title="gtm.config.load, step by step (in this process)")
    s.add_column("step")
    s.add_column("s", justify="right")
    for name, seconds in steps:
        s.add_row(name, f"{seconds:.2f}")
    console.print(s)
    ok = validate[0] <= TARGET_SECONDS and validate[2] <= TARGET_MB
    verdict = "meets" if ok else "misses"
    console.print(
        f"{validate[0]:.2f} s ({validate[1]:.2f} s of CPU) and {validate[2]:.0f} MB {verdict} "
        f"the target of {TARGET_SECONDS:g} s and {TARGET_MB:g} MB"
        + ("" if services == 30_000 else " (set for 30,000 services)")
    )


def _steps(path: Path) -> list[tuple[str, float]]:
    t0 = time.perf_counter()
    source.read(path)
    t1 = time.perf_counter()
    load(path, rules=partial(serving, files=False))
    t2 = time.perf_counter()
    return [
        ("source.read: one pass over libyaml's events", t1 - t0),
        ("load: the same, then shapes (pydantic), rules and the estate", t2 - t1),
    ]
