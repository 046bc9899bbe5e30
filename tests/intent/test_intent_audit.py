"""The audit history: derived from store writes, refusals recorded by the controller,
read back newest first; a local JSON Lines file or a bounded ConfigMap."""

from __future__ import annotations

from pathlib import Path

from intent_fixtures import T0, exit_, kube
from structlog.testing import capture_logs

from intent import (
    EMPTY,
    Action,
    AuditEntry,
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
    assert await audit.history() == []
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
    assert await audit.history(limit=1000) == newest_first
    assert await audit.history(limit=7) == newest_first[:7]
    assert await audit.history(limit=100, since=T0 + 30) == newest_first[:10]
    assert await FileAudit(audit.path).history(limit=1000) == newest_first  # a restart


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
