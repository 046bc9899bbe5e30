"""Token books from files and Secrets: every problem named, no token value ever shown."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from api_members import ESTATE, OPERATOR, PEER, TOKENS_YAML, VIEWER

from chaos.kubesim import KubeSim
from gtm.api import Grant, TokenBook, TokenFileError, read_token, read_token_secret
from gtm.config import loads
from kube import Client


def write(tmp_path: Path, text: str, name: str = "tokens.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(TokenFileError) as e:
        TokenBook.from_file(path)
    return [str(p) for p in e.value.problems]


def test_a_good_file_yaml_or_json(tmp_path: Path) -> None:
    book = TokenBook.from_file(write(tmp_path, TOKENS_YAML))
    assert book.names == ("alice", "grafana", "peer-dc2")
    assert book.lookup(OPERATOR) == Grant("alice", "operator")
    assert book.lookup(PEER) == Grant("peer-dc2", "peer")
    assert book.lookup(VIEWER) == Grant("grafana", "viewer")
    assert book.lookup(OPERATOR + "x") is None and book.lookup("") is None
    json_file = write(
        tmp_path,
        f'{{"tokens": [{{"name": "ci", "token": "{OPERATOR}", "role": "operator"}}]}}',
        "tokens.json",
    )
    assert TokenBook.from_file(json_file).lookup(OPERATOR) == Grant("ci", "operator")
    assert OPERATOR not in repr(book)


def test_operator_implies_viewer() -> None:
    assert Grant("a", "operator").allows("viewer") and Grant("a", "operator").allows("operator")
    assert Grant("b", "viewer").allows("viewer") and not Grant("b", "viewer").allows("operator")


def test_every_problem_with_file_line_and_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""tokens:
  - {{name: alice, token: {OPERATOR}, role: operator}}
  - {{name: bob, token: short, role: operator}}
  - {{name: carol, token: {VIEWER}, role: admin}}
  - {{name: alice, token: another-token-0123456789, role: viewer}}
  - {{name: dave, token: {OPERATOR}, role: viewer}}
  - {{name: erin, role: viewer, colour: blue}}
  - just-a-string
extra: 1
""",
    )
    got = problems(path)
    f = str(path)
    lines = "\n".join(got)
    for expected in (
        f"{f}:3 tokens[1].token: 'bob': token: must be at least 16 characters (it has 5)",
        f"{f}:4 tokens[2].role: 'carol': role 'admin' is not one of peer, viewer, operator",
        f"{f}:5 tokens[3]: 'alice': name used twice (first at tokens[0])",
        f"{f}:6 tokens[4].token: 'dave': same token as 'alice'",
        f"{f}:7 tokens[5]: token: missing",
        f"{f}:7 tokens[5].colour: unknown key",
        f"{f}:8 tokens[6]: expected a mapping {{name, token, role}}",
        f"{f}:9 extra: unknown key",
    ):
        assert expected in got, lines
    assert len(got) == 8
    for secret in (OPERATOR, VIEWER, "another-token-0123456789", "short"):
        assert f" {secret}" not in lines.replace("'bob'", "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tokens: [", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping with a 'tokens' list"),
        ("tokens: []\n", "no tokens: nobody could use the API"),
        ("tokens:\n  - {name: '', token: x, role: viewer}\n", "name: must be a non-empty string"),
        (
            "tokens:\n  - {name: a, token: 'has space 0123456789', role: viewer}\n",
            "printable ASCII without spaces",
        ),
    ],
    ids=["yaml", "shape", "empty", "no-name", "space"],
)
def test_one_problem_each(tmp_path: Path, text: str, message: str) -> None:
    (got,) = problems(write(tmp_path, text))
    assert got.startswith(str(tmp_path / "tokens.yaml")) and message in got


def test_missing_file_names_it(tmp_path: Path) -> None:
    (got,) = problems(tmp_path / "nope.yaml")
    assert got == f"{tmp_path / 'nope.yaml'} (top): cannot read: No such file or directory"


def test_secret_data() -> None:
    book = TokenBook.from_secret_data(
        {"alice": f"operator:{OPERATOR}", "grafana": f"viewer:{VIEWER}".encode()},
        "secret gtm-system/gtm-tokens",
    )
    assert book.lookup(VIEWER) == Grant("grafana", "viewer")
    with pytest.raises(TokenFileError) as e:
        TokenBook.from_secret_data(
            {"alice": OPERATOR, "bob": f"root:{VIEWER}"}, "secret gtm-system/gtm-tokens"
        )
    assert [str(p) for p in e.value.problems] == [
        "secret gtm-system/gtm-tokens alice: expected 'role:token'",
        "secret gtm-system/gtm-tokens bob.role: 'bob': role 'root' is not one of peer, viewer, operator",
    ]


def secret(name: str = "gtm-tokens") -> dict[str, Any]:
    data = {"alice": f"operator:{OPERATOR}", "grafana": f"viewer:{VIEWER}"}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "gtm-system"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


async def test_tokens_from_a_secret_through_kubernetes_asyncio(tmp_path: Path) -> None:
    async with KubeSim(host="127.0.0.1", port=0) as sim:
        sim.seed(secret())
        kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig", "dc1")
        inventory = loads(
            ESTATE
            + f"""
kubernetes:
  clusters:
    - {{name: c1, region: dc1, kubeconfig: "{kubeconfig}", context: dc1}}
api:
  tokens_secret: {{name: gtm-tokens, namespace: gtm-system}}
""",
            "estate.yaml",
        )
        book = await TokenBook.from_config(inventory.config.api, inventory, "dc1")
        assert book.source == "secret gtm-system/gtm-tokens"
        assert book.lookup(OPERATOR) == Grant("alice", "operator")
        with pytest.raises(
            TokenFileError, match="no cluster in region dc9 to read the Secret from"
        ):
            await TokenBook.from_config(inventory.config.api, inventory, "dc9")
        async with Client(sim.configuration()) as client:
            book = await read_token_secret(client, "gtm-tokens", "gtm-system")
        assert book.lookup(VIEWER) == Grant("grafana", "viewer")


async def test_tokens_from_a_file_or_none(tmp_path: Path) -> None:
    path = write(tmp_path, TOKENS_YAML)
    inventory = loads(ESTATE + f'api: {{tokens_file: "{path}"}}\n', "estate.yaml")
    book = await TokenBook.from_config(inventory.config.api, inventory)
    assert book.names == ("alice", "grafana", "peer-dc2")
    bare = loads(ESTATE, "estate.yaml")
    empty = await TokenBook.from_config(bare.config.api, bare)
    assert len(empty) == 0 and empty.lookup(OPERATOR) is None
    both = loads(
        ESTATE + f'api: {{tokens_file: "{path}", tokens_secret: {{name: x}}}}\n', "estate.yaml"
    )
    with pytest.raises(TokenFileError, match="set tokens_file or tokens_secret, not both"):
        await TokenBook.from_config(both.config.api, both)


def test_read_token(tmp_path: Path) -> None:
    assert read_token(write(tmp_path, f"  {OPERATOR}\n", "op.token")) == OPERATOR
    with pytest.raises(TokenFileError, match="must be at least 16"):
        read_token(write(tmp_path, "abc\n", "short.token"))
    with pytest.raises(TokenFileError, match="cannot read"):
        read_token(tmp_path / "none.token")
