"""Config problems, reported all at once, each naming file, line, field and value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FieldPath = tuple[str | int, ...]


def dotted(path: FieldPath) -> str:
    """('services', 3, 'vips', 'dc2', 0, 'port') -> 'services[3].vips.dc2[0].port'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top)"


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None
    path: FieldPath
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {dotted(self.path)}: {self.message}"


class ConfigError(Exception):
    """A config file that cannot be used; `problems` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.line or 0, dotted(p.path))))
        super().__init__("\n".join(str(p) for p in self.problems))
