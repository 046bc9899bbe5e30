"""The API client against a real PowerDNS: temporary failures retried, 4xx reported at once.

Faults come from a proxy in front of PowerDNS that answers the next
requests with a chosen status, or closes the connection without a reply.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from gtm.config import Inventory
from gtm.exporters import PowerDnsClient, PowerDnsError, PowerDnsExporter, RetryPolicy
from gtm.what_if import what_if
from policies import Health, State, TargetHealth, WeightTable

if TYPE_CHECKING:
    from conftest import FlakyProxy, PdnsServer

FAST = RetryPolicy(attempts=3, initial=0.01, maximum=0.05)


def table(inventory: Inventory, health: Health | None = None) -> WeightTable:
    return what_if(inventory, health or Health(), [], 1000.0).planned.table


def retries(exporter: PowerDnsExporter) -> float:
    return exporter.metrics.value("gtm_powerdns_request_retries_total")


def failures(exporter: PowerDnsExporter) -> float:
    return exporter.metrics.value("gtm_powerdns_publishes_total", result="failed")


async def test_5xx_and_dropped_connections_are_retried_until_the_call_succeeds(
    inventory: Inventory, via_proxy: PowerDnsExporter, proxy: FlakyProxy, pdns: PdnsServer
) -> None:
    proxy.fail_next(503, method="GET")
    proxy.fail_next("drop", method="POST")  # not retried by aiohttp itself: POST is not idempotent
    before = retries(via_proxy)
    with capture_logs() as logs:
        published = await via_proxy.publish(inventory, table(inventory))
    assert published.generation == 1 and published.zones_created == ("example.com.",)
    assert proxy.methods() == ["GET", "GET", "POST", "POST"]
    assert retries(via_proxy) == before + 2
    tries = [e for e in logs if e["event"] == "powerdns.retry"]
    assert [(e["method"], e["attempt"]) for e in tries] == [("GET", "1/3"), ("POST", "1/3")]
    assert "HTTP 503" in tries[0]["error"]
    assert "ServerDisconnected" in tries[1]["error"]
    assert pdns.rrsets()[("_gtm-generation.example.com.", "TXT")] == ['"1"']


async def test_a_zone_created_by_a_post_whose_reply_was_lost_is_filled_in(
    inventory: Inventory, via_proxy: PowerDnsExporter, proxy: FlakyProxy, pdns: PdnsServer
) -> None:
    proxy.fail_next("lost", method="POST")
    with capture_logs() as logs:
        published = await via_proxy.publish(inventory, table(inventory))
    # The retried POST meets the zone the first one created (409): the rrsets are PATCHed in.
    assert proxy.methods() == ["GET", "POST", "POST", "PATCH"]
    assert "powerdns.zone.exists" in [e["event"] for e in logs]
    assert published.generation == 1
    rrsets = pdns.rrsets()
    assert rrsets[("_gtm-generation.example.com.", "TXT")] == ['"1"']
    assert len([k for k in rrsets if k[1] == "LUA"]) == 5


async def test_a_patch_that_keeps_failing_gives_up_after_its_attempts(
    inventory: Inventory, via_proxy: PowerDnsExporter, proxy: FlakyProxy, pdns: PdnsServer
) -> None:
    await via_proxy.publish(inventory, table(inventory))
    proxy.fail_next(502, 503, 500, method="PATCH")
    before = failures(via_proxy)
    down = Health(regions={("foo", "dc3"): TargetHealth(State.DOWN, 990.0, "tcp refused")})
    with capture_logs() as logs, pytest.raises(PowerDnsError) as caught:
        await via_proxy.publish(inventory, table(inventory, down))
    error = caught.value
    assert (error.status, error.attempts, error.transient) == (500, 3, True)
    assert "PowerDNS PATCH /zones/example.com.: HTTP 500 after 3 attempts" in str(error)
    assert proxy.methods().count("PATCH") == 3
    assert failures(via_proxy) == before + 1
    failed = [e for e in logs if e["event"] == "powerdns.publish.failed"]
    assert failed and failed[0]["status"] == 500 and failed[0]["stage"] == "apply"
    assert pdns.rrsets()[("_gtm-generation.example.com.", "TXT")] == ['"1"']


async def test_a_422_is_reported_with_the_servers_text_and_not_retried(
    inventory: Inventory, via_proxy: PowerDnsExporter, proxy: FlakyProxy
) -> None:
    await via_proxy.publish(inventory, table(inventory))
    proxy.fail_next(422, method="PATCH")
    down = Health(regions={("foo", "dc3"): TargetHealth(State.DOWN, 990.0, "tcp refused")})
    with pytest.raises(PowerDnsError) as caught:
        await via_proxy.publish(inventory, table(inventory, down))
    error = caught.value
    assert (error.status, error.attempts, error.transient) == (422, 1, False)
    assert "Conflicts with pre-existing RRset" in str(error)
    assert proxy.methods().count("PATCH") == 1


async def test_a_real_powerdns_422_carries_its_error_text(
    pdns: PdnsServer, proxy: FlakyProxy
) -> None:
    pdns.api("POST", "/zones", {"name": "example.com.", "kind": "Native", "nameservers": []})
    async with PowerDnsClient(proxy.url, api_key=pdns.api_key, retry=FAST) as client:
        with pytest.raises(PowerDnsError) as caught:
            await client.patch_zone(
                "example.com",
                [
                    {
                        "name": "bad.example.com.",
                        "type": "LUA",
                        "ttl": 30,
                        "changetype": "REPLACE",
                        "records": [{"content": "A return 1", "disabled": False}],
                    }
                ],
            )
    assert caught.value.status == 422
    assert "should start with quote" in caught.value.message
    assert proxy.methods() == ["PATCH"]


async def test_a_wrong_api_key_is_a_401_reported_at_once(
    pdns: PdnsServer, proxy: FlakyProxy
) -> None:
    async with PowerDnsClient(proxy.url, api_key="wrong", retry=FAST) as client:
        with pytest.raises(PowerDnsError) as caught:
            await client.zone("example.com")
    assert (caught.value.status, caught.value.attempts) == (401, 1)
    assert proxy.methods() == ["GET"]


async def test_a_missing_zone_reads_as_none(pdns: PdnsServer) -> None:
    async with PowerDnsClient(pdns.api_url, api_key=pdns.api_key, retry=FAST) as client:
        assert await client.zone("nowhere.example") is None


async def test_a_server_that_is_not_there_fails_after_the_attempts() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    async with PowerDnsClient(f"http://127.0.0.1:{port}", api_key="k", retry=FAST) as client:
        with pytest.raises(PowerDnsError) as caught:
            await client.zone("example.com")
    assert caught.value.status is None and caught.value.attempts == 3
    assert "no response" in str(caught.value)


def test_the_backoff_doubles_up_to_its_maximum_and_follows_retry_after() -> None:
    policy = RetryPolicy(attempts=6, initial=0.5, maximum=3.0)
    assert [policy.wait(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.wait(1, retry_after=2.0) == 2.0
    assert policy.wait(1, retry_after=60.0) == 3.0
