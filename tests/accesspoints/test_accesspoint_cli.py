"""`gtm accesspoint render` and `gtm validate` on AccessPoint files, as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "accesspoints"


def gtm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gtm", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_the_examples_validate() -> None:
    r = gtm("validate", *sorted(str(p) for p in EXAMPLES.glob("*.yaml")))
    assert r.returncode == 0, r.stderr
    assert "two-tier.yaml: ok (2 AccessPoint(s))" in r.stdout
    assert "three-tier.yaml: ok (3 AccessPoint(s))" in r.stdout


def test_render_prints_kubectl_ready_objects_for_one_cluster() -> None:
    r = gtm(
        "accesspoint", "render", str(EXAMPLES / "two-tier.yaml"), "--cluster", "dc2",
        "--vips", str(EXAMPLES / "discovered" / "vips.yaml"), "-c", "examples/estate.yaml",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    docs = list(yaml.safe_load_all(r.stdout))
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert ("Service", "pay-app") in kinds and ("Gateway", "pay-gw") in kinds
    wles = {d["spec"]["address"]: d["spec"]["weight"] for d in docs if d["kind"] == "WorkloadEntry"}
    assert wles == {"127.0.11.1": 1, "127.0.12.1": 98, "127.0.13.1": 1}  # as dc2's clients see it
    assert "# pay/pay-gw in dc2: revision" in r.stderr


def test_overrides_apply_only_in_their_cluster() -> None:
    def gateway_hosts(cluster: str) -> list[str]:
        r = gtm("accesspoint", "render", str(EXAMPLES / "overrides.yaml"), "--cluster", cluster,
                "-c", "examples/estate.yaml")  # fmt: skip
        assert r.returncode == 0, r.stderr
        (gw,) = [d for d in yaml.safe_load_all(r.stdout) if d["kind"] == "Gateway"]
        return gw["spec"]["servers"][0]["hosts"]

    assert gateway_hosts("dc2") == ["search-dc2.example.com"]
    assert gateway_hosts("dc1") == ["search.example.com"]


def test_bad_files_name_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: gtm.io/v1alpha1\nkind: AccessPoint\nmetadata: {name: x}\n"
        "spec:\n  scope: {clusters: [dc1]}\n"
        "  overrides:\n    - clusters: [dc9]\n      mergePatch: {}\n"
    )
    r = gtm("validate", str(bad))
    assert r.returncode == 2
    assert f"{bad}:7 spec.overrides[0].clusters[0]: 'dc9' is not in spec.scope" in r.stderr
    r = gtm("accesspoint", "render", str(bad), "--cluster", "dc1", "-c", "examples/estate.yaml")
    assert r.returncode == 2 and "'dc9' is not in spec.scope" in r.stderr
    r = gtm("accesspoint", "render", str(EXAMPLES / "one-tier.yaml"), "--cluster", "dc9",
            "-c", "examples/estate.yaml")  # fmt: skip
    assert r.returncode == 2 and "--cluster dc9: not a cluster" in r.stderr
