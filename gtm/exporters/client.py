"""A small client of the PowerDNS Authoritative HTTP API: read, create and patch zones.

Every call goes through one retrying `request()` (kopf's habit): connection
errors, timeouts, 5xx and 429 are temporary and tried again with an
exponential backoff (or the server's Retry-After), logging `attempt n/N`;
any other 4xx is permanent and raised at once with PowerDNS's own error
text. The client owns its aiohttp session unless one is handed in, and
closes it in `aclose()`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from gtm.exporters.errors import PowerDnsError
from gtm.exporters.metrics import ExportMetrics
from gtm.exporters.records import RRset, ZoneState, absolute

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5  # in all, the first one included
    initial: float = 0.2  # seconds before the second attempt; doubles after each
    maximum: float = 5.0  # the longest wait between two attempts

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.maximum)
        return min(self.initial * 2.0 ** (attempt - 1), self.maximum)


class PowerDnsClient:
    """The zones of one PowerDNS server (`/api/v1/servers/{server_id}`)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None,
        server_id: str = "localhost",
        retry: RetryPolicy = RetryPolicy(),
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
        metrics: ExportMetrics | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.metrics = metrics or ExportMetrics()
        self.server_id = server_id
        self.retry = retry
        self._api_key = api_key
        self._timeout = timeout
        self._session = session
        self._owns_session = session is None

    def __repr__(self) -> str:
        return f"PowerDnsClient({self.url!r}, server_id={self.server_id!r})"

    async def __aenter__(self) -> PowerDnsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # -- zones --------------------------------------------------------------------------

    async def zone(self, zone: str) -> ZoneState | None:
        """The zone's rrsets, or None when the server has no such zone."""
        try:
            body = await self.request("GET", _zone_path(zone))
        except PowerDnsError as e:
            if e.status == 404:
                return None
            raise
        return parse_zone(body)

    async def create_zone(self, zone: str, rrsets: Sequence[RRset]) -> None:
        """Create a Native zone holding `rrsets`, its SOA and NS among them."""
        body = {
            "name": absolute(zone),
            "kind": "Native",
            "nameservers": [],  # the NS rrset is in `rrsets`
            "soa_edit_api": "DEFAULT",
            "rrsets": [r.to_api() for r in rrsets],
        }
        await self.request("POST", "/zones", body)

    async def patch_zone(self, zone: str, rrsets: Sequence[Mapping[str, Any]]) -> None:
        """One PATCH: every REPLACE/DELETE rrset change at once (pdns applies it atomically)."""
        await self.request("PATCH", _zone_path(zone), {"rrsets": list(rrsets)})

    # -- the one request ----------------------------------------------------------------

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one API call, retrying temporary failures; the decoded JSON reply, or None."""
        policy = self.retry
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.attempts),
            wait=self._wait,
            retry=retry_if_exception(_temporary),
            before_sleep=lambda state: self._log_retry(state, method, path),
            reraise=True,
        )
        attempt = 0
        try:
            async for trying in retrying:
                attempt = trying.retry_state.attempt_number
                with trying:
                    return await self._once(method, path, body)
        except PowerDnsError as e:
            raise e.after(attempt) from e
        except (aiohttp.ClientError, TimeoutError) as e:
            raise PowerDnsError(
                method, path, None, _describe(e), transient=True, attempts=attempt
            ) from e
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _once(self, method: str, path: str, body: Any) -> Any:
        session = self._session_()
        headers = {"Accept": "application/json"}
        if self._api_key is not None:
            headers["X-API-Key"] = self._api_key
        url = f"{self.url}/api/v1/servers/{quote(self.server_id, safe='')}{path}"
        async with session.request(method, url, json=body, headers=headers) as resp:
            text = await resp.text()
            if 200 <= resp.status < 300:
                try:
                    return json.loads(text) if text.strip() else None
                except ValueError:
                    raise PowerDnsError(
                        method,
                        path,
                        resp.status,
                        f"reply is not JSON: {text[:200]!r}",
                        transient=False,
                    ) from None
            raise PowerDnsError(
                method,
                path,
                resp.status,
                _error_text(text, resp.reason),
                transient=resp.status >= 500 or resp.status == 429,
                retry_after=_retry_after(resp.headers.get("Retry-After")),
            )

    def _session_(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        return self._session

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = exc.retry_after if isinstance(exc, PowerDnsError) else None
        return self.retry.wait(state.attempt_number, retry_after)

    def _log_retry(self, state: RetryCallState, method: str, path: str) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        self.metrics.retries.inc()
        log.warning(
            "powerdns.retry",
            server=self.url,
            method=method,
            path=path,
            attempt=f"{state.attempt_number}/{self.retry.attempts}",
            error=_describe(exc) if exc is not None else None,
            wait=round(state.next_action.sleep, 3) if state.next_action else None,
        )


def parse_zone(body: Mapping[str, Any]) -> ZoneState:
    """A zone as the API returns it (GET /zones/{zone}) into a ZoneState."""
    rrsets: dict[tuple[str, str], RRset] = {}
    for r in body.get("rrsets", []):
        records = r.get("records", [])
        rrset = RRset(
            absolute(r["name"]),
            str(r["type"]).upper(),
            int(r.get("ttl", 0)),
            tuple(sorted(x["content"] for x in records if not x.get("disabled"))),
            sum(1 for x in records if x.get("disabled")),
        )
        if rrset.records or rrset.disabled:
            rrsets[(rrset.name, rrset.type)] = rrset
    return ZoneState(absolute(body["name"]), rrsets)


def _zone_path(zone: str) -> str:
    return f"/zones/{quote(absolute(zone), safe='')}"


def _temporary(exc: BaseException) -> bool:
    if isinstance(exc, PowerDnsError):
        return exc.transient
    return isinstance(exc, aiohttp.ClientError | TimeoutError)


def _error_text(text: str, reason: str | None) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("error"):
        errors = doc.get("errors")
        extra = f" ({'; '.join(map(str, errors))})" if isinstance(errors, list) and errors else ""
        return f"{doc['error']}{extra}"
    return text.strip() or (reason or "")


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
