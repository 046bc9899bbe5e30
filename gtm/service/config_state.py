"""Which config a member runs, since when, and the last reload it refused (config drift).

A SIGHUP reload that is refused leaves the member on its old config and says so
only in its log; two members of a pair can then run different configs unnoticed.
`ConfigState` keeps, for `/v1/status` and `/metrics`:

- the digest of the estate the member runs: the config without what is the
  member's own (`instance`, `api`, `dns.listen`), so both members of a pair
  that run the same estate show the same digest, and any two that differ show it;
- when it was loaded, from which file;
- the last refused reload, with when and its problems, until a reload succeeds.

Metrics: `gtm_config_info{digest}` (1), `gtm_config_loaded_timestamp_seconds`,
`gtm_config_reloads_total{result="applied"|"refused"}` and
`gtm_config_reload_refused` (1 while the last reload was refused). A pair on
different configs: `count by (region) (count by (region, digest) (gtm_config_info)) > 1`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from gtm.config import Config
from gtm.status import ConfigRef

MEMBERS_OWN = {"instance": True, "api": True, "dns": {"listen"}}


def estate_digest(config: Config) -> str:
    """The first 16 hex digits of the SHA-256 of the config without the member's own parts."""
    data = config.model_dump(mode="json", exclude=MEMBERS_OWN)  # type: ignore[arg-type]
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ConfigState:
    def __init__(
        self,
        path: str,
        config: Config,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._info = Gauge(
            "gtm_config_info", "The config this member runs (its estate's digest)", ["digest"],
            registry=registry,
        )  # fmt: skip
        self._loaded_at = Gauge(
            "gtm_config_loaded_timestamp_seconds",
            "When the config this member runs was loaded",
            registry=registry,
        )
        self._reloads = Counter(
            "gtm_config_reloads", "Config reloads (SIGHUP) by result", ["result"], registry=registry
        )
        self._refused_now = Gauge(
            "gtm_config_reload_refused",
            "1 while the last reload was refused (the member runs its previous config)",
            registry=registry,
        )
        for result in ("applied", "refused"):
            self._reloads.labels(result)
        self._ref = ConfigRef(file=path, digest="", loaded_at=0.0)
        self._set(path, config)

    def _set(self, path: str, config: Config, digest: str | None = None) -> None:
        digest = digest or estate_digest(config)
        now = self._clock()
        self._info.clear()
        self._info.labels(digest).set(1)
        self._loaded_at.set(now)
        self._refused_now.set(0)
        self._ref = ConfigRef(file=path, digest=digest, loaded_at=now)

    def applied(self, path: str, config: Config, digest: str | None = None) -> None:
        """`config` runs now; `digest` is its `estate_digest` when already known (the
        reload computed it in its child: 1.5 s of the loop at 30,000 services)."""
        self._reloads.labels("applied").inc()
        self._set(path, config, digest)

    def refused(self, problems: Sequence[str]) -> None:
        self._reloads.labels("refused").inc()
        self._refused_now.set(1)
        self._ref = self._ref.model_copy(
            update={"refused_at": self._clock(), "refused": list(problems)[:20]}
        )

    def ref(self) -> ConfigRef:
        return self._ref
