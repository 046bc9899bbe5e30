"""What the AccessPoint tests share: a free block of ports for a simulated estate, the real
`kubectl` against it, and TLS Secrets whose certificate ends when the test says."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chaos.estate import Clusters, Launcher, PortPlan
from chaos.estate.ports import BLOCK, Endpoint, in_use
from failover import WriteFence
from gtm.config import load
from gtm.service.accesspoint_apply import open_objects
from gtm.service.accesspoints import AccessPointController, AccessPointMetrics, HomeAccessPoints

KUBECTL = shutil.which("kubectl")
ESTATE = Path(__file__).resolve().parents[2] / "examples" / "estate.yaml"
REGIONS = ("dc1", "dc2", "dc3")


def free_base(low: int, high: int) -> int:
    """The first port of a free block of `BLOCK` ports in [low, high)."""
    for _ in range(200):
        base = random.randrange(low, high)
        if not in_use([Endpoint("probe", "127.0.0.1", p) for p in range(base, base + BLOCK)]):
            return base
    raise RuntimeError("no free block of ports")


async def kubectl(kubeconfig: Path, context: str, *args: str, json_out: bool = True) -> Any:
    """Run the real kubectl; its JSON output (`-o json`), or its text."""
    extra = ["-o", "json"] if json_out else []
    proc = await asyncio.create_subprocess_exec(
        KUBECTL or "kubectl", "--kubeconfig", str(kubeconfig), "--context", context, *args,
        *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out) if json_out else out.decode()


def certificate(tmp_path: Path, name: str, not_after: datetime) -> tuple[Path, Path]:
    """A self-signed certificate for `name`, valid until `not_after`, and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - timedelta(days=90))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    crt, pem = tmp_path / f"{name}-{not_after:%s}.crt", tmp_path / f"{name}-{not_after:%s}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return crt, pem


def estate_file(tmp_path: Path, kubeconfig: Path, **cluster: Any) -> Path:
    estate = yaml.safe_load(ESTATE.read_text())
    estate["kubernetes"] = {
        "clusters": [
            {
                "name": r,
                "region": r,
                "kubeconfig": str(kubeconfig),
                "context": r,
                "namespace": "pay",
                **cluster,
            }
            for r in REGIONS
        ]
    }
    estate["accesspoints"] = {"cluster": "dc1", "namespaces": ["pay"], "resync": 1}
    path = tmp_path / f"estate-{random.randrange(1 << 30)}.yaml"
    path.write_text(yaml.safe_dump(estate, sort_keys=False))
    return path


class Leaders:
    """A controller per region, as each region's leader runs it, with its own fence."""

    def __init__(self, config: Path, stack: AsyncExitStack) -> None:
        self.config = config
        self.stack = stack
        self.leading = {r: True for r in REGIONS}
        self.clock = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)

    async def open(
        self, region: str, config: Path | None = None, metrics: AccessPointMetrics | None = None
    ) -> AccessPointController:
        inventory = load(config or self.config)
        objects = await open_objects(inventory, self.stack)
        home = HomeAccessPoints(objects["dc1"].client, ["pay"])
        fence = WriteFence(1, lambda: self.leading[region])
        return AccessPointController(
            inventory, region, home, objects, fence, metrics=metrics, now=lambda: self.clock
        )


async def gtm(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gtm", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "COLUMNS": "200"}, cwd=ESTATE.parents[1],
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def example_clusters(tmp_path: Path, low: int, high: int) -> AsyncIterator[Path]:
    """The example estate's three simulated clusters (with their L4 controllers), on a free
    block of ports in [low, high); their kubeconfig."""
    async with Launcher() as launcher:
        clusters = Clusters(
            load(ESTATE), tmp_path, launcher, ports=PortPlan.from_base(free_base(low, high))
        )
        await clusters.start()
        try:
            yield clusters.kubeconfig
        finally:
            await clusters.stop()
