"""`gtm bench intent` runs end to end on a few days (the figures themselves are not judged)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from chaos.bench.intent import RATIOS, command

FIELDS = {
    "day",
    "years",
    "compaction",
    "actions",
    "overrides_in_force",
    "tombstones_kept",
    "tombstones_retired",
    "version",
    "intent_bytes",
    "intent_bytes_per_action",
    "audit_live_bytes",
    "audit_segment_bytes",
    "audit_segments",
    "audit_bytes",
    "audit_bytes_per_action",
    "load_ms",
    "update_drain_ms",
    "digest_ms",
    "round_trip_ms",
    "expire_scan_ms",
    "compactable_ms",
    "history_100_ms",
    "history_entries",
    "tick_ms",
    "store_window_writes",
    "store_window_update_ms_median",
    "store_window_update_ms_max",
}


def test_bench_intent_reports_every_figure_with_and_without_compaction() -> None:
    args = ["--days", "9", "--actions-per-day", "20", "--baseline-days", "9", "--repeat", "1"]
    result = CliRunner().invoke(command, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["spec"]["days"] == 9 and report["spec"]["actions_per_day"] == 20
    [compacted] = report["compacted"]
    [uncompacted] = report["uncompacted"]
    for figures, compaction in ((compacted, True), (uncompacted, False)):
        assert set(figures) == FIELDS
        assert figures["day"] == 9 and figures["compaction"] is compaction
        assert figures["actions"] >= 9 * 20
        assert figures["history_entries"] == 100
        assert figures["store_window_writes"] >= 20  # the last day went through the store
    # nine days: tombstones a week past their end are gone only with compaction
    assert compacted["tombstones_retired"] > 0 and uncompacted["tombstones_retired"] == 0
    assert set(report["uncompacted_over_compacted"]) == {"day", *RATIOS}


def test_bench_intent_prints_a_table() -> None:
    args = ["--days", "2", "--actions-per-day", "10", "--repeat", "1", "--store-days", "0"]
    result = CliRunner().invoke(command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "store.load() ms" in result.stdout and "no compaction" in result.stdout
