"""Kubernetes API errors as `Status` objects.

Every failure the simulated API server reports is an `ApiError`; the server
turns it into the JSON `Status` body a real kube-apiserver sends (`kind:
Status`, `status: Failure`, `code`, `reason`, `message`, `details`), which is
what kubernetes-asyncio parses into `ApiException`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OPTIMISTIC_LOCK_MESSAGE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


@dataclass(frozen=True)
class Cause:
    """One field-level reason inside an `Invalid` status."""

    field: str
    reason: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}

    def describe(self) -> str:
        return f"{self.field}: {self.message}"


class ApiError(Exception):
    """A failed request, carried up to the HTTP layer as a `Status` body.

    A plain exception (not a frozen dataclass: the interpreter and contextlib
    assign `__traceback__` on exceptions).
    """

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(code, reason, message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details: dict[str, Any] = details or {}
        self.headers = headers

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(group_resource: str, name: str) -> dict[str, Any]:
    resource, _, group = group_resource.partition(".")
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return details


def not_found(group_resource: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{group_resource} "{name}" not found', _details(group_resource, name)
    )


def unknown_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def forbidden(verb: str, resource: str, user: str) -> ApiError:
    """403 as the authorizer answers a request RBAC does not allow."""
    plural, _, subresource = resource.partition("/")
    what = f'resource "{plural}"' + (f' subresource "{subresource}"' if subresource else "")
    return ApiError(
        403,
        "Forbidden",
        f'{resource} is forbidden: User "{user}" cannot {verb} {what}',
        {"kind": plural},
    )


def already_exists(group_resource: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{group_resource} "{name}" already exists',
        _details(group_resource, name),
    )


def conflict(group_resource: str, name: str, why: str = OPTIMISTIC_LOCK_MESSAGE) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {group_resource} "{name}": {why}',
        _details(group_resource, name),
    )


def invalid(qualified_kind: str, name: str, causes: list[Cause]) -> ApiError:
    """422 Invalid; `qualified_kind` is `Kind.group` (or `Kind` for core)."""
    text = (
        causes[0].describe() if len(causes) == 1 else f"[{', '.join(c.describe() for c in causes)}]"
    )
    kind, _, group = qualified_kind.partition(".")
    details: dict[str, Any] = {"name": name, "kind": kind, "causes": [c.to_dict() for c in causes]}
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {text}', details)


def unprocessable(message: str) -> ApiError:
    """422 without a kind, as the apiserver answers a JSON patch that cannot apply."""
    return ApiError(422, "Invalid", message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unsupported_media_type(content_type: str, accepted: tuple[str, ...]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format ({content_type or 'none'})"
        f" - accepted media types include: {', '.join(accepted)}",
    )


def method_not_allowed(method: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"the server does not allow this method ({method})")


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        {"causes": [{"reason": "RetryAfter"}], "retryAfterSeconds": retry_after},
        (("Retry-After", str(retry_after)),),
    )


def internal_error(why: str) -> ApiError:
    return ApiError(
        500,
        "InternalError",
        f"Internal error occurred: {why}",
        {"causes": [{"message": why}]},
    )


def request_entity_too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")
