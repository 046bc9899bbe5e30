"""What a running member serves at `/metrics`: every room counts into the member's registry.

`SERVED` is the list of metric families a member (leader, one cluster, a PowerDNS
exporter) serves; alert rules and dashboards may name these and no others.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
from api_members import Members, until
from prometheus_client.parser import text_string_to_metric_families

SERVED = {
    # the API
    "gtm_api_request_seconds",
    "gtm_api_requests",
    # the embedded DNS
    "gtm_dns_answers",
    "gtm_dns_behind_seconds",
    "gtm_dns_errors",
    "gtm_dns_generation",
    "gtm_dns_queries",
    "gtm_dns_udp_receive_buffer_bytes",
    "gtm_dns_udp_receive_drops",
    "gtm_dns_worker_restarts",
    "gtm_dns_workers",
    # the config it runs, and its reloads
    "gtm_config_info",
    # the exchange with the other regions
    "gtm_peer_last_contact_timestamp_seconds",
    "gtm_peer_reachable",
    "gtm_peer_silent",
    "gtm_config_loaded_timestamp_seconds",
    "gtm_config_reload_refused",
    "gtm_config_reloads",
    # the intent, audit and published-table stores
    "gtm_intent_store_conflicts",
    "gtm_intent_store_retries",
    "gtm_intent_store_writes",
    # the intent store against the member's high-water mark (lost intent)
    "gtm_intent_regressed",
    "gtm_intent_version_seen",
    "gtm_intent_version_stored",
    # the Kubernetes clients
    "gtm_kube_rate_limit_wait_seconds",
    "gtm_kube_requests",
    "gtm_kube_retries",
    # the leader's AccessPoints
    "gtm_accesspoint_certificate_expiry_timestamp_seconds",
    "gtm_accesspoint_condition",
    "gtm_accesspoint_last_sync_timestamp_seconds",
    "gtm_accesspoint_syncs",
    # leader election
    "gtm_leader_epoch",
    "gtm_leader_is_leader",
    "gtm_leader_lease_errors",
    "gtm_leader_renew_failures",
    "gtm_leader_transitions",
    # the member and its evaluations
    "gtm_member_info",
    "gtm_table_evaluated_timestamp_seconds",
    "gtm_table_fail_open_rows",
    # the member's loop
    "gtm_member_gc_pause_seconds",
    "gtm_member_loop_lag_max_seconds",
    "gtm_member_loop_lag_seconds",
    # the mesh
    "gtm_mesh_distribute_conflicts",
    "gtm_wle_desired",
    "gtm_wle_drifted",
    "gtm_wle_in_sync",
    "gtm_wle_patches",
    "gtm_wle_reconcile_duration_seconds",
    "gtm_wle_writes_stopped",
    # the PowerDNS exporter
    "gtm_powerdns_generation_published",
    "gtm_powerdns_publish_seconds",
    "gtm_powerdns_publishes",
    "gtm_powerdns_request_retries",
    "gtm_powerdns_rrsets_changed",
    # probes and health
    "gtm_probe_in_flight",
    "gtm_probe_latency_seconds",
    "gtm_probe_newest_age_seconds",
    "gtm_probe_results",
    "gtm_probe_scheduler_lag_seconds",
    "gtm_probe_scheduler_lagging",
    "gtm_probe_skipped",
    "gtm_probe_targets",
    "gtm_probe_tls_days_to_expiry",
    "gtm_probes_stalled",
    "gtm_region_state",
    "gtm_vantage_impaired",
    "gtm_vip_damped",
    "gtm_vip_state",
}


async def test_a_running_member_serves_every_rooms_metrics(tmp_path: Path) -> None:
    # PowerDNS at an address where nothing answers: publishes fail, and are counted
    with Members(tmp_path / "m", powerdns="http://127.0.0.1:9") as members:
        registry = members.members["dc1-a"].registry
        failed = {"result": "failed"}
        until(
            lambda: (registry.get_sample_value("gtm_powerdns_publishes_total", failed) or 0) >= 1,
            what="a failed publish",
        )
        async with aiohttp.ClientSession() as session:
            async with session.get(members.url("dc1-a") + "/metrics") as r:
                assert r.status == 200
                text = await r.text()
    families = {f.name for f in text_string_to_metric_families(text)}
    families = {f.removesuffix("_created") for f in families}  # a counter's creation time
    assert families == SERVED
    writes = 'gtm_intent_store_writes_total{result="written",store="file/published"}'
    assert writes in text
