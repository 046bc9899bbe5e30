"""What to probe: the probe kinds, their settings, and the targets that carry them.

Values only: every spec checks itself when built and raises `ProbeConfigError`
listing all of its problems at once, each as `field: what is wrong (got value)`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_NO_SPACE = re.compile(r"^\S+$")


class ProbeConfigError(ValueError):
    """A probe spec, target or health setting that cannot work; `problems` lists why."""

    def __init__(self, subject: str, problems: Iterable[str]) -> None:
        self.subject = subject
        self.problems = tuple(problems)
        super().__init__(f"invalid {subject}: " + "; ".join(self.problems))


@dataclass(frozen=True, kw_only=True, slots=True)
class BaseProbe:
    """Timing and hysteresis shared by every kind: seconds, and consecutive results."""

    kind: ClassVar[str] = "base"
    interval: float = 5.0
    timeout: float = 2.0
    rise: int = 2
    fall: int = 3

    def __post_init__(self) -> None:
        problems = self._timing_problems() + self._kind_problems()
        if problems:
            raise ProbeConfigError(f"{self.kind} probe", problems)

    def _timing_problems(self) -> list[str]:
        problems: list[str] = []
        if not _positive(self.interval):
            problems.append(
                f"interval: must be a positive number of seconds (got {self.interval!r})"
            )
        if not _positive(self.timeout):
            problems.append(f"timeout: must be a positive number of seconds (got {self.timeout!r})")
        elif _positive(self.interval) and self.timeout > self.interval:
            problems.append(
                f"timeout: must not exceed the interval {self.interval}s (got {self.timeout!r})"
            )
        for name in ("rise", "fall"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name}: must be an integer >= 1 (got {value!r})")
        return problems

    def _kind_problems(self) -> list[str]:
        return []


@dataclass(frozen=True, kw_only=True, slots=True)
class TcpProbe(BaseProbe):
    """Passes when a TCP connection to the target opens within the timeout."""

    kind: ClassVar[str] = "tcp"


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpProbe(BaseProbe):
    """An HTTP(S) request; passes on an expected status and, if set, a body matching `body`.

    `expect_status` empty means any 2xx. `body` is a regular expression searched in
    the first 64 KiB of the body. `tls` makes it HTTPS (YAML `kind: https`);
    `verify_tls`, `sni` and `ca_bundle` apply then. A new connection is opened
    per probe unless `keepalive` is set.
    """

    kind: ClassVar[str] = "http"
    tls: bool = False
    method: str = "GET"
    path: str = "/"
    host: str | None = None
    expect_status: tuple[int, ...] = ()
    body: str | None = None
    verify_tls: bool = True
    sni: str | None = None
    ca_bundle: str | None = None
    keepalive: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def _kind_problems(self) -> list[str]:
        problems: list[str] = []
        if not isinstance(self.expect_status, tuple):
            try:
                object.__setattr__(self, "expect_status", tuple(self.expect_status))
            except TypeError:
                problems.append(
                    f"expect_status: must be a list of status codes (got {self.expect_status!r})"
                )
                return problems
        if not isinstance(self.method, str) or not _TOKEN.match(self.method):
            problems.append(f"method: must be an HTTP method token (got {self.method!r})")
        if (
            not isinstance(self.path, str)
            or not self.path.startswith("/")
            or not _NO_SPACE.match(self.path)
        ):
            problems.append(f"path: must start with '/' and contain no spaces (got {self.path!r})")
        for name in ("host", "sni"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not _NO_SPACE.match(value)):
                problems.append(f"{name}: must be a name without spaces (got {value!r})")
        for code in self.expect_status:
            if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
                problems.append(f"expect_status: {code!r} is not an HTTP status code (100-599)")
        if self.body is not None:
            try:
                re.compile(self.body)
            except (re.error, TypeError) as exc:
                problems.append(f"body: not a valid regular expression: {exc} (got {self.body!r})")
        problems.extend(_ca_bundle_problems(self.ca_bundle))
        return problems


@dataclass(frozen=True, kw_only=True, slots=True)
class TlsProbe(BaseProbe):
    """A TLS handshake verified against `ca_bundle` (system trust when None).

    Records the certificate's days to expiry and fails below `min_days_to_expiry`.
    The certificate must name `sni` when set, else the target's address.
    """

    kind: ClassVar[str] = "tls"
    sni: str | None = None
    ca_bundle: str | None = None
    min_days_to_expiry: float = 0.0

    def _kind_problems(self) -> list[str]:
        problems = _ca_bundle_problems(self.ca_bundle)
        if self.sni is not None and (
            not isinstance(self.sni, str) or not _NO_SPACE.match(self.sni)
        ):
            problems.append(f"sni: must be a name without spaces (got {self.sni!r})")
        days = self.min_days_to_expiry
        if isinstance(days, bool) or not isinstance(days, int | float) or days < 0:
            problems.append(f"min_days_to_expiry: must be a number >= 0 (got {days!r})")
        return problems


@dataclass(frozen=True, kw_only=True, slots=True)
class DnsProbe(BaseProbe):
    """A DNS query for `qname`/`qtype` sent to the target; passes on `expect_rcode`.

    When `expect_answer` is set, one record of the answer must read exactly that
    (e.g. `10.0.0.1`, or `foo.example.com.` for a CNAME; compared case-insensitively).
    """

    kind: ClassVar[str] = "dns"
    qname: str = ""
    qtype: str = "A"
    expect_rcode: str = "NOERROR"
    expect_answer: str | None = None

    def _kind_problems(self) -> list[str]:
        problems: list[str] = []
        try:
            if not self.qname:
                raise dns.exception.DNSException("empty")
            dns.name.from_text(self.qname)
        except (dns.exception.DNSException, TypeError, AttributeError):
            problems.append(f"qname: must be a domain name (got {self.qname!r})")
        try:
            object.__setattr__(self, "qtype", dns.rdatatype.to_text(_rdatatype(self.qtype)))
        except (dns.exception.DNSException, TypeError, AttributeError, ValueError):
            problems.append(f"qtype: unknown record type (got {self.qtype!r})")
        try:
            object.__setattr__(self, "expect_rcode", dns.rcode.to_text(_rcode(self.expect_rcode)))
        except (dns.exception.DNSException, TypeError, AttributeError, ValueError):
            problems.append(f"expect_rcode: unknown response code (got {self.expect_rcode!r})")
        if self.expect_answer is not None and not isinstance(self.expect_answer, str):
            problems.append(f"expect_answer: must be text (got {self.expect_answer!r})")
        return problems


ProbeSpec = HttpProbe | TcpProbe | TlsProbe | DnsProbe
"""Any probe kind; dispatch on the class (`kind` names it: http, tcp, tls, dns)."""


@dataclass(frozen=True, slots=True)
class Target:
    """One VIP probed one way. `id` is stable across reloads, e.g. `foo/dc1/10.0.0.1:443`;
    `service` and `region` group VIPs for per-(service, region) health."""

    id: str
    address: str
    port: int
    spec: ProbeSpec
    service: str
    region: str

    def __post_init__(self) -> None:
        problems: list[str] = []
        for name in ("id", "address", "service", "region"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or not _NO_SPACE.match(value):
                problems.append(f"{name}: must be non-empty text without spaces (got {value!r})")
        port = self.port
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            problems.append(f"port: must be an integer 1-65535 (got {port!r})")
        if not isinstance(self.spec, HttpProbe | TcpProbe | TlsProbe | DnsProbe):
            problems.append(f"spec: must be a probe spec (got {type(self.spec).__name__})")
        if problems:
            raise ProbeConfigError(f"target {self.id!r}", problems)

    @property
    def kind(self) -> str:
        """The metric label of the probe: http, https, tcp, tls or dns."""
        spec = self.spec
        if isinstance(spec, HttpProbe):
            return spec.scheme
        return spec.kind

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            return False
        return True


def _positive(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and value > 0


def _ca_bundle_problems(ca_bundle: object) -> list[str]:
    if ca_bundle is None or (isinstance(ca_bundle, str) and ca_bundle):
        return []
    return [f"ca_bundle: must be a file path (got {ca_bundle!r})"]


def _rdatatype(value: str) -> dns.rdatatype.RdataType:
    return dns.rdatatype.RdataType.make(value.upper())


def _rcode(value: str) -> dns.rcode.Rcode:
    return dns.rcode.Rcode.make(value.upper())
