"""The intent store in a ConfigMap, against the simulated API server through kubernetes-asyncio."""

from __future__ import annotations

import asyncio
import time

import pytest
from intent_fixtures import T0, another_client, drain, exit_, kube
from prometheus_client import CollectorRegistry

from chaos.kubesim import Faults
from intent import (
    CONFIGMAP_LIMIT,
    EMPTY,
    Action,
    ConfigMapAudit,
    ConfigMapIntentStore,
    IntentState,
    StaleEpoch,
    StoreMetrics,
    StoreUnavailable,
    TooLarge,
)
from kube import Client, RetrySettings

NS = "gtm"


def count(metrics: StoreMetrics, name: str, *labels: str) -> float:
    return getattr(metrics, name).labels(*labels)._value.get()


async def test_created_on_first_write_and_read_back_after_a_restart() -> None:
    async with kube() as (sim, api):
        store = ConfigMapIntentStore(api, name="intent", namespace=NS)
        assert await store.load() == EMPTY  # nothing stored yet; nothing created
        assert sim.objects("", "v1", "configmaps", NS) == []
        written = await store.update(lambda s: s.add(exit_("x1")), epoch=2)
        async with another_client(sim) as other:  # a restarted member, its own client
            again = await ConfigMapIntentStore(other, name="intent", namespace=NS).load()
        assert again == written and again.epoch == 2 and list(again.overrides) == ["x1"]
        (cm,) = sim.objects("", "v1", "configmaps", NS)
        assert cm["metadata"]["labels"]["app.kubernetes.io/component"] == "intent"
        assert IntentState.from_json(cm["data"]["intent.json"]) == written


async def test_a_concurrent_writer_is_retried_without_losing_either_change() -> None:
    async with kube() as (sim, api), another_client(sim) as other_api:
        metrics = StoreMetrics(CollectorRegistry())
        leader = ConfigMapIntentStore(api, name="intent", namespace=NS, metrics=metrics)
        other = ConfigMapIntentStore(other_api, name="intent", namespace=NS)
        await leader.update(lambda s: s.add(exit_("x1")), epoch=1)  # leader now holds RV n
        await other.update(lambda s: s.add(drain("d1", "dc1", "foo")), epoch=1)  # RV n+1
        calls: list[int] = []

        def add_x2(s: IntentState) -> IntentState:
            calls.append(s.version)
            return s.add(exit_("x2", region="dc3", why="second"))

        state = await leader.update(add_x2, epoch=1)  # PUT with RV n: 409, re-read, re-apply
        assert set(state.overrides) == {"x1", "d1", "x2"}
        assert calls == [1, 2]  # applied to its stale copy, then to the fresh state
        assert count(metrics, "conflicts", "configmap/intent") == 1
        assert (await other.load()) == state
        codes = sim.stats()["by_code"]
        assert codes.get("409") == 1


async def test_many_writers_at_once_lose_nothing() -> None:
    async with kube() as (sim, api):
        sim.faults.set(Faults(latency=0.002, jitter=0.004, seed=3))
        metrics = StoreMetrics(CollectorRegistry())
        stores = [
            ConfigMapIntentStore(api, name="intent", namespace=NS, metrics=metrics)
            for _ in range(5)
        ]

        async def writer(n: int, store: ConfigMapIntentStore) -> None:
            for i in range(4):
                o = exit_(f"w{n}-{i}", who=f"w{n}", why=f"change {i}")
                await store.update(lambda s, o=o: s.add(o), epoch=1)

        await asyncio.gather(*(writer(n, s) for n, s in enumerate(stores)))
        state = await stores[0].load()
        assert len(state.overrides) == 20 and state.version == 20
        assert count(metrics, "conflicts", "configmap/intent") > 0  # they did collide


async def test_half_of_the_requests_failing_with_500_still_succeeds() -> None:
    async with kube() as (sim, api):
        store = ConfigMapIntentStore(api, name="intent", namespace=NS)
        sim.faults.set(Faults(error_rate=0.5, seed=11))
        for i in range(12):
            o = exit_(f"x{i}", why=f"change {i}")
            await store.update(lambda s, o=o: s.add(o), epoch=1)
        state = await store.update(lambda s: s.remove("x0", "bob", "done", T0 + 1), epoch=1)
        stats = sim.stats()
        sim.faults.clear()
        assert stats["injected"]["error"] >= 10
        assert len(state.overrides) == 11 and "x0" in state.tombstones
        assert await store.load() == state


async def test_a_stale_epoch_is_refused_and_changes_nothing() -> None:
    async with kube() as (sim, api), another_client(sim) as old_api:
        old_leader = ConfigMapIntentStore(old_api, name="intent", namespace=NS)
        await old_leader.update(lambda s: s.add(exit_("x1")), epoch=4)
        new_leader = ConfigMapIntentStore(api, name="intent", namespace=NS)
        await new_leader.update(lambda s: s, epoch=5)  # takes over: fences epoch 4 off
        (before,) = sim.objects("", "v1", "configmaps", NS)
        with pytest.raises(StaleEpoch, match=r"epoch 4.*epoch 5"):
            await old_leader.update(lambda s: s.remove("x1", "paused", "stale", T0), epoch=4)
        (after,) = sim.objects("", "v1", "configmaps", NS)
        assert after == before
        assert "x1" in (await new_leader.load()).overrides


async def test_other_keys_and_labels_of_the_configmap_are_kept() -> None:
    async with kube() as (_sim, api):
        store = ConfigMapIntentStore(api, name="intent", namespace=NS)
        await store.update(lambda s: s.add(exit_("x1")), epoch=1)
        cm = await api.core.read_namespaced_config_map("intent", NS)
        cm.metadata.labels["team"] = "netops"
        cm.data["notes"] = "edited by hand"
        await api.core.replace_namespaced_config_map("intent", NS, cm)
        await store.update(lambda s: s.add(exit_("x2", why="second")), epoch=1)
        cm = await api.core.read_namespaced_config_map("intent", NS)
        assert cm.metadata.labels["team"] == "netops" and cm.data["notes"] == "edited by hand"


async def test_throttling_honours_retry_after() -> None:
    async with kube() as (sim, api):
        store = ConfigMapIntentStore(api, name="intent", namespace=NS)
        await store.load()
        sim.faults.set(Faults(throttle_rate=1.0, retry_after=1))
        asyncio.get_running_loop().call_later(0.2, sim.faults.clear)
        started = time.monotonic()
        await store.update(lambda s: s.add(exit_("x1")), epoch=1)
        assert time.monotonic() - started >= 1.0  # waited as told, not FAST's 20 ms


async def test_a_server_that_keeps_failing_gives_a_clear_error() -> None:
    async with kube() as (sim, api):
        retry = RetrySettings(attempts=3, backoff=0.001, backoff_max=0.002)
        slow = Client(api.api, timeout=0.2, retry=retry)
        store = ConfigMapIntentStore(slow, name="intent", namespace=NS)
        sim.faults.set(Faults(error_rate=1.0))
        with pytest.raises(StoreUnavailable, match=r"get failed 3 times: 500"):
            await store.update(lambda s: s.add(exit_("x1")), epoch=1)
        sim.faults.set(Faults(latency=1.0))  # a hung server: every request times out
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="TimeoutError"):
            await store.load()
        assert time.monotonic() - started < 2.0


async def test_an_invalid_name_is_reported_at_once() -> None:
    async with kube() as (_, api):
        store = ConfigMapIntentStore(api, name="Not_A_Name", namespace=NS)
        with pytest.raises(StoreUnavailable, match="422"):
            await store.update(lambda s: s.add(exit_("x1")), epoch=1)


async def test_changes_go_to_the_configmap_audit() -> None:
    async with kube() as (_, api):
        audit = ConfigMapAudit(api, name="audit", namespace=NS)
        store = ConfigMapIntentStore(api, name="intent", namespace=NS, audit=audit)
        await store.update(lambda s: s.add(exit_("x1", expires=T0 + 30)), epoch=1)
        await store.update(lambda s: s.enter("dc2", None, 60.0, "carol", "back", T0 + 10), epoch=1)
        history = await audit.history()
        assert [(e.action, e.override_id.split("-")[0]) for e in history] == [
            (Action.REMOVED, "x1"),
            (Action.ENTERED, "enter"),
            (Action.ACCEPTED, "x1"),
        ]
        assert history[0].why.startswith("closed by enter-dc2-")


async def test_a_cached_copy_never_decides_a_no_op_on_its_own() -> None:
    """The store remembers what it last wrote; when that copy says "nothing to do",
    it checks with the server before believing it (someone may have deleted it)."""
    async with kube() as (_sim, api):
        store = ConfigMapIntentStore(api, name="intent", namespace=NS)
        await store.update(lambda s: s.add(exit_("x1")), epoch=1)
        await api.core.delete_namespaced_config_map("intent", NS)
        state = await store.update(lambda s: s.add(exit_("x1")), epoch=1)
        assert list(state.overrides) == ["x1"]
        assert list((await store.load()).overrides) == ["x1"]


async def test_an_audit_that_cannot_be_appended_means_not_accepted() -> None:
    """Audit first, as the file store does: no audit entry, no change."""
    async with kube() as (sim, api):
        audit = ConfigMapAudit(api, name="Not_An_Audit_Name", namespace=NS)
        store = ConfigMapIntentStore(api, name="intent", namespace=NS, audit=audit)
        with pytest.raises(StoreUnavailable, match="422"):
            await store.update(lambda s: s.add(exit_("x1")), epoch=1)
        assert sim.objects("", "v1", "configmaps", NS) == []  # the intent was not written
        assert await store.load() == EMPTY


async def test_a_write_that_fails_withdraws_its_audit_entries() -> None:
    """The audit entry goes in before the write; the write fails (too large): it goes out."""
    async with kube() as (_sim, api):
        audit = ConfigMapAudit(api, name="audit", namespace=NS)
        store = ConfigMapIntentStore(api, name="intent", namespace=NS, audit=audit)
        await store.update(lambda s: s.add(exit_("x0")), epoch=1)
        cm = await api.core.read_namespaced_config_map("intent", NS)
        cm.data["notes"] = "n" * (CONFIGMAP_LIMIT - len(cm.data["intent.json"]) - 100)
        await api.core.replace_namespaced_config_map("intent", NS, cm)
        with pytest.raises(TooLarge):
            await store.update(lambda s: s.add(exit_("x1", region="dc3")), epoch=1)
        assert [e.id for e in await audit.history()] == ["accepted:x0"]
        assert list((await store.load()).overrides) == ["x0"]


async def test_a_lost_race_withdraws_the_entries_the_winner_did_not_store() -> None:
    """Decided on a stale copy (x2), lost the race, decided again on the fresh one (x3):
    the audit holds what the store holds — the winner's d1 and x3 — never x2."""
    async with kube() as (sim, api), another_client(sim) as other_api:
        audit = ConfigMapAudit(api, name="audit", namespace=NS)
        leader = ConfigMapIntentStore(api, name="intent", namespace=NS, audit=audit)
        other_audit = ConfigMapAudit(other_api, name="audit", namespace=NS)
        other = ConfigMapIntentStore(other_api, name="intent", namespace=NS, audit=other_audit)
        await leader.update(lambda s: s.add(exit_("x1")), epoch=1)  # its copy: RV n
        await other.update(lambda s: s.add(drain("d1", "dc1", "foo")), epoch=1)

        def depends(s: IntentState) -> IntentState:
            if "d1" in s.overrides:
                return s.add(exit_("x3", region="dc3", why="after d1"))
            return s.add(exit_("x2", region="dc3", why="without d1"))

        state = await leader.update(depends, epoch=1)
        assert set(state.overrides) == {"x1", "d1", "x3"}
        ids = [e.id for e in reversed(await audit.history())]
        assert ids == ["accepted:x1", "accepted:d1", "accepted:x3"]
