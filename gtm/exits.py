"""The exit codes of every gtm command, one meaning each (scripts and runbooks branch on them)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the member, a peer (PowerDNS, Kubernetes) or a drill failed
    INPUT = 2  # bad usage, config, credentials or file: nothing was done
    REFUSED = 3  # a guardrail or a safety limit (blast radius) refused it: nothing changed
    TIMEOUT = 4  # --wait gave up before the change was observed done
