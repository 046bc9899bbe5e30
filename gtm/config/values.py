"""Small value types of the config: durations, ports, names, addresses."""

from __future__ import annotations

import ipaddress
import math
import re
import socket
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainValidator

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)(ms|s|m|h|d)\s*)+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAX_DURATION = 366 * 86400.0  # a year: no interval, ramp or expiry of gtm is longer


def parse_duration(value: object) -> float:
    """`5s`, `1m30s`, `250ms`, `2h`, or a number of seconds; finite, up to a year."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    try:
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and len(value) <= 64 and _DURATION.match(value):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(value))
        else:
            raise ValueError(f"{_shown(value)} is not a duration (like 5s, 1m30s, 250ms)")
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise ValueError(f"{_shown(value)} is not a finite number of seconds")
    if seconds < 0:
        raise ValueError(f"{_shown(value)} is negative")
    if seconds > MAX_DURATION:
        raise ValueError(f"{_shown(value)} is longer than a year")
    return seconds


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a valid port (1..65535)")
    return value


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid name (lowercase letters, digits and '-')")
    return value


def is_hostname(value: str) -> bool:
    labels = value.rstrip(".").split(".")
    return len(value) <= 253 and len(labels) >= 1 and all(_LABEL.match(x) for x in labels)


def _fqdn(value: str) -> str:
    if not is_hostname(value) or "." not in value.rstrip("."):
        raise ValueError(f"{value!r} is not a fully qualified domain name")
    return value.rstrip(".").lower()


def _address(value: str) -> str:
    try:  # the common case, without ipaddress' pure-Python parsing: 135,000 VIPs in 30,000 services
        if socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, value)) == value:
            return value
    except (OSError, ValueError):
        pass
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if is_hostname(value) and "." in value:
        return value.rstrip(".").lower()
    raise ValueError(f"{value!r} is neither an IP address nor a host name")


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{value!r} is not HOST:PORT")
    _port(int(port))
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"{value!r}: {host!r} is not an IP address") from None
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
Port = Annotated[int, AfterValidator(_port)]
Name = Annotated[str, AfterValidator(_name)]
Fqdn = Annotated[str, AfterValidator(_fqdn)]
Address = Annotated[str, AfterValidator(_address)]
Listen = Annotated[str, AfterValidator(_listen)]


def split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _cidr(value: object) -> IpNetwork:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError as e:
        raise ValueError(f"{value!r} is not a CIDR ({e})") from None


def _ip(value: object) -> IpAddress:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


Cidr = Annotated[IpNetwork, PlainValidator(_cidr)]
Ip = Annotated[IpAddress, PlainValidator(_ip)]
