"""The table the leader last published: stored with generation and epoch, read by the standby."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import os
from pathlib import Path

import pytest
from intent_fixtures import another_client, big_table, kube
from structlog.testing import capture_logs

from intent import (
    CONFIGMAP_LIMIT,
    ConfigMapPublishedStore,
    FilePublishedStore,
    PublishedStore,
    StaleEpoch,
    StaleGeneration,
)
from intent.configmap_published import TABLE_KEY
from policies import WeightTable

SMALL = big_table(services=20)


def table(generation: int, source: WeightTable = SMALL) -> WeightTable:
    return WeightTable(generation, float(generation), source.rows)


def other_rows(generation: int) -> WeightTable:
    name = next(iter(SMALL.rows))
    return WeightTable(generation, float(generation), {name: SMALL.rows[name]})


async def fencing_rules(store: PublishedStore) -> None:
    assert await store.load() is None and await store.head() is None
    await store.save(table(5), epoch=2, now=100.0)
    same = await store.save(table(5), epoch=2, now=200.0)  # the same again: a no-op
    assert same.head.published_at == 100.0
    with pytest.raises(StaleGeneration, match="only rise"):
        await store.save(table(4), epoch=2, now=101.0)
    with pytest.raises(StaleGeneration, match="other rows"):
        await store.save(other_rows(5), epoch=2, now=101.0)
    await store.save(table(6), epoch=2, now=102.0)
    # a new leader (epoch 3) continues, even from a lower generation
    await store.save(table(3), epoch=3, now=103.0)
    with pytest.raises(StaleEpoch):
        await store.save(table(7), epoch=2, now=104.0)  # the old leader, paused, wakes up
    loaded = await store.load()
    assert loaded is not None
    assert (loaded.generation, loaded.epoch, loaded.head.published_at) == (3, 3, 103.0)
    assert loaded.table.rows == SMALL.rows


async def test_file_store_fencing(tmp_path: Path) -> None:
    await fencing_rules(FilePublishedStore(tmp_path / "published-table.json"))


async def test_configmap_store_fencing() -> None:
    async with kube() as (_, api):
        await fencing_rules(ConfigMapPublishedStore(api, name="published"))


async def test_file_store_round_trip_and_restart(tmp_path: Path) -> None:
    path = tmp_path / "published-table.json"
    await FilePublishedStore(path).save(table(9), epoch=1, now=5.0)
    standby = FilePublishedStore(path)
    head = await standby.head()
    assert head is not None and (head.generation, head.epoch) == (9, 1)
    loaded = await standby.load()
    assert loaded is not None and loaded.table == table(9)


async def test_the_leader_s_sightings_of_overrides_travel_with_the_table(tmp_path: Path) -> None:
    seen = {"exit-dc2": 1000.5, "drain-foo": 990.0}
    async with kube() as (_, api):
        for store in (
            FilePublishedStore(tmp_path / "published-table.json"),
            ConfigMapPublishedStore(api, name="published"),
        ):
            await store.save(table(3), epoch=1, now=1001.0, seen=seen)
            head = await store.head()
            assert head is not None and head.seen == seen
            loaded = await store.load()
            assert loaded is not None and loaded.head.seen == seen
            await store.save(table(4), epoch=1, now=1002.0)  # no sightings: none stored
            head = await store.head()
            assert head is not None and head.generation == 4 and head.seen == {}


async def test_the_standby_serves_what_the_leader_published_and_continues_from_it() -> None:
    big = big_table(services=4000, generation=41)
    async with kube() as (sim, leader_api), another_client(sim) as standby_api:
        leader = ConfigMapPublishedStore(leader_api, name="published")
        standby = ConfigMapPublishedStore(standby_api, name="published")
        await leader.save(big, epoch=7, now=1000.0)

        (cm,) = sim.objects("", "v1", "configmaps", "gtm")
        packed = cm["binaryData"][TABLE_KEY]
        raw = gzip.decompress(base64.b64decode(packed))
        stored = len(packed) + sum(len(v) for v in cm["data"].values())
        print(
            f"\n4,000-service table: JSON {len(raw):,} B, gzip {len(base64.b64decode(packed)):,} B, "
            f"base64 {len(packed):,} B, ConfigMap data {stored:,} B of {CONFIGMAP_LIMIT:,}"
        )
        assert len(raw) > CONFIGMAP_LIMIT  # it would not fit as plain JSON
        assert stored < CONFIGMAP_LIMIT // 2  # it fits, with room to grow

        served = await standby.load()  # the standby serves the same answers
        assert served is not None and served.generation == 41 and served.epoch == 7
        assert served.table.rows == big.rows
        # the leader dies; the standby takes over (epoch 8) and continues from generation 41
        nxt = WeightTable(served.generation + 1, 1010.0, served.table.rows)
        await standby.save(nxt, epoch=8, now=1010.0)
        with pytest.raises(StaleEpoch):
            await leader.save(WeightTable(42, 1011.0, big.rows), epoch=7, now=1011.0)
        head = await leader.head()
        assert head is not None and (head.generation, head.epoch) == (42, 8)


async def test_saves_from_two_members_at_once_keep_the_newest_generation() -> None:
    async with kube() as (sim, api), another_client(sim) as other_api:
        a = ConfigMapPublishedStore(api, name="published")
        b = ConfigMapPublishedStore(other_api, name="published")
        results = await asyncio.gather(
            *(store.save(table(g), epoch=1, now=float(g)) for g, store in ((1, a), (2, b), (3, a))),
            return_exceptions=True,
        )
        head = await a.head()
        assert head is not None and head.generation == 3
        assert all(r is None or isinstance(r, StaleGeneration) for r in map(_error, results))


def _error(result: object) -> BaseException | None:
    return result if isinstance(result, BaseException) else None


async def test_file_saves_from_two_members_at_once_keep_the_newest_generation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "table-dns.json"
    a, b = FilePublishedStore(path), FilePublishedStore(path)
    results = await asyncio.gather(
        *(store.save(table(g), epoch=1, now=float(g)) for g, store in ((1, a), (2, b), (3, a))),
        return_exceptions=True,
    )
    head = await a.head()
    assert head is not None and head.generation == 3
    assert all(r is None or isinstance(r, StaleGeneration) for r in map(_error, results))


def test_a_leader_paused_mid_save_neither_stalls_its_successor_nor_lands_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old leader (epoch 1) is paused between reading the newest table and linking
    its own; meanwhile its successor (epoch 2) saves four tables and prunes. When the old
    one wakes, its late file is found behind epoch 2's, withdrawn, and the save refused."""
    path = tmp_path / "table-dns.json"
    old = FilePublishedStore(path)
    asyncio.run(old.save(table(5), epoch=1, now=5.0))
    real_link = os.link

    def paused_link(src: str, dst: str) -> None:
        monkeypatch.setattr(os, "link", real_link)  # the successor's writes link for real
        successor = FilePublishedStore(path)
        for g in range(6, 10):
            asyncio.run(successor.save(table(g), epoch=2, now=float(g)))
        real_link(src, dst)

    monkeypatch.setattr(os, "link", paused_link)
    with pytest.raises(StaleEpoch):
        asyncio.run(old.save(table(6, other_rows(6)), epoch=1, now=6.0))
    loaded = asyncio.run(FilePublishedStore(path).load())
    assert loaded is not None and (loaded.epoch, loaded.generation) == (2, 9)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"table-dns.json.{v:010d}" for v in (3, 4, 5)
    ]


CORRUPT = {
    "garbage": lambda good: b"\x00\xff garbage \x9c" * 40,
    "cut short": lambda good: good[: len(good) // 2],
    "not a table": lambda good: b'{"format": 1}\n[1, 2, 3]',
    "a table that is not one": lambda good: _rehead(good, b'{"rows": "no"}'),
}


def _rehead(good: bytes, body: bytes) -> bytes:
    """A header that matches `body` (size and SHA-256), over JSON that is no table."""
    head = json.loads(good.partition(b"\n")[0])
    head.update(sha256=hashlib.sha256(body).hexdigest(), size=len(body))
    return json.dumps(head).encode() + b"\n" + body


@pytest.mark.parametrize("kind", sorted(CORRUPT))
async def test_a_corrupt_newest_table_is_skipped_and_named(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "table-dns.json"
    store = FilePublishedStore(path)
    for generation in (1, 2, 3):
        await store.save(table(generation), epoch=1, now=float(generation))
    newest = path.with_name("table-dns.json.0000000003")
    newest.write_bytes(CORRUPT[kind](newest.read_bytes()))
    restarted = FilePublishedStore(path)
    with capture_logs() as logs:
        loaded = await restarted.load()
        head = await restarted.head()
        assert await restarted.load() == loaded  # reported once, not on every read
    assert loaded is not None and loaded.generation == 2 and loaded.table.rows == SMALL.rows
    if kind != "a table that is not one":  # its header is sound: head() reads only that
        assert head is not None and head.generation == 2
    (event,) = [e for e in logs if e["event"] == "published.skipped"]
    assert event["log_level"] == "warning"
    assert event["using"] == str(path.with_name("table-dns.json.0000000002"))
    (skipped,) = event["skipped"]
    assert skipped["file"] == str(newest) and skipped["why"]
    # the leader continues above the bad version; fencing reads the valid one
    with pytest.raises(StaleGeneration):
        await restarted.save(table(1), epoch=1, now=4.0)
    await restarted.save(table(3), epoch=1, now=4.0)  # the leader's next after 2
    again = await FilePublishedStore(path).load()
    assert again is not None and again.generation == 3 and again.head.published_at == 4.0
    assert path.with_name("table-dns.json.0000000004").exists()


async def test_with_every_table_corrupt_the_store_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "table-dns.json"
    for n in (1, 2):
        path.with_name(f"table-dns.json.000000000{n}").write_bytes(b"{")
    store = FilePublishedStore(path)
    assert await store.load() is None and await store.head() is None
    await store.save(table(1), epoch=1, now=1.0)
    loaded = await store.load()
    assert loaded is not None and loaded.generation == 1
    assert path.with_name("table-dns.json.0000000003").exists()


async def test_a_leader_s_next_save_does_not_parse_the_table_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import intent.published as published

    parsed: list[int] = []
    whole = published.table_of

    def counting(head: published.PublishedHead, body: bytes) -> WeightTable:
        parsed.append(head.generation)
        return whole(head, body)

    monkeypatch.setattr(published, "table_of", counting)
    path = tmp_path / "table-dns.json"
    store = FilePublishedStore(path)
    for generation in (1, 2, 3, 4):
        await store.save(table(generation), epoch=1, now=float(generation))
    assert parsed == []  # each save checks the version it wrote last by SHA-256 only
    restarted = FilePublishedStore(path)
    await restarted.save(table(5), epoch=1, now=5.0)
    await restarted.save(table(6), epoch=1, now=6.0)
    assert parsed == [4]  # a version it did not write is read whole, once
    path.with_name("table-dns.json.0000000006").write_bytes(b"{")  # and damage is noticed
    with pytest.raises(StaleGeneration):
        await restarted.save(table(4), epoch=1, now=7.0)  # 5 is the newest sound one
    await restarted.save(table(6, other_rows(6)), epoch=1, now=7.0)
