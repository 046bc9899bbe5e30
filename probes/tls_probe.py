"""TLS for probes: client contexts, the handshake probe, and failure reasons people can read."""

from __future__ import annotations

import asyncio
import ssl

from probes.clock import Clock
from probes.observation import ProbeResult
from probes.spec import Target, TlsProbe

_EXPIRED = 10  # X509_V_ERR_CERT_HAS_EXPIRED
_NOT_YET_VALID = 9  # X509_V_ERR_CERT_NOT_YET_VALID


class ProbeSetupError(Exception):
    """The probe cannot even start (e.g. an unreadable CA bundle); `str()` is the reason."""


class TlsContexts:
    """Client contexts by (verify, ca_bundle), built once: loading trust stores is costly."""

    def __init__(self) -> None:
        self._contexts: dict[tuple[bool, str | None], ssl.SSLContext] = {}

    def get(self, *, verify: bool, ca_bundle: str | None) -> ssl.SSLContext:
        key = (verify, ca_bundle if verify else None)
        context = self._contexts.get(key)
        if context is None:
            context = self._build(verify, ca_bundle)
            self._contexts[key] = context
        return context

    @staticmethod
    def _build(verify: bool, ca_bundle: str | None) -> ssl.SSLContext:
        if not verify:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        try:
            return ssl.create_default_context(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            detail = getattr(exc, "strerror", None) or str(exc)
            raise ProbeSetupError(f"tls: cannot load ca_bundle {ca_bundle}: {detail}") from None


def server_name(target: Target, sni: str | None, host: str | None = None) -> str:
    """The name sent as SNI and checked against the certificate."""
    return sni or host or target.address


def tls_failure_reason(exc: ssl.SSLError) -> str:
    """`tls: certificate expired`, `tls: hostname mismatch`, `tls: <what OpenSSL said>`."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        if exc.verify_code == _EXPIRED:
            return "tls: certificate expired"
        if exc.verify_code == _NOT_YET_VALID:
            return "tls: certificate not yet valid"
        message = (exc.verify_message or "verification failed").lower()
        if "hostname mismatch" in message or "ip address mismatch" in message:
            return "tls: hostname mismatch"
        return f"tls: {message}"
    reason = exc.reason or type(exc).__name__
    return "tls: " + str(reason).lower().replace("_", " ")


def days_to_expiry(peercert: object, now: float) -> float | None:
    """Days from `now` (epoch seconds) to the certificate's notAfter, if it has one."""
    if not isinstance(peercert, dict) or "notAfter" not in peercert:
        return None
    return (ssl.cert_time_to_seconds(peercert["notAfter"]) - now) / 86400.0


class TlsChecker:
    """The `tls` probe: a verified handshake, then the certificate's remaining days."""

    def __init__(self, contexts: TlsContexts, clock: Clock) -> None:
        self._contexts = contexts
        self._clock = clock

    async def probe(self, target: Target, spec: TlsProbe) -> ProbeResult:
        context = self._contexts.get(verify=True, ca_bundle=spec.ca_bundle)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(
            asyncio.Protocol,
            target.address,
            target.port,
            ssl=context,
            server_hostname=server_name(target, spec.sni),
        )
        try:
            days = days_to_expiry(transport.get_extra_info("peercert"), self._clock.time())
        finally:
            transport.close()
        if days is None:
            return ProbeResult(False, "tls: no certificate expiry")
        if days < spec.min_days_to_expiry:
            return ProbeResult(
                False,
                f"tls: certificate expires in {days:.1f} days (minimum {spec.min_days_to_expiry:g})",
                days,
            )
        return ProbeResult(True, "tls ok", days)
