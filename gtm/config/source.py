"""Read a YAML file and remember the line of every node, for errors people can act on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import yaml

from gtm.config.errors import ConfigError, Path, Problem


@dataclass(frozen=True)
class Source:
    """A parsed YAML document and the line (1-based) where each path starts."""

    file: str
    data: Any
    lines: dict[Path, int]

    def line(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest ancestor that exists."""
        for n in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:n]))
            if line is not None:
                return line
        return None

    def problem(self, path: Path, message: str) -> Problem:
        return Problem(self.file, self.line(path), path, message)


def read(path: str | FsPath) -> Source:
    name = str(path)
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([Problem(name, None, (), f"cannot read: {e.strerror or e}")]) from e
    return parse(text, name)


def parse(text: str, name: str = "<config>") -> Source:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = getattr(e, "problem", None) or str(e)
        raise ConfigError([Problem(name, line, (), f"not valid YAML: {what}")]) from e
    lines: dict[Path, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return Source(name, data if data is not None else {}, lines)


def _walk(node: yaml.Node, path: Path, lines: dict[Path, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
            lines[(*path, k)] = key.start_mark.line + 1
            _walk(value, (*path, k), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _walk(item, (*path, i), lines)
