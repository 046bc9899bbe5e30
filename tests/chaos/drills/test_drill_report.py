"""The report: well-formed self-contained HTML with its charts, and samples.json round-trips."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from drill_testing import BASE, drill, record, sample, step, table, weights, wles

from chaos.drills.assertions import evaluate
from chaos.drills.report import read_samples, render, write_report
from chaos.drills.samples import dump_record, load_record

VOID = {"meta", "br", "img", "input", "link", "hr", "rect", "line", "circle", "polyline", "path"}


class Checker(HTMLParser):
    """Balanced tags (SVG's self-closing marks allowed), and what the page holds."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.svgs = 0
        self.polylines = 0
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.external.append(value)
        if tag == "svg":
            self.svgs += 1
        if tag == "polyline":
            self.polylines += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "polyline":
            self.polylines += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def synthetic():  # type: ignore[no-untyped-def]
    timeline = [
        {"id": "outage", "at": "1s", "do": "vip_fault", "vips": ["foo/dc2"], "mode": "refuse"},
        {"id": "recover", "at": "4s", "do": "vip_clear"},
    ]
    d = drill(timeline, [{"check": "reflects", "step": "outage", "dns_within": "3s"}])
    samples = []
    for i in range(16):
        t = i * 0.5
        down = 2.0 <= t < 5.0
        rows = weights("dc2") if down else BASE
        tab = table(rows, out={"dc2": "VIP Down"} if down else None, generation=2 if down else 1)
        samples.append(
            sample(t, rows, tab=tab, wle=wles({"dc2": not down}), down=("foo/dc2",) if down else ())
        )
    steps = [step("outage", "vip_fault", 1.0), step("recover", "vip_clear", 4.0)]
    rec = record(samples, steps)
    return d, rec, evaluate(d, rec)


def test_html_is_well_formed_self_contained_and_has_the_charts() -> None:
    d, rec, verdicts = synthetic()
    page = render(d, rec, verdicts)
    assert page.startswith("<!DOCTYPE html>")
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert checker.problems == [] and checker.stack == []
    assert checker.external == []  # no script, stylesheet or image from elsewhere
    # members lanes; per service: 3 DNS charts, 3 mesh charts, a health lane
    assert checker.svgs == 1 + 3 + 3 + 1
    assert checker.polylines >= 9  # a line per target in each DNS chart
    assert "reflects outage" in page and "PASSED" in page
    assert "<script" not in page


def test_samples_json_round_trips(tmp_path: Path) -> None:
    d, rec, verdicts = synthetic()
    html, samples = write_report(tmp_path, d, rec, verdicts)
    assert html.exists()
    again, read_verdicts = read_samples(samples)
    assert again == rec
    assert read_verdicts == verdicts
    doc = json.loads(samples.read_text())
    assert load_record(doc["record"]) == rec
    assert dump_record(again) == doc["record"]


def test_a_failed_drill_says_so() -> None:
    _d, rec, _ = synthetic()
    tight = drill(
        [{"id": "outage", "at": "1s", "do": "vip_fault", "vips": ["foo/dc2"], "mode": "refuse"}],
        [{"check": "reflects", "step": "outage", "dns_within": "100ms"}],
    )
    page = render(tight, rec, evaluate(tight, rec))
    assert "FAILED" in page and "class='failed'" in page
