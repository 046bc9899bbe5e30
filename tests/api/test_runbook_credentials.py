"""Where the runbook finds its server and token: flags, then environment, then the demo's file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trustme
from api_members import OPERATOR, VIEWER, Gtm, Members

from gtm.client.http import DEFAULT_SERVER, CliError, resolve_connection
from gtm.config.model import TlsConfig


def demo_dir(tmp_path: Path, server: str, token_file: str) -> Path:
    cwd = tmp_path / "demo-cwd"
    (cwd / ".gtm-demo").mkdir(parents=True)
    (cwd / ".gtm-demo" / "cli.yaml").write_text(f"server: {server}\ntoken_file: {token_file}\n")
    return cwd


def test_order_flags_then_env_then_demo_file(tmp_path: Path, token_files: dict[str, Path]) -> None:
    cwd = demo_dir(tmp_path, "http://demo:1", str(token_files["viewer"]))
    env = {
        "GTM_SERVER": "http://env:2",
        "GTM_TOKEN": "env-token-0123456789abcdef",
        "GTM_TOKEN_FILE": str(token_files["viewer"]),
    }
    c = resolve_connection("http://flag:3/", str(token_files["operator"]), env=env, cwd=cwd)
    assert (c.server, c.token, c.source) == ("http://flag:3", OPERATOR, "--server")
    c = resolve_connection(env=env, cwd=cwd)
    assert (c.server, c.token, c.source) == (
        "http://env:2",
        "env-token-0123456789abcdef",
        "GTM_SERVER",
    )
    c = resolve_connection(env={"GTM_TOKEN_FILE": str(token_files["operator"])}, cwd=cwd)
    assert (c.server, c.token) == ("http://demo:1", OPERATOR)
    c = resolve_connection(env={}, cwd=cwd)
    assert (c.server, c.token, c.source) == ("http://demo:1", VIEWER, ".gtm-demo/cli.yaml")
    c = resolve_connection(env={}, cwd=tmp_path)
    assert (c.server, c.token, c.source) == (DEFAULT_SERVER, None, "default")
    with pytest.raises(CliError) as e:
        c.require_token()
    # every place credentials are looked for is named, and where the server came from
    for place in (
        "--token-file",
        "GTM_TOKEN",
        "GTM_TOKEN_FILE",
        "GTM_SERVER",
        "(server from default)",
    ):
        assert place in str(e.value)
    assert f"{tmp_path / '.gtm-demo' / 'cli.yaml'} (not found)" in str(e.value)


def test_demo_file_paths_are_relative_to_the_current_directory(
    tmp_path: Path, token_files: dict[str, Path]
) -> None:
    cwd = demo_dir(tmp_path, "http://demo:1", ".gtm-demo/op.token")
    (cwd / ".gtm-demo" / "op.token").write_text(OPERATOR)
    assert resolve_connection(env={}, cwd=cwd).token == OPERATOR


def test_bad_settings_are_clear(tmp_path: Path) -> None:
    with pytest.raises(CliError, match=r"--token-file: .*nope\.token \(top\): cannot read"):
        resolve_connection(token_file=str(tmp_path / "nope.token"), env={}, cwd=tmp_path)
    with pytest.raises(CliError, match=r"GTM_SERVER: 'example\.com:80' is not an http"):
        resolve_connection(env={"GTM_SERVER": "example.com:80"}, cwd=tmp_path)
    (tmp_path / ".gtm-demo").mkdir()
    (tmp_path / ".gtm-demo" / "cli.yaml").write_text("- a list\n")
    with pytest.raises(CliError, match="expected a mapping like"):
        resolve_connection(env={}, cwd=tmp_path)


def test_the_cli_reads_env_and_demo_file(
    gtm: Gtm, pair: Members, token_files: dict[str, Path], tmp_path: Path
) -> None:
    url = pair.url("dc1-a")
    r = gtm("history", "--json", env={"GTM_SERVER": url, "GTM_TOKEN": VIEWER})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
    cwd = demo_dir(tmp_path, url, str(token_files["operator"]))
    r = gtm("region", "exit", "dc2", "--reason", "from the demo file", cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert [o.who for o in pair.intent().overrides.values()] == ["alice"]
    # a flag beats the environment, which beats the demo file
    r = gtm(
        "history", "--json", "--server", url, cwd=cwd,
        env={"GTM_SERVER": "http://127.0.0.1:9", "GTM_TOKEN": VIEWER},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert [e["who"] for e in json.loads(r.stdout)] == ["alice"]
    r = gtm("history", cwd=cwd, env={"GTM_SERVER": "http://127.0.0.1:9"})
    assert r.returncode == 1 and "cannot reach http://127.0.0.1:9" in r.stderr
    r = gtm("status", "--server", url)
    assert r.returncode == 2 and "no token for" in r.stderr and "(server from --server)" in r.stderr
    r = gtm("status", "--server", url, env={"GTM_TOKEN": "wrong-token-0123456789abcdef"})
    assert r.returncode == 2 and "error: unknown token" in r.stderr


def test_the_cli_trusts_a_private_ca(gtm: Gtm, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = (tmp_path / n for n in ("api.crt", "api.key", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    with Members(tmp_path / "tls", tls=TlsConfig(cert=str(cert_file), key=str(key_file))) as m:
        url = m.url("dc1-a")
        assert url.startswith("https://")
        env = {"GTM_SERVER": url, "GTM_TOKEN": VIEWER}
        r = gtm("status", "--json", "--ca-file", str(ca_file), env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["status"]["identity"] == "dc1-a"
        r = gtm("status", env={**env, "GTM_CA_FILE": str(ca_file)})
        assert r.returncode == 0, r.stderr
        r = gtm("status", env=env)
        assert r.returncode == 1 and "certificate verify failed" in r.stderr
