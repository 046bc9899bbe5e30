"""Request bodies and query strings, validated with pydantic into the runbook's actions.

Bodies are strict: unknown fields are refused, booleans are JSON booleans,
durations are seconds or strings like "10m". `parse` reports every problem
of a body at once, each with its field path.
"""

from __future__ import annotations

import json
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


def _not_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


Text = Annotated[str, AfterValidator(_not_blank)]
Reason = Annotated[str, AfterValidator(_not_blank), Field(max_length=1000)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]
Positive = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
Services = Annotated[list[Text], Field(min_length=1, max_length=100_000)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ExitBody(Body):
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
    reason: Reason
    dry_run: bool = False

    def action(self, override_id: str) -> Remove:
        return Remove(override_id=override_id, reason=self.reason)


def _spec(value: str) -> str:
    parse_spec(value)
    return value


class PlanBody(Body):
    overrides: Annotated[list[Annotated[str, AfterValidator(_spec)]], Field(max_length=100)] = []
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
    limit: int = Field(default=100, ge=1, le=10_000)
    since: float | None = None


class ObservationsQuery(Query):
    since: int = Field(default=-1, ge=-1)  # -1: from the oldest row the member keeps
    limit: int = Field(default=20_000, ge=1, le=100_000)


class TableQuery(Query):
    service: list[str] = []

    def services(self) -> list[str]:
        return [s for item in self.service for s in item.split(",") if s]


B = TypeVar("B", bound=BaseModel)


def field_problems(e: ValidationError) -> list[dict[str, str]]:
    out = []
    for err in e.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "(body)"
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


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or a 400 saying what is wrong with it."""
    raw = await request.read()
    if not raw.strip():
        raise HttpProblem(400, "bad JSON: the body is empty (expected a JSON object)")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HttpProblem(400, f"bad JSON: {e}") from None
    if not isinstance(data, dict):
        raise HttpProblem(400, f"bad JSON: expected an object, not {type(data).__name__}")
    return data
