"""schemathesis against a real member, once with a viewer's token and once with an
operator's: no answer is a 5xx, and every answer (status, content type, body) is one
`GET /v1/openapi.json` describes.

The member is the real `MemberRuntime` over a simulated cluster (`api_members`). With
the operator's token the writes are real: generated bodies exit, drain and roll out
regions of the test estate (dry runs too, and every example of the document is one),
end overrides schemathesis saw ids of, and are refused by guardrails — the member must
answer all of it as documented and stay ready.

Examples are bounded (`MAX_EXAMPLES` per operation and phase) and the seed fixed, so
a run asks the same requests each time; `SCHEMATHESIS_SEED=random` (or a number)
asks others. Each run takes about 10 s on two cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from api_members import OPERATOR, VIEWER, Members

from gtm.api import ROUTES

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
MAX_EXAMPLES = 15
SEED = os.environ.get("SCHEMATHESIS_SEED", "1")
TIMEOUT = 120.0  # seconds for a whole run; about 10 are needed


def schemathesis(url: str, token: str, work: Path) -> subprocess.CompletedProcess[str]:
    args = [
        *("run", f"{url}/v1/openapi.json", "--url", url),
        *("--header", f"Authorization: Bearer {token}"),
        *("--checks", ",".join(CHECKS)),
        *("--max-examples", str(MAX_EXAMPLES)),
        *("--workers", "1", "--request-timeout", "10", "--output-truncate", "false"),
        *("--report", "junit", "--report-junit-path", str(work / "junit.xml")),
    ]
    if SEED != "random":
        args += ["--seed", SEED]
    return subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", *args],
        cwd=work,  # its .hypothesis database and reports stay in the test's directory
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "120"},
    )


@pytest.mark.parametrize("token", [VIEWER, OPERATOR], ids=["viewer", "operator"])
def test_no_5xx_and_every_answer_as_documented(leader: Members, tmp_path: Path, token: str) -> None:
    run = schemathesis(leader.url("dc1-a"), token, tmp_path)
    assert run.returncode == 0, f"schemathesis found problems:\n{run.stdout}\n{run.stderr}"
    cases = {str(case.get("name")) for case in ET.parse(tmp_path / "junit.xml").iter("testcase")}
    # every route; schemathesis leaves out the document it was given (test_api_openapi.py
    # asks for that one)
    assert {c for c in cases if " /" in c} == {
        f"{m} {p}" for m, p, _, _ in ROUTES if p != "/v1/openapi.json"
    }
    assert leader.members["dc1-a"].ready()
    if token == OPERATOR:  # the writes reached the member
        assert any(e.who == "alice" for e in leader.history())
