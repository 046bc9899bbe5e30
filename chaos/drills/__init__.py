"""Chaos drills: scripted faults on a timeline, observed from outside, checked, and reported.

    file = load_drill("chaos/drills/library/region-exit.yaml")     # DrillError: file:line
    result = await run_drill(file, RunOptions(Path("reports"), short=True), DrillPorts(26000))
    result.passed, result.verdicts, result.report                  # report.html, samples.json

A drill file (`model`, `steps`, `checks`) names the estate, a timeline of
faults and operator actions, and assertions. The runner (`runner`, a
workflow of named steps) starts the simulated estate and the gtm members for
real, injects the faults (`faults`, `links`), samples the estate from
outside like a client (`observe`: DNS on the wire with ECS, WorkloadEntries,
`/v1/status`), checks the assertions (`assertions`: `timing`,
`invariants`, `ledger`, `stats`) and writes the report (`report`,
`charts`). `aps` and `apchecks` are the AccessPoint steps, their observation
and their checks. `against` runs a drill's operator actions against a real
deployment (a practice run). `gtm drill run` is the command line.

Names are imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gtm.lazy import lazy_names

if TYPE_CHECKING:
    from chaos.drills.against import AgainstConfig, load_against, run_against
    from chaos.drills.assertions import drill_passed, evaluate
    from chaos.drills.layout import DrillPorts, find_free_base
    from chaos.drills.model import Drill, DrillError, DrillFile, load_drill
    from chaos.drills.report import read_samples, write_report
    from chaos.drills.runner import DrillResult, RunOptions, run_drill
    from chaos.drills.samples import Record, Sample
    from chaos.drills.verdict import Verdict

_WHERE = {
    "AgainstConfig": "chaos.drills.against",
    "load_against": "chaos.drills.against",
    "run_against": "chaos.drills.against",
    "drill_passed": "chaos.drills.assertions",
    "evaluate": "chaos.drills.assertions",
    "DrillPorts": "chaos.drills.layout",
    "find_free_base": "chaos.drills.layout",
    "Drill": "chaos.drills.model",
    "DrillError": "chaos.drills.model",
    "DrillFile": "chaos.drills.model",
    "load_drill": "chaos.drills.model",
    "read_samples": "chaos.drills.report",
    "write_report": "chaos.drills.report",
    "DrillResult": "chaos.drills.runner",
    "RunOptions": "chaos.drills.runner",
    "run_drill": "chaos.drills.runner",
    "Record": "chaos.drills.samples",
    "Sample": "chaos.drills.samples",
    "Verdict": "chaos.drills.verdict",
}

__all__ = [
    "AgainstConfig",
    "Drill",
    "DrillError",
    "DrillFile",
    "DrillPorts",
    "DrillResult",
    "Record",
    "RunOptions",
    "Sample",
    "Verdict",
    "drill_passed",
    "evaluate",
    "find_free_base",
    "load_against",
    "load_drill",
    "read_samples",
    "run_against",
    "run_drill",
    "write_report",
]


__getattr__, __dir__ = lazy_names(__name__, _WHERE)
