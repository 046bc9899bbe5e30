"""probes: measure every VIP from every vantage, and decide health without flapping.

Imports nothing else of gtm: targets go in, observations and health come out.

    prober = NetworkProber()
    monitor = HealthMonitor(HealthTracker(HealthSettings()), metrics=ProbeMetrics())
    scheduler = Scheduler(prober, vantage="dc1", on_observation=monitor.observe)
    monitor.update(targets)
    scheduler.update(targets)
    async with asyncio.TaskGroup() as group:
        group.create_task(scheduler.run())
        group.create_task(monitor.run())
    ...
    monitor.observe(peer_observation)   # observations of other vantages
    view = monitor.view()               # HealthView for the policy engine

The core (`HealthTracker`, specs, health values, the HTTP parser) is pure; the
shell (`Scheduler`, `NetworkProber`, `HealthMonitor`) owns time, I/O, logs and
metrics, with the clock and the prober passed in.
"""

from probes.clock import Clock, ManualClock, SystemClock, Timer, sleep_until
from probes.health import (
    DOWN,
    UNKNOWN,
    UP,
    HealthEvent,
    HealthSettings,
    HealthView,
    RegionHealth,
    State,
    VantageVote,
    VipHealth,
)
from probes.metrics import ProbeMetrics
from probes.monitor import HealthMonitor
from probes.observation import Observation, ProbeResult, outcome
from probes.parse import parse_duration, parse_probe_spec
from probes.prober import NetworkProber, Prober
from probes.scheduler import ScheduleChange, Scheduler, SchedulerStats, phase
from probes.spec import (
    BaseProbe,
    DnsProbe,
    HttpProbe,
    ProbeConfigError,
    ProbeSpec,
    Target,
    TcpProbe,
    TlsProbe,
)
from probes.tracker import HealthTracker

__all__ = [
    "DOWN",
    "UNKNOWN",
    "UP",
    "BaseProbe",
    "Clock",
    "DnsProbe",
    "HealthEvent",
    "HealthMonitor",
    "HealthSettings",
    "HealthTracker",
    "HealthView",
    "HttpProbe",
    "ManualClock",
    "NetworkProber",
    "Observation",
    "ProbeConfigError",
    "ProbeMetrics",
    "ProbeResult",
    "ProbeSpec",
    "Prober",
    "RegionHealth",
    "ScheduleChange",
    "Scheduler",
    "SchedulerStats",
    "State",
    "SystemClock",
    "Target",
    "TcpProbe",
    "Timer",
    "TlsProbe",
    "VantageVote",
    "VipHealth",
    "outcome",
    "parse_duration",
    "parse_probe_spec",
    "phase",
    "sleep_until",
]
