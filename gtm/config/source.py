"""Read a YAML file and remember the line of every node, for errors people can act on.

One pass over the parser's events (libyaml's, through PyYAML's C parser,
where it is installed) builds the data and the line of every path together.
Whatever the text holds, reading it ends in a `Source` or a `ConfigError`
naming the file and line — never another exception:

- an alias of its own anchor (`x: &a [*a]`) and nesting deeper than
  `MAX_DEPTH` are refused;
- aliases may not expand to more than `MAX_ALIAS_NODES` nodes (or as many as
  the file holds itself, if more): an alias bomb is refused at the alias that
  crosses the bound;
- a key given twice in one mapping, a string holding a control character or
  a lone surrogate, a non-scalar key and a tag other than YAML's own scalars
  are problems of the file, each with its line and path.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gtm.config.errors import ConfigError, FieldPath, Problem
from policies import collector_paused

MAX_DEPTH = 64  # nested mappings and sequences; an estate config needs about eight
MAX_ALIAS_NODES = 1_000_000  # nodes reached through aliases, at least

try:
    _Parser: Any = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _Parser = yaml.SafeLoader

_TAG = "tag:yaml.org,2002:"
_SCALARS = {f"{_TAG}{t}" for t in ("null", "bool", "int", "float", "str", "timestamp", "binary")}
_MERGE = f"{_TAG}merge"
_STR = f"{_TAG}str"
_CACHE = 4096  # plain scalars remembered with their value ("443", "http", "5s", …)


@dataclass(frozen=True)
class Source:
    """A parsed YAML document and the line (1-based) where each node starts.

    `lines` maps each mapping and list of `data`, by `id`, to the line of each
    of its keys or items in order (a path tuple per node would cost more
    memory than the data); `start` is the line of the document's top node.
    """

    file: str
    data: Any
    lines: dict[int, list[int]]
    problems: tuple[Problem, ...] = field(default=(), repr=False)
    start: int | None = None
    # values dropped while building (a duplicate key's), kept so no id in `lines` is reused
    dropped: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    def line(self, path: FieldPath) -> int | None:
        """The line of `path`, or of its nearest ancestor that exists."""
        found, node = self.start, self.data
        for part in path:
            marks = self.lines.get(id(node))
            if marks is None:
                break
            if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                found, node = marks[part], node[part]
            elif isinstance(node, dict) and part in node:
                found, node = marks[list(node).index(part)], node[part]
            else:
                break
        return found

    def problem(self, path: FieldPath, message: str) -> Problem:
        return Problem(self.file, self.line(path), path, message)


def read(path: str | Path, *, lenient: bool = False) -> Source:
    """The file's document; `ConfigError` if it cannot be read or has problems.

    With `lenient`, problems that leave usable data (a duplicate key, a
    control character) are kept in `Source.problems` for the caller to report
    with its own; the text is still refused when it cannot be read at all.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([Problem(name, None, (), f"cannot read: {e.strerror or e}")]) from e
    except UnicodeDecodeError as e:
        raise ConfigError([Problem(name, None, (), f"not UTF-8 text (byte {e.start})")]) from e
    return parse(text, name, lenient=lenient)


def parse(text: str, name: str = "<config>", *, lenient: bool = False) -> Source:
    """`text` as a `Source` (see `read`)."""
    builder = _Builder(name)
    try:
        # a million new containers, none in a cycle: no collection can free any
        with collector_paused():
            parser = _Parser(text)
            try:
                builder.run(parser)
            finally:
                parser.dispose()
    except UnicodeError as e:
        raise ConfigError([Problem(name, None, (), f"not valid text: {e.reason}")]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = getattr(e, "problem", None) or str(e)
        raise ConfigError([Problem(name, line, (), f"not valid YAML: {what}")]) from None
    src = Source(
        name,
        {} if builder.data is None else builder.data,
        builder.lines,
        tuple(builder.problems),
        builder.start,
        tuple(builder.dropped),
    )
    if src.problems and not lenient:
        raise ConfigError(src.problems)
    return src


@dataclass(slots=True)
class _Open:
    """A mapping or sequence being built."""

    path: FieldPath
    value: dict[Any, Any] | list[Any]
    anchor: str | None
    marks: list[int] = field(default_factory=list)  # line of each key or item
    nodes: int = 1  # nodes below and including this one, aliases expanded
    key: Any = None  # a mapping's pending key (`_NO_KEY` while the next scalar is a key)
    key_line: int = 0
    merges: list[tuple[int, dict[Any, Any]]] = field(default_factory=list)


_NO_KEY = object()
_MERGE_KEY = object()


class _Builder:
    """Events in, data and lines out: a composer and a constructor in one."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.data: Any = None
        self.start: int | None = None
        self.lines: dict[int, list[int]] = {}
        self.problems: list[Problem] = []
        self.dropped: list[Any] = []
        self.stack: list[_Open] = []
        self.anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, nodes)
        self.own = 0  # nodes written in the file
        self.aliased = 0  # nodes reached through aliases
        self.documents = 0
        self.plain: dict[str, Any] = {}  # plain scalar -> its value, for the common ones
        self.resolver = yaml.resolver.Resolver()
        self.constructor = yaml.constructor.SafeConstructor()

    def run(self, parser: Any) -> None:
        scalar, alias = yaml.ScalarEvent, yaml.AliasEvent
        starts = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
        ends = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
        while True:
            event = parser.get_event()
            kind = type(event)
            if kind is scalar:
                self._scalar(event)
            elif kind in ends:
                self._end()
            elif kind in starts:
                self._start(event)
            elif kind is alias:
                self._alias(event)
            elif kind is yaml.DocumentStartEvent:
                self.documents += 1
                if self.documents > 1:
                    line = event.start_mark.line + 1
                    self._fatal(line, "not valid YAML: expected a single document, found another")
            elif kind is yaml.StreamEndEvent:
                return

    def _fatal(self, line: int, message: str, path: FieldPath = ()) -> None:
        raise ConfigError([Problem(self.name, line, path, message)])

    def _path(self) -> FieldPath | None:
        """The path of the node that starts now, or None when it is a mapping's key."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if type(top.value) is list:
            return (*top.path, len(top.value))
        if top.key is _NO_KEY:
            return None
        return top.path if top.key is _MERGE_KEY else (*top.path, top.key)

    def _scalar(self, event: yaml.ScalarEvent) -> None:
        line = event.start_mark.line + 1
        self.own += 1
        top = self.stack[-1] if self.stack else None
        if top is not None and top.key is _NO_KEY and type(top.value) is dict:
            self._key(self._construct(event, line, top.path, True), event, line)
            return
        path = self._path()
        assert path is not None
        value = self._construct(event, line, path, False)
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, 1)
        self._place(value, 1, line)

    def _start(self, event: yaml.CollectionStartEvent) -> None:
        line = event.start_mark.line + 1
        path = self._path()
        if path is None:
            where = self.stack[-1].path
            self._fatal(line, "a key must be a plain value, not a mapping or a list", where)
        if len(self.stack) >= MAX_DEPTH:
            self._fatal(line, f"nested deeper than {MAX_DEPTH} levels", path[:2])
        kind = "map" if type(event) is yaml.MappingStartEvent else "seq"
        if event.tag not in (None, "!", f"{_TAG}{kind}"):
            self.problems.append(Problem(self.name, line, path, f"unsupported tag {event.tag}"))
        self.own += 1
        if self.stack:
            self._mark(line)
        else:
            self.start = line
        value: dict[Any, Any] | list[Any] = {} if kind == "map" else []
        self.stack.append(_Open(path, value, event.anchor, key=_NO_KEY))

    def _end(self) -> None:
        done = self.stack.pop()
        if type(done.value) is dict:
            for line, merged in done.merges:  # keys of the mapping win, then earlier merges
                for k, v in merged.items():
                    if k not in done.value:
                        done.value[k] = v
                        done.marks.append(line)
        self.lines[id(done.value)] = done.marks
        if done.anchor is not None:
            self.anchors[done.anchor] = (done.value, done.nodes)
        if not self.stack:
            self.data = done.value
            return
        self._attach(done.value, done.nodes)

    def _alias(self, event: yaml.AliasEvent) -> None:
        line = event.start_mark.line + 1
        path = self._path()
        if path is None:
            self._fatal(line, f"an alias (*{event.anchor}) cannot be a key", self.stack[-1].path)
        if any(o.anchor == event.anchor for o in self.stack):
            self._fatal(line, f"alias *{event.anchor} refers to the node that holds it", path)
        if event.anchor not in self.anchors:
            self._fatal(line, f"alias *{event.anchor} has no anchor before it", path)
        value, nodes = self.anchors[event.anchor]
        self.aliased += nodes
        bound = max(MAX_ALIAS_NODES, self.own)
        if self.aliased > bound:
            self._fatal(line, f"aliases expand to more than {bound:,} nodes (an alias bomb?)", path)
        self._place(value, nodes, line)

    def _mark(self, line: int) -> None:
        """Note the line of a list's next item (a mapping's keys are noted with the key)."""
        top = self.stack[-1]
        if type(top.value) is list:
            top.marks.append(line)

    def _place(self, value: Any, nodes: int, line: int) -> None:
        if not self.stack:
            self.data, self.start = value, line
        else:
            self._mark(line)
            self._attach(value, nodes)

    def _attach(self, value: Any, nodes: int) -> None:
        top = self.stack[-1]
        top.nodes += nodes
        if type(top.value) is list:
            top.value.append(value)
            return
        if top.key is _MERGE_KEY:
            merged = value if isinstance(value, list) else [value]
            if all(isinstance(m, dict) for m in merged):
                top.merges.extend((top.key_line, m) for m in merged)
            else:
                message = "<< must merge a mapping or a list of mappings"
                self.problems.append(Problem(self.name, top.key_line, top.path, message))
        elif top.key in top.value:  # a duplicate key: reported, the first value stays
            self.dropped.append(value)
        else:
            top.value[top.key] = value
            top.marks.append(top.key_line)
        top.key = _NO_KEY

    def _key(self, key: Any, event: yaml.ScalarEvent, line: int) -> None:
        top = self.stack[-1]
        top.key_line = line
        if key is _MERGE_KEY:
            top.key = _MERGE_KEY
            return
        if type(key) is str:
            key = sys.intern(key)
        elif not isinstance(key, int | bool | float | None):
            key = event.value
        if key in top.value:
            first = top.marks[list(top.value).index(key)]
            message = f"duplicate key {_short(str(key))} (first at line {first})"
            self.problems.append(Problem(self.name, line, (*top.path, key), message))
        top.key = key

    def _construct(self, event: yaml.ScalarEvent, line: int, path: FieldPath, is_key: bool) -> Any:
        text = event.value
        tag = event.tag
        plain = tag is None and event.implicit[0]
        if plain:
            value = self.plain.get(text, _NO_KEY)
            if value is not _NO_KEY:
                return value
        if _BAD_CHARACTER.search(text) is not None:
            bad = _BAD_CHARACTER.search(text)
            assert bad is not None
            self.problems.append(Problem(self.name, line, path, _bad_character(bad.group())))
        if tag is None or tag == "!":
            tag = self.resolver.resolve(yaml.ScalarNode, text, (plain, False))
        if tag == _STR:
            value = text
        elif tag == _MERGE:
            return _MERGE_KEY if is_key else text
        elif tag not in _SCALARS:
            self.problems.append(Problem(self.name, line, path, f"unsupported tag {tag}"))
            return text
        else:
            node = yaml.ScalarNode(tag, text, event.start_mark, event.end_mark)
            try:
                value = self.constructor.yaml_constructors[tag](self.constructor, node)
            except (yaml.YAMLError, ValueError, OverflowError, LookupError, AttributeError) as e:
                # Python refuses an int of more than 4,300 digits (sys.get_int_max_str_digits);
                # PyYAML's constructors fail on empty explicit scalars (`!!int ""`: IndexError,
                # `!!bool ""`: KeyError, `!!timestamp ""`: AttributeError)
                if len(text) > 100:
                    why = f"a number of {len(text):,} characters"
                elif isinstance(e, yaml.YAMLError | ValueError | OverflowError):
                    why = str(e)
                else:
                    why = f"not a valid {tag.rsplit(':', 1)[-1]}"
                self.problems.append(Problem(self.name, line, path, f"{_short(text)}: {why}"))
                return text
        if (
            plain
            and len(self.plain) < _CACHE
            and isinstance(value, str | int | float | bool | None)
        ):
            self.plain[text] = value
        return value


# C0 and C1 controls but tab and newline, DEL, and UTF-16 surrogates (never text)
_BAD_CHARACTER = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _bad_character(ch: str) -> str:
    if ch >= "\ud800":
        return f"a lone surrogate U+{ord(ch):04X} in the text"
    name = unicodedata.name(ch, "")
    return f"a control character U+{ord(ch):04X}{f' ({name})' if name else ''} in the text"


def _short(text: str) -> str:
    return ascii(text if len(text) <= 40 else text[:37] + "...")
