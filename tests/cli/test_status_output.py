"""`gtm status` output: the mesh lines, with the DestinationRules that override the weights."""

from __future__ import annotations

import pytest

from gtm.cli.status import _print_status
from gtm.client.convergence import MemberView
from gtm.status import read_status


def test_mesh_lines_show_distribute_conflicts(capsys: pytest.CaptureFixture[str]) -> None:
    own = read_status(
        {
            "identity": "dc1-a",
            "region": "dc1",
            "role": "leader",
            "mesh": {
                "c1": {"in_sync": 4, "desired": 4, "conflicts": ["mesh/pin: 100% to dc2"]},
                "c2": {"in_sync": 3, "desired": 4},
            },
        },
        "http://m1",
    )
    _print_status([MemberView("http://m1", own)], None)
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("mesh c1: 4/4 WorkloadEntries in sync")
    assert lines[at + 1 : at + 3] == [
        "  weights overridden: mesh/pin: 100% to dc2",
        "mesh c2: 3/4 WorkloadEntries in sync",
    ]
