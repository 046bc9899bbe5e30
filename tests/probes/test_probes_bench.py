"""`gtm bench probes` runs end to end on a tiny estate (the figures themselves are not judged)."""

from __future__ import annotations

import json
import shutil

import click
import pytest
from click.testing import CliRunner

from chaos.bench.probes import _child, command

BLACKBOX = shutil.which("prometheus-blackbox-exporter")


@pytest.mark.parametrize(
    "peer",
    [
        "--no-blackbox",
        pytest.param(
            "--blackbox",
            marks=pytest.mark.skipif(BLACKBOX is None, reason="blackbox_exporter not installed"),
        ),
    ],
)
def test_bench_probes_smoke(peer: str) -> None:
    args = ["--targets", "40", "--interval", "1", "--duration", "1.5", "--warmup", "0.5", "--json"]
    result = CliRunner().invoke(command, [*args, peer], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output[result.output.index("{") :])["results"]
    assert [f["name"] for f in figures] == (
        ["gtm"] if peer == "--no-blackbox" else ["gtm", "blackbox_exporter"]
    )
    for f in figures:
        assert f["probes"] > 0 and f["failed"] == 0
        assert f["cpu_ms_per_probe"] > 0


def die_at_once(conn: object) -> None:
    raise SystemExit(3)


def test_a_bench_process_that_dies_is_an_error_not_a_hang() -> None:
    with pytest.raises(click.ClickException, match=r"ended \(exit code 3\) without sending"):
        _child(die_at_once)
