"""`gtm bench accesspoints` runs end to end on a few APs (the figures themselves are not judged,
only that they are whole: every AP's objects in every cluster, the requests counted)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog
from click.testing import CliRunner

from chaos.bench.accesspoints import command


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """The command configures structlog for a terminal (warnings only); the tests that run
    after this one in the same process capture info events: put it back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_a_small_run_reports_every_object_and_the_servers_counts() -> None:
    result = CliRunner().invoke(command, ["--accesspoints", "8", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    # 4 applications (a Service each) and 4 gateways (Service, VirtualService, one WLE per
    # application VIP in each of 3 clusters, a ServiceEntry), in the cluster counted
    assert report["objects_in_clusters"] == 4 * 1 + 4 * (1 + 1 + 3 + 1)
    assert report["passes"] >= 2  # the VIPs come after the Services: a second pass needed
    assert set(report["requests_at_servers"]) == {"dc1", "dc2", "dc3"}
    assert all(n > 0 for n in report["requests_at_servers"].values())
    # each region's controller passed in a process of its own, as a member's does
    assert report["controller_peak_rss_mb"] > 50 and report["controllers_cpu_s"] > 0
    assert report["steady_pass_s"] > 0
