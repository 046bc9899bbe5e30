"""The estate config: YAML in, a validated inventory out, or every problem at once."""

from gtm.config.errors import ConfigError, Problem
from gtm.config.inventory import Inventory, load, load_onboarded, loads, to_estate
from gtm.config.model import (
    ApiConfig,
    ClusterConfig,
    Config,
    DnsConfig,
    HealthConfig,
    PeerConfig,
    PolicyConfig,
    ProbeConfig,
    RegionConfig,
    RetryConfig,
    ServiceConfig,
    VipConfig,
)
from gtm.config.values import split_listen

__all__ = [
    "ApiConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "DnsConfig",
    "HealthConfig",
    "Inventory",
    "PeerConfig",
    "PolicyConfig",
    "ProbeConfig",
    "Problem",
    "RegionConfig",
    "RetryConfig",
    "ServiceConfig",
    "VipConfig",
    "load",
    "load_onboarded",
    "loads",
    "split_listen",
    "to_estate",
]
