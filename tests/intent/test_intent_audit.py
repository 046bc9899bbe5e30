"""The audit history: derived from store writes, refusals recorded by the controller,
read back newest first; a local JSON Lines file or a bounded ConfigMap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from intent_fixtures import T0, exit_, kube
from structlog.testing import capture_logs

from intent import (
    EMPTY,
    Action,
    AuditEntry,
    BadCursor,
    ConfigMapAudit,
    FileAudit,
    transitions,
)
from policies import Estate, Guardrails, Health, Policy, Service, Vip, admit


def refusal_of_a_second_exit() -> tuple[AuditEntry, str]:
    """A real guardrail refusal: exiting dc3 while dc2 is out breaks max_concurrent_exits."""
    regions = ("dc1", "dc2", "dc3")
    policy = Policy.uniform("p", regions, guardrails=Guardrails(1, 1))
    vips = {
        r: (Vip(Vip.make_id("foo", r, "10.0.0.1", 443), "foo", r, "10.0.0.1", 443),)
        for r in regions
    }
    estate = Estate(regions, (Service("foo", "foo.example.com", policy, vips),))
    second = exit_("x3", region="dc3", why="more", created=T0 + 1)
    admission = admit(estate, Health(), [exit_("x2"), second])
    (refusal,) = admission.refusals
    return AuditEntry.refused(second, refusal, at=T0 + 2), refusal.rule


def test_transitions_name_what_changed_in_order() -> None:
    before = EMPTY.add(exit_("x1", expires=T0 + 5))
    after = before.expire(T0 + 10)[0].enter("dc2", None, 60.0, "carol", "back", T0 + 20, id="e1")
    entries = transitions(before, after)
    assert [(e.action, e.override_id, e.at) for e in entries] == [
        (Action.EXPIRED, "x1", T0 + 5),
        (Action.ENTERED, "e1", T0 + 20),
    ]
    assert transitions(after, after) == []
    again = transitions(
        EMPTY.add(exit_("x1")),
        EMPTY.add(exit_("x1")).enter("dc2", None, 9.0, "c", "w", T0 + 1, id="e"),
    )
    assert [(e.action, e.override_id) for e in again] == [
        (Action.ENTERED, "e"),
        (Action.REMOVED, "x1"),
    ]
    assert again[1].why == "closed by e: w" and again[1].who == "c"


async def test_file_audit_appends_and_reads_back_newest_first(tmp_path: Path) -> None:
    audit = FileAudit(tmp_path / "audit.jsonl")
    assert not await audit.history()
    one = EMPTY.add(exit_("x1"))
    two = one.remove("x1", "bob", "done", T0 + 10)
    await audit.append(transitions(EMPTY, one))
    refused, rule = refusal_of_a_second_exit()
    await audit.append([refused])
    await audit.append(transitions(one, two))
    history = await audit.history()
    assert [e.action for e in history] == [Action.REMOVED, Action.REFUSED, Action.ACCEPTED]
    assert (history[1].rule, history[1].ticket, history[1].who) == (rule, "CHG-1", "alice")
    assert "max_concurrent_exits" in history[1].why
    assert [e.action for e in await audit.history(limit=1)] == [Action.REMOVED]
    assert [e.action for e in await audit.history(since=T0 + 2)] == [Action.REMOVED, Action.REFUSED]
    reopened = await FileAudit(tmp_path / "audit.jsonl").history()  # after a restart
    assert reopened == history


async def test_file_audit_survives_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = FileAudit(path)
    await audit.append(transitions(EMPTY, EMPTY.add(exit_("x1"))))
    with path.open("ab") as f:
        f.write(b'{"id": "accepted:x2", "act')  # a crash in the middle of an append
    await audit.append(transitions(EMPTY, EMPTY.add(exit_("x3", why="later"))))
    assert [e.override_id for e in await audit.history()] == ["x3", "x1"]


async def test_configmap_audit_is_bounded_and_skips_repeats() -> None:
    async with kube() as (sim, api):
        audit = ConfigMapAudit(api, name="audit", namespace="gtm", keep=5)
        state = EMPTY
        for i in range(8):
            after = state.add(exit_(f"x{i}", why=f"change {i}", created=T0 + i))
            await audit.append(transitions(state, after))
            state = after
        again = EMPTY.add(exit_("x7", why="change 7", created=T0 + 7))
        await audit.append(transitions(EMPTY, again))  # recorded again: skipped
        history = await audit.history(limit=10)
        assert [e.override_id for e in history] == ["x7", "x6", "x5", "x4", "x3"]
        refused, _ = refusal_of_a_second_exit()
        await audit.append([refused])
        await audit.append([refused])  # a retried append records once
        history = await audit.history(limit=10)
        assert [e.action for e in history].count(Action.REFUSED) == 1 and len(history) == 5
        (cm,) = sim.objects("", "v1", "configmaps", "gtm")
        assert len(cm["data"]["audit.jsonl"].splitlines()) == 5


def many(count: int) -> list[AuditEntry]:
    """`count` acceptances, one second apart, in the order they happened."""
    return [
        AuditEntry.accepted(exit_(f"x{i}", created=T0 + i, why=f"change {i} " + "w" * (i % 7)))
        for i in range(count)
    ]


async def test_the_file_audit_rotates_by_size_and_reads_across_segments(tmp_path: Path) -> None:
    audit = FileAudit(tmp_path / "audit.jsonl", segment_bytes=2000)
    audit.BLOCK = 100  # lines cross block boundaries
    entries = many(40)
    with capture_logs() as logs:
        for e in entries:
            await audit.append([e])
    segments = audit.segments()
    assert len(segments) >= 4
    assert all(p.stat().st_size < 2000 + 500 for p in segments)
    assert sum(e["event"] == "intent.audit_rotated" for e in logs) == len(segments)
    newest_first = list(reversed(entries))
    assert list(await audit.history(limit=1000)) == newest_first
    assert list(await audit.history(limit=7)) == newest_first[:7]
    assert list(await audit.history(limit=100, since=T0 + 30)) == newest_first[:10]
    assert list(await FileAudit(audit.path).history(limit=1000)) == newest_first  # a restart


async def test_history_reads_only_the_segments_it_needs(tmp_path: Path) -> None:
    audit = FileAudit(tmp_path / "audit.jsonl", segment_bytes=2000)
    for e in many(40):
        await audit.append([e])
    oldest = audit.segments()[0]
    oldest.write_bytes(b"not json at all\n" * 10)  # read it, and it says so
    with capture_logs() as logs:
        assert len(await audit.history(limit=5)) == 5
    assert not [e for e in logs if e["event"] == "intent.audit_bad_line"]
    with capture_logs() as logs:
        await audit.history(limit=1000)
    bad = [e for e in logs if e["event"] == "intent.audit_bad_line"]
    assert len(bad) == 10 and {e["path"] for e in bad} == {str(oldest)}


async def pages(audit: FileAudit | ConfigMapAudit, limit: int, **kw: object) -> list[list[str]]:
    """Every page of the history, each as its override ids, following `next`."""
    out, before = [], None
    while True:
        page = await audit.history(limit=limit, before=before, **kw)  # type: ignore[arg-type]
        out.append([e.override_id for e in page])
        if page.next is None:
            return out
        before = page.next


async def test_the_file_audit_pages_through_every_segment_once(tmp_path: Path) -> None:
    audit = FileAudit(tmp_path / "audit.jsonl", segment_bytes=2000)
    audit.BLOCK = 100
    entries = many(40)
    for e in entries:
        await audit.append([e])
    assert len(audit.segments()) >= 4
    ids = [e.override_id for e in reversed(entries)]
    for limit in (1, 3, 7, 40, 100):
        got = await pages(audit, limit)
        assert [i for page in got for i in page] == ids
        assert all(len(page) == limit for page in got[:-1])
    since = await pages(audit, 4, since=T0 + 25)
    assert [i for page in since for i in page] == ids[:15]


async def test_a_cursor_holds_across_a_rotation(tmp_path: Path) -> None:
    audit = FileAudit(tmp_path / "audit.jsonl", segment_bytes=2000)
    entries = many(30)
    for e in entries[:12]:
        await audit.append([e])
    first = await audit.history(limit=3)
    assert first.next is not None and first.next.startswith(f"{len(audit.segments()) + 1}:")
    for e in entries[12:]:  # the live file the cursor points into is rotated meanwhile
        await audit.append([e])
    rest = await audit.history(limit=100, before=first.next)
    assert [e.override_id for e in rest] == [f"x{i}" for i in range(8, -1, -1)]


async def test_since_skips_old_segments_by_their_index(tmp_path: Path) -> None:
    audit = FileAudit(tmp_path / "audit.jsonl", segment_bytes=2000)
    for e in many(40):
        await audit.append([e])
    oldest = audit.segments()[0]
    assert (oldest.parent / (oldest.name + ".idx")).exists()  # written at its rotation
    oldest.write_bytes(b"not json at all\n" * 10)  # read it, and it would say so
    with capture_logs() as logs:
        assert len(await FileAudit(audit.path).history(limit=100, since=T0 + 30)) == 10
    assert not [e for e in logs if e["event"] == "intent.audit_bad_line"]
    index = oldest.parent / (oldest.name + ".idx")
    index.write_text("{garbage")  # an unreadable index is made again from its segment
    fresh = FileAudit(audit.path)
    with capture_logs() as logs:
        assert len(await fresh.history(limit=100, since=T0 + 30)) == 10
    assert json.loads(index.read_text())["entries"] == 0  # the segment holds no entry now


def names(directory: Path, pattern: str) -> set[str]:
    return {p.name for p in directory.glob(pattern)}


async def test_segments_past_keep_bytes_are_removed_oldest_first(tmp_path: Path) -> None:
    audit = FileAudit(tmp_path / "audit.jsonl", segment_bytes=2000, keep_bytes=5000)
    entries = many(80)
    with capture_logs() as logs:
        for e in entries:
            await audit.append([e])
    segments = audit.segments()
    assert sum(p.stat().st_size for p in segments) <= 5000
    removed = [e for e in logs if e["event"] == "intent.audit_segment_removed"]
    assert removed and not {Path(e["segment"]).name for e in removed} & names(tmp_path, "*")
    assert not names(tmp_path, "*.idx.tmp")
    assert names(tmp_path, "*.idx") == {p.name + ".idx" for p in segments}
    got = [e.override_id for e in await audit.history(limit=1000)]
    assert got == [f"x{i}" for i in range(79, 79 - len(got), -1)]  # the newest, in order
    assert len(got) < 80


async def test_a_cursor_the_audit_did_not_hand_out_is_refused(tmp_path: Path) -> None:
    audit = FileAudit(tmp_path / "audit.jsonl")
    await audit.append(many(3))
    for bad in ("x", "1:", ":5", "-1:3", "1:2:3", "9" * 50):
        with pytest.raises(BadCursor, match="not a cursor"):
            await audit.history(before=bad)


async def test_the_configmap_audit_pages_by_entry_id() -> None:
    async with kube() as (_sim, client):
        audit = ConfigMapAudit(client, namespace="gtm", keep=20)
        entries = many(12)
        await audit.append(entries)
        got = await pages(audit, 5)
        assert got == [
            [f"x{i}" for i in range(11, 6, -1)],
            [f"x{i}" for i in range(6, 1, -1)],
            ["x1", "x0"],
        ]
        with pytest.raises(BadCursor, match="no entry this audit still holds"):
            await audit.history(before="accepted:gone")
