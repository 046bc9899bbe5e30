"""`gtm bench policy`: evaluate a generated estate of thousands of services.

Reports the time of a full evaluation (no previous table), a steady one
(nothing changed), one where one service's region goes down, one where a
whole region goes down for every service, and peak memory. The peer in the
same run is the floor any evaluation pays: rebuilding the table from its
own JSON dict (`WeightTable.from_dict`), so the ratio says how much the
engine's reasoning costs over just materialising the rows.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import click
from rich.console import Console
from rich.table import Table

from chaos.bench.timing import timed
from policies import (
    Bounds,
    Estate,
    Guardrails,
    Health,
    Policy,
    Service,
    State,
    TargetHealth,
    Vip,
    WeightTable,
    evaluate,
)


def generate(services: int, regions: int = 3) -> Estate:
    names = tuple(f"dc{i + 1}" for i in range(regions))
    policies = [
        Policy.uniform("default", names, max_step=10, ramp=120.0, guardrails=Guardrails(2, 1)),
        Policy.uniform(
            "bounded", names, remote_bounds=Bounds(1, 50), max_step=20, guardrails=Guardrails(2, 1)
        ),
    ]
    out = []
    for n in range(services):
        name = f"svc{n:05d}"
        vips = {
            r: tuple(
                Vip(
                    Vip.make_id(name, r, f"10.{i}.{n % 250}.{k}", 443),
                    name,
                    r,
                    f"10.{i}.{n % 250}.{k}",
                    443,
                )
                for k in range(1 + n % 2)
            )
            for i, r in enumerate(names)
        }
        out.append(Service(name, f"{name}.example.com", policies[n % len(policies)], vips))
    return Estate(names, tuple(out))


@click.command()
@click.option(
    "--services", default=4000, show_default=True, help="Services in the generated estate."
)
@click.option("--regions", default=3, show_default=True)
@click.option("--repeat", default=15, show_default=True, help="Runs per case (median reported).")
def command(services: int, regions: int, repeat: int) -> None:
    """Time policies.evaluate on a generated estate; target: full evaluation <= 50 ms."""
    estate = generate(services, regions)
    now = 1_000_000.0
    healthy = Health()
    full = evaluate(estate, healthy, [], None, now).table
    one_down = Health(
        regions={(estate.services[0].name, "dc2"): TargetHealth(State.DOWN, now, "bench")}
    )
    region_down = Health(
        regions={(s.name, "dc2"): TargetHealth(State.DOWN, now, "bench") for s in estate.services}
    )
    as_dict = full.to_dict()
    cases: list[tuple[str, Callable[[], object]]] = [
        ("full evaluation (no previous table)", lambda: evaluate(estate, healthy, [], None, now)),
        ("steady (nothing changed)", lambda: evaluate(estate, healthy, [], full, now + 1)),
        ("one service's region down", lambda: evaluate(estate, one_down, [], full, now + 1)),
        ("dc2 down for every service", lambda: evaluate(estate, region_down, [], full, now + 1)),
        ("peer: WeightTable.from_dict (floor)", lambda: WeightTable.from_dict(as_dict)),
    ]
    results = [(name, *timed(fn, repeat)) for name, fn in cases]
    floor = results[-1][1]

    tracemalloc.start()
    evaluate(estate, healthy, [], None, now)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    rows = sum(1 for _ in full)
    t = Table(title=f"policies.evaluate: {services} services x {regions} regions = {rows} rows")
    for col in ("case", "median ms", "best ms", "x floor"):
        t.add_column(col, justify="right" if col != "case" else "left")
    for name, med, best in results:
        t.add_row(name, f"{med * 1e3:.1f}", f"{best * 1e3:.1f}", f"{med / floor:.2f}")
    console = Console()
    console.print(t)
    console.print(f"peak memory of a full evaluation (tracemalloc): {peak / 2**20:.1f} MiB")
    target = results[0][1] * 1e3
    verdict = "meets" if target <= 50 else "misses"
    console.print(f"full evaluation {target:.1f} ms {verdict} the 50 ms target")
