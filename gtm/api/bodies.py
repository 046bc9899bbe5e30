"""Request bodies and query strings, validated with pydantic into the runbook's actions.

Bodies are strict: unknown fields are refused, booleans are JSON booleans,
durations are seconds or strings like "10m". `parse` reports every problem
of a body at once, each with its field path.

`json_body` reads only what is plainly JSON text: UTF-8 (no byte order mark,
no other encoding), each key once per object at any depth (a second `dry_run`
must not undo the first), nesting at most `MAX_DEPTH` deep, integers of at
most `MAX_DIGITS` digits (a longer one reaches the models as a `LongInteger`,
which every field refuses by name). Text fields hold no control character
and no lone surrogate; durations are finite, 0 or at least a second (ramp),
at least a second (expiry, window), and at most a year.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from aiohttp import web
from multidict import MultiMapping
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from gtm.api.errors import HttpProblem
from gtm.service.actions import Drain, Enter, Exit, Remove, Rollout
from gtm.what_if import parse_spec, what_if_overrides
from policies import Override
from probes import parse_duration

MAX_BODY = 1024 * 1024  # bytes; a bulk drain of thousands of services fits
MAX_DEPTH = 32  # nested objects and arrays; a body needs two
MAX_DIGITS = 40  # an integer literal longer than this is no value of any body
MIN_SECONDS = 1.0  # the shortest expiry, window or (non-zero) ramp

# C0 and C1 controls (tab and newline too: these are one-line values), DEL, and UTF-16
# surrogates (never text); they would reach terminals, logs and the audit as they are
_BAD_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _shown(text: str) -> str:
    """`text` quoted, escaped to ASCII and cut at 40 characters: safe in any answer or log."""
    return ascii(text if len(text) <= 40 else text[:37] + "...")


def _plain_text(value: str) -> str:
    found = _BAD_CHARACTER.search(value)
    if found is None:
        return value
    ch, at = found.group(), found.start()
    if ch >= "\ud800":
        raise ValueError(f"a lone surrogate U+{ord(ch):04X} at character {at}")
    raise ValueError(f"a control character U+{ord(ch):04X} at character {at}")


def _not_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


class LongInteger:
    """An integer literal of a body with more than `MAX_DIGITS` digits, kept unconverted.

    Python refuses to convert one of over 4,300 digits (ValueError) and no field
    takes one of 40: validators see this instead and refuse it with the field's name.
    """

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"a {self.digits}-digit integer"


def _seconds(value: object) -> float:
    """A duration (`parse_duration`: finite, not negative, at most a year)."""
    if isinstance(value, LongInteger):
        raise ValueError(f"{value!r} is not a number of seconds (at most a year)")
    return parse_duration(value)


def _at_least_a_second(seconds: float) -> float:
    if seconds < MIN_SECONDS:
        raise ValueError(f"{seconds:g} seconds is shorter than a second")
    return seconds


def _none_or_at_least_a_second(seconds: float) -> float:
    return seconds if seconds == 0 else _at_least_a_second(seconds)


# The same rules as the OpenAPI document states them (ECMA 262 patterns: no control
# character; and something besides spaces); the validators above are what decides.
_NO_CONTROL = {"pattern": r"^[^\x00-\x1f\x7f-\x9f]*$"}
_NOT_BLANK = {"pattern": r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"}

PlainText = Annotated[str, AfterValidator(_plain_text), Field(json_schema_extra=_NO_CONTROL)]
_Line = Annotated[str, AfterValidator(_plain_text), AfterValidator(_not_blank)]
Text = Annotated[_Line, Field(max_length=256, json_schema_extra=_NOT_BLANK)]
Reason = Annotated[_Line, Field(max_length=1000, json_schema_extra=_NOT_BLANK)]


def _duration(least: float) -> BeforeValidator:
    """Seconds, or text like "10m", "1m30s", "250ms" (`probes.parse_duration`)."""
    seconds = Annotated[float, Field(ge=least)]
    text = Annotated[str, Field(max_length=64, examples=["10m"])]
    return BeforeValidator(_seconds, json_schema_input_type=seconds | text)


# a ramp: 0 (at once) or at least a second; an expiry or a window: at least a second
Seconds = Annotated[float, _duration(0), AfterValidator(_none_or_at_least_a_second)]
Positive = Annotated[float, _duration(MIN_SECONDS), AfterValidator(_at_least_a_second)]
Services = Annotated[list[Text], Field(min_length=1, max_length=100_000)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _example(*examples: dict[str, Any]) -> ConfigDict:
    """Examples of a body in the API's OpenAPI document (schemathesis asks them first)."""
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class ExitBody(Body):
    """`POST /v1/region/exit`: take a region (or some of its services) out."""

    model_config = _example(
        {"region": "dc2", "reason": "network maintenance", "ticket": "CHG-1234", "dry_run": True},
        {
            "region": "dc2",
            "services": ["foo"],
            "reason": "canary",
            "expires_in": "2h",
            "dry_run": True,
        },
    )

    region: Text
    reason: Reason
    services: Services | None = None
    ticket: Text | None = None
    expires_in: Positive | None = None
    force: bool = False
    dry_run: bool = False

    def action(self) -> Exit:
        return Exit(
            region=self.region,
            reason=self.reason,
            services=None if self.services is None else frozenset(self.services),
            ticket=self.ticket,
            expires_in=self.expires_in,
            force=self.force,
        )


class EnterBody(Body):
    """`POST /v1/region/enter`: end a region's exits (and the named services' drains)."""

    model_config = _example(
        {"region": "dc2", "reason": "maintenance done", "ramp": "10m", "dry_run": True}
    )

    region: Text
    reason: Reason
    services: Services | None = None
    ramp: Seconds | None = None
    ticket: Text | None = None
    dry_run: bool = False

    def action(self) -> Enter:
        return Enter(
            region=self.region,
            reason=self.reason,
            services=None if self.services is None else frozenset(self.services),
            ramp=self.ramp,
            ticket=self.ticket,
        )


class DrainBody(Body):
    """`POST /v1/drain`: take some services of a region out."""

    model_config = _example(
        {"region": "dc2", "services": ["foo"], "reason": "bad deploy", "dry_run": True}
    )

    region: Text
    services: Services
    reason: Reason
    ticket: Text | None = None
    expires_in: Positive | None = None
    force: bool = False
    dry_run: bool = False

    def action(self) -> Drain:
        return Drain(
            region=self.region,
            services=frozenset(self.services),
            reason=self.reason,
            ticket=self.ticket,
            expires_in=self.expires_in,
            force=self.force,
        )


class RolloutBody(Body):
    """`POST /v1/rollout`: hold a region's cells within the rollout bounds for `window`."""

    model_config = _example(
        {"region": "dc2", "window": "30m", "reason": "deploy 1.2.3", "dry_run": True}
    )

    region: Text
    window: Positive
    reason: Reason
    services: Services | None = None
    ticket: Text | None = None
    dry_run: bool = False

    def action(self) -> Rollout:
        return Rollout(
            region=self.region,
            window=self.window,
            reason=self.reason,
            services=None if self.services is None else frozenset(self.services),
            ticket=self.ticket,
        )


class RemoveBody(Body):
    """`DELETE /v1/overrides/{id}`: end that override before its expiry."""

    model_config = _example({"reason": "done early", "dry_run": True})

    reason: Reason
    dry_run: bool = False

    def action(self, override_id: str) -> Remove:
        return Remove(override_id=override_id, reason=self.reason)


def _spec(value: str) -> str:
    parse_spec(value)
    return value


class PlanBody(Body):
    """`POST /v1/plan`: what-if overrides (`exit=dc2`, `drain=dc2:foo,bar`, `enter=dc2`)."""

    model_config = _example({"overrides": ["exit=dc2"]}, {"overrides": ["drain=dc2:foo"]})

    overrides: Annotated[
        list[Annotated[PlainText, AfterValidator(_spec), Field(max_length=1000)]],
        Field(max_length=100),
    ] = []
    force: bool = False

    def what_if(self, who: str, now: float) -> list[Override]:
        """The overrides as the engine takes them: created just before `now`, in order."""
        return what_if_overrides(
            self.overrides, who=who, why="what-if (POST /v1/plan)", force=self.force, now=now
        )


class Query(BaseModel):
    """Query strings: values arrive as text, so not strict; unknown parameters refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class HistoryQuery(Query):
    limit: int = Field(default=100, ge=1, le=10_000, description="entries on the page")
    since: Annotated[float, Field(allow_inf_nan=False)] | None = Field(
        default=None, description="only entries from this time on (epoch seconds)"
    )
    before: Annotated[str, Field(max_length=200)] | None = Field(
        default=None, description="a page's `next`: the page of older entries"
    )


class ObservationsQuery(Query):
    since: int = Field(
        default=-1, ge=-1, description="the cursor: rows after it (-1: from the oldest kept)"
    )
    limit: int = Field(default=20_000, ge=1, le=100_000, description="rows at most")


class ExplainQuery(Query):
    service: Text = Field(description="the service", examples=["foo"])
    region: Text | None = Field(default=None, description="only this region", examples=["dc2"])


class AnswerQuery(Query):
    name: Text = Field(description="the name a client asks", examples=["foo.example.com"])
    subnet: Text = Field(description="the client's subnet", examples=["10.2.0.0/16"])


class TableQuery(Query):
    service: list[str] = Field(
        default=[],
        description="only these services (repeated, or comma-separated)",
        examples=[["foo"]],
    )

    def services(self) -> list[str]:
        return [s for item in self.service for s in item.split(",") if s]


B = TypeVar("B", bound=BaseModel)


def _field_name(part: str | int) -> str:
    """A part of a field path as an answer shows it: an unknown key may hold anything."""
    if isinstance(part, int):
        return str(part)
    if len(part) > 40 or _BAD_CHARACTER.search(part) or not part.isprintable():
        return _shown(part)
    return part


def field_problems(e: ValidationError) -> list[dict[str, str]]:
    out = []
    for err in e.errors(include_url=False, include_input=False):
        where = ".".join(_field_name(p) for p in err["loc"]) or "(body)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        out.append({"field": where, "error": message})
    return out


def parse(model: type[B], data: object, what: str = "body") -> B:
    """`data` as a `model`, or a 400 that lists every field problem."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        fields = field_problems(e)
        listed = "; ".join(f"{f['field']}: {f['error']}" for f in fields)
        raise HttpProblem(400, f"invalid {what}: {listed}", {"fields": fields}) from None


def parse_query(model: type[B], query: MultiMapping[str], many: Sequence[str] = ()) -> B:
    """`many`: the parameters that may repeat (`?service=a&service=b`)."""
    data: dict[str, Any] = {}
    for key in query:
        data[key] = query.getall(key) if key in many else query[key]
    return parse(model, data, "query")


# a string, with the colon after it when it is a key, or a bracket
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?|[\[\]{}]')


def too_deep(raw: bytes) -> str | None:
    """Where `raw` nests objects and arrays deeper than `MAX_DEPTH`, found without parsing it.

    The top-level key whose value is too deep (`(body)` when the body is not an
    object); None when nothing is. Strings are skipped whole, so brackets in
    text do not count; a body with fewer brackets than the bound is not scanned.
    """
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return None
    in_object = raw.lstrip()[:1] == b"{"
    depth = 0
    key = "(body)"
    for m in _TOKEN.finditer(raw):
        first = raw[m.start()]
        if first == ord('"'):
            if in_object and depth == 1 and m.group(1) is not None:
                key = _key_name(m.group()[: -len(m.group(1))])
        elif first in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                return key
        else:
            depth -= 1
    return None


def _key_name(quoted: bytes) -> str:
    try:
        name = json.loads(quoted.decode("utf-8"))
    except ValueError:
        return "(body)"
    return _field_name(name) if isinstance(name, str) else "(body)"


class _BadKey(ValueError):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"the key {_shown(key)} {problem}")
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _BadKey(key, "is given twice in one object")
        if _BAD_CHARACTER.search(key):
            raise _BadKey(key, "holds a control character or a lone surrogate")
        obj[key] = value
    return obj


def _integer(text: str) -> int | LongInteger:
    digits = len(text) - text.startswith("-")
    return LongInteger(digits) if digits > MAX_DIGITS else int(text)


def loads(raw: bytes) -> object:
    """`raw` as JSON under the rules of the module doc, or a 400 saying what is wrong."""
    if not raw.strip():
        raise HttpProblem(400, "bad JSON: the body is empty (expected a JSON object)")
    try:
        text = raw.decode("utf-8")  # strict: no surrogates, overlong forms, other encodings
    except UnicodeDecodeError as e:
        raise HttpProblem(400, f"bad JSON: not UTF-8 (byte {e.start}: {e.reason})") from None
    deep = too_deep(raw)
    if deep is not None:
        problem = f"nested deeper than {MAX_DEPTH} levels"
        raise HttpProblem(
            400,
            f"bad JSON: {deep}: {problem}",
            {"fields": [{"field": deep, "error": problem}]},
        )
    try:
        return json.loads(text, object_pairs_hook=_object, parse_int=_integer)
    except _BadKey as e:
        raise HttpProblem(400, f"bad JSON: {e}", {"key": _field_name(e.key)}) from None
    except json.JSONDecodeError as e:
        raise HttpProblem(400, f"bad JSON: {e}") from None
    except (ValueError, RecursionError) as e:  # any limit of the parser not foreseen above
        raise HttpProblem(400, f"bad JSON: {type(e).__name__}") from None


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or a 400 saying what is wrong with it."""
    data = loads(await request.read())
    if not isinstance(data, dict):
        raise HttpProblem(400, f"bad JSON: expected an object, not {type(data).__name__}")
    return data
