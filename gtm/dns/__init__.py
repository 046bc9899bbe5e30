"""The embedded authoritative DNS: the weight table served as A/AAAA answers.

answers = Answers.build(inventory, table)      # every answer of one generation
async with DnsServer(inventory.config.dns, answers, listen=("127.0.0.1", 0)) as server:
    server.swap(Answers.build(inventory, new_table))
async with DnsWorkers(2, inventory, table, ("0.0.0.0", 53)) as pool:  # answer processes
    await pool.publish(new_table)
"""

from gtm.dns.answers import Answers, Resolution
from gtm.dns.metrics import DnsCollector, DnsMetrics, Snapshot
from gtm.dns.pool import DnsWorkers, WorkerFailed, WorkersCollector
from gtm.dns.server import DnsServer
from gtm.dns.topology import Match, Topology

__all__ = [
    "Answers",
    "DnsCollector",
    "DnsMetrics",
    "DnsServer",
    "DnsWorkers",
    "Match",
    "Resolution",
    "Snapshot",
    "Topology",
    "WorkerFailed",
    "WorkersCollector",
]
