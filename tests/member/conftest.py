"""Running members for these tests come from `tests/api/api_members.py` (`Members`)."""

from __future__ import annotations

import sys
from pathlib import Path

_API = str(Path(__file__).resolve().parents[1] / "api")
if _API not in sys.path:
    sys.path.append(_API)  # `import api_members`, as the API tests do
