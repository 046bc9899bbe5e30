"""Exporters: publish the weight table to external DNS servers (PowerDNS first).

    async with PowerDnsExporter.from_config(inventory.config.dns.powerdns) as exporter:
        plan = await exporter.plan(inventory, table)
        published = await exporter.apply(plan)  # or exporter.publish(inventory, table)

`records.desired` and `plan.make_plan` are pure: what a table asks of each
zone, and the changes from what a server holds. Imports `policies` and
`gtm.config` only.
"""

from gtm.exporters.client import PowerDnsClient, RetryPolicy, parse_zone
from gtm.exporters.errors import ExportError, PowerDnsError, RenderError
from gtm.exporters.lua import MARKER, is_managed
from gtm.exporters.plan import Action, Change, Plan, Safety, ZonePlan, make_plan, plan_zone
from gtm.exporters.powerdns import PowerDnsExporter, Published
from gtm.exporters.records import (
    RRset,
    ZoneRecords,
    ZoneState,
    desired,
    generation_name,
    service_records,
)
from gtm.exporters.weights import Pick, row_pick
from policies import UnsafePlan

__all__ = [
    "MARKER",
    "Action",
    "Change",
    "ExportError",
    "Pick",
    "Plan",
    "PowerDnsClient",
    "PowerDnsError",
    "PowerDnsExporter",
    "Published",
    "RRset",
    "RenderError",
    "RetryPolicy",
    "Safety",
    "UnsafePlan",
    "ZonePlan",
    "ZoneRecords",
    "ZoneState",
    "desired",
    "generation_name",
    "is_managed",
    "make_plan",
    "parse_zone",
    "plan_zone",
    "row_pick",
    "service_records",
]
