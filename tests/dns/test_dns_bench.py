"""`gtm bench dns` runs end to end (briefly): dnsperf against `gtm dns serve`."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import dns.edns
import dns.message
import pytest
from click.testing import CliRunner

from chaos.bench.dns import NAME, command, query_file


def test_query_file_holds_the_mix_in_dnsperf_binary_format(tmp_path: Path) -> None:
    path = tmp_path / "q.bin"
    query_file(path, ["plain", "edns", "ecs:10.2.0.0/24"])
    data = path.read_bytes()
    messages = []
    while data:
        (n,) = struct.unpack("!H", data[:2])
        messages.append(dns.message.from_wire(data[2 : 2 + n]))
        data = data[2 + n :]
    assert [m.question[0].name.to_text() for m in messages] == [NAME + "."] * 3
    assert [m.edns for m in messages] == [-1, 0, 0]
    [ecs] = messages[2].options
    assert isinstance(ecs, dns.edns.ECSOption) and (ecs.address, ecs.srclen) == ("10.2.0.0", 24)


@pytest.mark.skipif(shutil.which("dnsperf") is None, reason="dnsperf is not installed")
def test_bench_runs_against_gtm(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        command, ["-d", "1", "--no-gdnsd", "--no-pdns", "--json", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    [gtm] = doc["results"]
    assert gtm["server"] == "gtm" and gtm["qps"] > 1000 and gtm["lost"] < 0.01
    assert 0.9 < gtm["local_share"] <= 1.0
