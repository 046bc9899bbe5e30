"""JSON text of large documents, encoded and decoded a member at a time.

`json.dumps` and `json.loads` run in C and hold the GIL from the first byte
to the last: a weight table of 4,000 services (3.7 MB) held it 0.1 s to
encode and 0.2 s to decode, in a worker thread, and the member's event loop
(its API, lease renewals, peer pulls) stood still meanwhile. Here the C
codec does one member of the large objects at a time, and Python code runs
between members, so a thread doing it lets the loop run every few
milliseconds (the interpreter's switch interval).

The text is the same as `json.dumps(value, separators=(",", ":"))` writes;
`loads` reads any JSON text `json.loads` reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

SEPARATORS = (",", ":")
_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def dumps(value: object, *, default: Callable[[Any], Any] | None = None, depth: int = 2) -> str:
    """`json.dumps(value, separators=(",", ":"), default=default)`, in pieces.

    Objects (dicts with string keys) of the top `depth` levels are written a
    member at a time; what is below them, each in one call of the C encoder.
    """
    out: list[str] = []
    _dump(value, default, depth, out)
    return "".join(out)


def _dump(value: object, default: Callable[[Any], Any] | None, depth: int, out: list[str]) -> None:
    if depth > 0 and isinstance(value, dict) and all(type(k) is str for k in value):
        out.append("{")
        first = True
        for key, member in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(json.dumps(key))
            out.append(":")
            _dump(member, default, depth - 1, out)
        out.append("}")
        return
    out.append(json.dumps(value, separators=SEPARATORS, default=default))


def loads(text: str | bytes, *, depth: int = 2) -> Any:
    """`json.loads(text)`, the members of the top `depth` levels of objects one at a time.

    Raises `json.JSONDecodeError` (a ValueError) as `json.loads` would.
    """
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")
    value, end = _load(text, _SPACE.match(text, 0).end(), depth)  # type: ignore[union-attr]
    end = _SPACE.match(text, end).end()  # type: ignore[union-attr]
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def _load(text: str, pos: int, depth: int) -> tuple[Any, int]:
    if depth <= 0 or not text.startswith("{", pos):
        return _DECODER.raw_decode(text, pos)  # type: ignore[no-any-return]
    obj: dict[str, Any] = {}
    pos = _skip(text, pos + 1)
    if text.startswith("}", pos):
        return obj, pos + 1
    while True:
        if not text.startswith('"', pos):
            raise json.JSONDecodeError(
                "Expecting property name enclosed in double quotes", text, pos
            )
        key, pos = _DECODER.raw_decode(text, pos)
        pos = _skip(text, pos)
        if not text.startswith(":", pos):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
        obj[key], pos = _load(text, _skip(text, pos + 1), depth - 1)
        pos = _skip(text, pos)
        if text.startswith("}", pos):
            return obj, pos + 1
        if not text.startswith(",", pos):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        pos = _skip(text, pos + 1)


def _skip(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()  # type: ignore[union-attr]
