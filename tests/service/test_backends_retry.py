"""The config's retry sections become the clients' `kube.RetrySettings` (the same names)."""

from __future__ import annotations

from gtm.config import RetryConfig, loads
from gtm.config.model import StoreConfig
from gtm.service.backends import cluster_settings, retry_settings
from kube import RetrySettings

ESTATE = """
regions: [{name: dc1, locality: r1/z1}]
services:
  - name: foo
    fqdn: foo.example.com
    vips: {dc1: [{address: 10.0.0.1}]}
kubernetes:
  clusters:
    - {name: k1, region: dc1, retry: {attempts: 3, backoff: 250ms, retry_after_max: 30s}}
    - {name: k2, region: dc1}
"""


def test_the_defaults_agree() -> None:
    assert retry_settings(RetryConfig()) == RetrySettings()
    assert retry_settings(StoreConfig().retry) == RetrySettings(
        backoff=0.05, backoff_max=2.0, retry_after_max=10.0, conflict_attempts=10
    )


def test_a_clusters_retry_section_reaches_its_reconciler() -> None:
    inventory = loads(ESTATE, "estate.yaml")
    k1, k2 = inventory.config.kubernetes.clusters
    assert cluster_settings(k1, inventory).retry == RetrySettings(
        attempts=3, backoff=0.25, retry_after_max=30.0
    )
    assert cluster_settings(k2, inventory).retry == RetrySettings()


def test_a_partial_store_section_keeps_the_stores_defaults() -> None:
    inventory = loads(ESTATE + "ha: {store: {retry: {attempts: 4}}}\n", "estate.yaml")
    assert retry_settings(inventory.config.ha.store.retry) == RetrySettings(
        attempts=4, backoff=0.05, backoff_max=2.0, retry_after_max=10.0, conflict_attempts=10
    )
