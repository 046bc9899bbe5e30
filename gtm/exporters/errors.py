"""What can go wrong when a weight table is published to an external DNS.

Each error says what a person needs to act on: the services and VIPs that
cannot be rendered, or the HTTP status and the server's own error text. A
plan over the blast-radius limit raises `policies.UnsafePlan`, the error every
layer's plans share.
"""

from __future__ import annotations

from collections.abc import Sequence


class ExportError(Exception):
    """Publishing failed; nothing more was written after the failing step."""


class RenderError(ExportError):
    """The table cannot be expressed as records; `problems` lists every reason."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class PowerDnsError(ExportError):
    """The PowerDNS API refused a request, or could not be reached.

    `status` is the HTTP status (None when no response came back);
    `transient` says whether trying again later may succeed.
    """

    def __init__(
        self,
        method: str,
        path: str,
        status: int | None,
        message: str,
        *,
        transient: bool,
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        self.transient = transient
        self.attempts = attempts
        self.retry_after = retry_after
        super().__init__(self._text())

    def _text(self) -> str:
        got = f"HTTP {self.status}" if self.status is not None else "no response"
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"PowerDNS {self.method} {self.path}: {got}{tries}: {self.message}"

    def after(self, attempts: int) -> PowerDnsError:
        """The same error, saying how many attempts were made."""
        return PowerDnsError(
            self.method,
            self.path,
            self.status,
            self.message,
            transient=self.transient,
            attempts=attempts,
            retry_after=self.retry_after,
        )
