"""The published table in a ConfigMap: the header in `data`, the table gzipped in `binaryData`.

A 4,000-service table is about 2 MB of JSON; it is very repetitive, and
gzip brings it well under the 1 MiB a ConfigMap may hold (the tests measure
it). The gzip is deterministic (no timestamp), so the same table always
encodes to the same bytes. Writes are compare-and-swap on resourceVersion
with the fencing rules of `published`; encoding and decoding run in a worker
thread so a large table does not stall the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import zlib
from collections.abc import Mapping
from dataclasses import replace

import structlog
from prometheus_client import CollectorRegistry

from intent.configmap_cas import ConfigMapCAS, ConfigMapData
from intent.errors import CorruptState
from intent.metrics import StoreMetrics
from intent.published import (
    Encoded,
    Published,
    PublishedHead,
    decode_table,
    must_write,
)
from kube import Client
from policies.table import WeightTable

log = structlog.get_logger(__name__)

HEAD_KEY = "published.json"
TABLE_KEY = "table.json.gz"
LABEL = "configmap/published"


def compress(body: bytes) -> str:
    """gzip (no timestamp) then base64: the `binaryData` value."""
    return base64.b64encode(gzip.compress(body, compresslevel=6, mtime=0)).decode("ascii")


def decompress(value: str) -> bytes:
    return gzip.decompress(base64.b64decode(value, validate=True))


class ConfigMapPublishedStore:
    def __init__(
        self,
        client: Client,
        *,
        name: str = "gtm-published",
        namespace: str = "gtm",
        metrics: StoreMetrics | None = None,
    ) -> None:
        self.metrics = metrics or StoreMetrics(CollectorRegistry())
        self._cas = ConfigMapCAS(
            client,
            name,
            namespace,
            store=LABEL,
            labels={"app.kubernetes.io/name": "gtm", "app.kubernetes.io/component": "published"},
            metrics=self.metrics,
        )

    async def head(self) -> PublishedHead | None:
        return self._head(await self._cas.read())

    async def load(self) -> Published | None:
        current = await self._cas.read()
        head = self._head(current)
        if head is None:
            return None
        return await asyncio.to_thread(self._decode, head, current)

    async def save(
        self,
        table: WeightTable,
        epoch: int,
        now: float,
        seen: Mapping[str, float] | None = None,
    ) -> Published:
        encoded, packed = await asyncio.to_thread(_encode, table, epoch, now, seen)
        kept: list[PublishedHead] = []

        def change(current: ConfigMapData) -> ConfigMapData | None:
            stored = self._head(current)
            if not must_write(self._cas.where, stored, encoded.head):
                assert stored is not None
                kept[:] = [stored]
                return None
            kept.clear()
            return replace(
                current,
                data={**current.data, HEAD_KEY: encoded.head.to_json()},
                binary_data={**current.binary_data, TABLE_KEY: packed},
            )

        try:
            swap = await self._cas.swap(change)
        except Exception as error:
            self.metrics.failed(LABEL, error)
            raise
        if not swap.wrote:
            self.metrics.wrote(LABEL, "unchanged")
            return Published(table, kept[0] if kept else encoded.head)
        self.metrics.wrote(LABEL, "written")
        log.info(
            "published.saved",
            store=LABEL,
            generation=table.generation,
            epoch=epoch,
            json_bytes=encoded.head.size,
            stored_bytes=len(packed),
        )
        return Published(table, encoded.head)

    def _head(self, current: ConfigMapData) -> PublishedHead | None:
        raw = current.data.get(HEAD_KEY)
        if raw is None:
            return None
        try:
            return PublishedHead.from_json(raw)
        except ValueError as e:
            raise CorruptState(f"{self._cas.where}: data[{HEAD_KEY}] unreadable: {e}") from e

    def _decode(self, head: PublishedHead, current: ConfigMapData) -> Published:
        packed = current.binary_data.get(TABLE_KEY)
        if packed is None:
            raise CorruptState(f"{self._cas.where}: a header but no binaryData[{TABLE_KEY}]")
        try:
            body = decompress(packed)
        except (binascii.Error, OSError, EOFError, zlib.error) as e:
            raise CorruptState(f"{self._cas.where}: binaryData[{TABLE_KEY}]: {e}") from e
        return decode_table(self._cas.where, head, body)


def _encode(
    table: WeightTable, epoch: int, now: float, seen: Mapping[str, float] | None
) -> tuple[Encoded, str]:
    encoded = Encoded.of(table, epoch, now, seen)
    return encoded, compress(encoded.body)
