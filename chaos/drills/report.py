"""The drill report: `report.html` (self-contained, inline SVG) and `samples.json`.

The HTML holds the verdicts, the steps as they ran, the members' roles over
time, and per service a chart per client region of the DNS weights the
region's members served (lines) with the answers counted on the wire (dots,
share over the last few samples), a chart per cluster of the traffic share
its WorkloadEntries give each region, and a lane per region of the
service's health; every chart marks the steps. No script, no external
resource: it opens from a mail attachment.

`samples.json` is `{"record": …, "verdicts": […]}`: the record round-trips
through `chaos.drills.samples.load_record`, the verdicts through `load_verdicts`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from chaos.drills.charts import (
    PALETTE,
    Frame,
    Lane,
    Line,
    Marker,
    lanes_chart,
    line_chart,
    spans,
)
from chaos.drills.model import Drill
from chaos.drills.samples import Record, Sample, dump_record, load_record
from chaos.drills.verdict import Verdict

WIRE_WINDOW = 5  # samples whose answers one dot shares out
_VERDICTS: TypeAdapter[list[Verdict]] = TypeAdapter(list[Verdict])

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1250px}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
h3{font-size:1em;margin:.8em 0 .3em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.passed{color:#1a7f37;font-weight:bold} .failed{color:#cf222e;font-weight:bold}
.pending,.skipped{color:#777}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:bold}
.badge.passed{background:#1a7f37;color:#fff} .badge.failed{background:#cf222e;color:#fff}
.charts{display:flex;flex-wrap:wrap;gap:6px} .chart{background:#fff}
.muted{color:#666;font-size:.85em} details{font-size:.85em}
"""


def load_verdicts(data: Any) -> list[Verdict]:
    return _VERDICTS.validate_python(data)


def samples_doc(record: Record, verdicts: Sequence[Verdict]) -> dict[str, Any]:
    return {"record": dump_record(record), "verdicts": [asdict(v) for v in verdicts]}


def read_samples(path: Path) -> tuple[Record, list[Verdict]]:
    doc = json.loads(path.read_text())
    return load_record(doc["record"]), load_verdicts(doc["verdicts"])


def write_report(
    out_dir: Path, drill: Drill, record: Record, verdicts: Sequence[Verdict]
) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = out_dir / "samples.json"
    samples.write_text(json.dumps(samples_doc(record, verdicts)))
    html = out_dir / "report.html"
    html.write_text(render(drill, record, verdicts))
    return html, samples


# --- the page -----------------------------------------------------------------------------


def render(drill: Drill, record: Record, verdicts: Sequence[Verdict]) -> str:
    ok = not any(v.failed for v in verdicts)
    when = datetime.fromtimestamp(record.started, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    frame = _frame(record)
    markers = [Marker(s.t, s.id) for s in record.steps if s.do != "measure_split"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>drill {escape(record.drill)}: {'passed' if ok else 'failed'}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{escape(record.title)} <span class='badge {'passed' if ok else 'failed'}'>"
        f"{'PASSED' if ok else 'FAILED'}</span></h1>",
        f"<p class='muted'>drill <b>{escape(record.drill)}</b> ({record.variant}, {record.mode}),"
        f" started {when}; {len(record.samples)} samples every {record.sample_every:g}s;"
        f" {len(record.estate.members)} members in {len(record.estate.regions)} regions.</p>",
        f"<p>{escape(drill.description)}</p>" if drill.description else "",
        "<h2>Assertions</h2>",
        _verdicts(verdicts),
        "<h2>Steps</h2>",
        _steps(record),
        "<h2>Members</h2>",
        f'<div class="charts">{_members(record, markers, frame)}</div>',
    ]
    for service in record.estate.services:
        parts.append(
            f"<h2>{escape(service)} <span class='muted'>"
            f"{escape(record.estate.services[service].fqdn)}</span></h2>"
        )
        parts.append(_service(record, service, markers, frame))
    parts.append(_notes(record))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def _frame(record: Record) -> Frame:
    ts = [s.t for s in record.samples] + [s.t for s in record.steps]
    return Frame(min(ts, default=0.0), max(ts, default=1.0) or 1.0)


def _verdicts(verdicts: Sequence[Verdict]) -> str:
    rows = ["<table><tr><th>assertion</th><th>result</th><th>measured</th><th>bound</th></tr>"]
    for v in verdicts:
        details = ""
        if v.details:
            items = "".join(f"<li>{escape(d)}</li>" for d in v.details)
            details = (
                f"<details><summary>{len(v.details)} detail(s)</summary><ul>{items}</ul></details>"
            )
        rows.append(
            f"<tr><td>{escape(v.check)}</td><td class='{v.state}'>{v.state}</td>"
            f"<td>{escape(v.measured)}{details}</td><td>{escape(v.bound)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _steps(record: Record) -> str:
    rows = [
        "<table><tr><th>id</th><th>at</th><th>ran</th><th>step</th><th></th><th>what came of it</th></tr>"
    ]
    for s in record.steps:
        mark = "<span class='passed'>ok</span>" if s.ok else "<span class='failed'>failed</span>"
        rows.append(
            f"<tr><td>{escape(s.id)}</td><td>{s.planned:g}s</td><td>{s.t:.2f}s</td>"
            f"<td>{escape(s.title)}</td><td>{mark}</td><td>{escape(s.detail)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _members(record: Record, markers: list[Marker], frame: Frame) -> str:
    colors = {"leader": "#1a7f37", "standby": "#8fbf9f", "starting": "#d4a72c", "down": "#cf222e"}
    lanes = []
    for name in record.estate.members:
        points = []
        for s in record.samples:
            m = s.members.get(name)
            state = "down" if m is None or not m.reachable else (m.role or "starting")
            points.append((s.t, state))
        lanes.append(Lane(name, spans(points, frame.t1, colors)))
    impaired = []
    for region in record.estate.regions:
        points = [
            (s.t, "impaired" if any(region in m.impaired for m in s.running()) else "ok")
            for s in record.samples
        ]
        impaired.append(Lane(f"{region} vantage", spans(points, frame.t1, {"impaired": "#d4a72c"})))
    wide = Frame(frame.t0, frame.t1, width=760, left=80)
    return lanes_chart(
        "role (green leader, pale standby, red no answer); vantages impaired (amber)",
        lanes + impaired,
        markers,
        wide,
    )


def _color(record: Record, region: str) -> str:
    return PALETTE[list(record.estate.regions).index(region) % len(PALETTE)]


def _reference(s: Sample, region: str) -> str | None:
    """The member whose served table stands for `region`'s clients: its own region's first."""
    members = [m for m in s.running() if m.table is not None]
    mine = [m.name for m in members if m.region == region]
    return mine[0] if mine else (members[0].name if members else None)


def _service(record: Record, service: str, markers: list[Marker], frame: Frame) -> str:
    regions = record.estate.regions
    charts = []
    for source in regions:
        lines = []
        wire: dict[str, list[tuple[float, float]]] = {t: [] for t in regions}
        recent: list[list[str]] = []
        for target in regions:
            points = []
            for s in record.samples:
                ref = _reference(s, source)
                table = None if ref is None else s.members[ref].table
                row = None if table is None else table.rows.get(service, {}).get(source)
                if row is not None and target in row.cells:
                    points.append((s.t, 100.0 * row.cells[target].weight / (row.total or 1)))
            lines.append(Line(target, _color(record, target), points))
        vips = record.estate.services[service].vips
        for s in record.samples:
            got = [
                vips.get(a, "?")
                for m in s.running()
                for a in s.dns.get(m.name, {}).get(service, {}).get(source, ())
            ]
            recent = [*recent[-(WIRE_WINDOW - 1) :], got]
            flat = [r for batch in recent for r in batch]
            for target in regions:
                if flat:
                    wire[target].append((s.t, 100.0 * flat.count(target) / len(flat)))
        lines += [Line(f"{t} answers", _color(record, t), wire[t], dots=True) for t in regions]
        charts.append(
            line_chart(f"DNS: clients in {source}", lines, markers, frame, y_label="% of answers")
        )
    for cluster in regions:
        lines = []
        for target in regions:
            points = []
            for s in record.samples:
                entries = [w for w in s.wles.get(cluster, ()) if w.service == service]
                total = sum(w.effective for w in entries)
                if entries:
                    part = sum(w.effective for w in entries if w.target == target)
                    points.append((s.t, 100.0 * part / total if total else 0.0))
            lines.append(Line(target, _color(record, target), points))
        if any(line.points for line in lines):
            charts.append(
                line_chart(
                    f"mesh: {cluster} cluster", lines, markers, frame, y_label="% of traffic"
                )
            )
    lanes = []
    for region in regions:
        if not record.estate.vips_in(service, region):
            continue
        points = [
            (s.t, "down" if any(f"{service}/{region}" in m.down for m in s.running()) else "up")
            for s in record.samples
        ]
        lanes.append(Lane(region, spans(points, frame.t1, {"down": "#cf222e"})))
    charts.append(lanes_chart("health: (service, region) down (red)", lanes, markers, frame))
    return f'<div class="charts">{"".join(charts)}</div>'


def _notes(record: Record) -> str:
    notes = "".join(f"<li>{escape(n)}</li>" for n in record.notes)
    return (
        "<h2>How to read this</h2><ul class='muted'>"
        "<li>Lines: the weights (in % of the row) the members of the clients' region served"
        " (<code>/v1/table</code>); dots: the share of DNS answers on the wire pointing into each"
        f" region over the last {WIRE_WINDOW} samples, from every member, asked with the"
        " region's client subnet (ECS).</li>"
        "<li>Mesh: each cluster's WorkloadEntries, Healthy weight per target region over the"
        " service's total.</li>"
        "<li>Times are seconds since the estate was healthy; dashed lines mark the steps.</li>"
        "<li>Every sample is in <code>samples.json</code> next to this file.</li>"
        f"{notes}</ul>"
    )
