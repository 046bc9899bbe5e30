"""The estate file with the services AccessPoints onboard (`load_onboarded`): what fits is
added, what does not is left out with why, and the file's own problems refuse the whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gtm.config import ConfigError, load_onboarded

ROOT = Path(__file__).resolve().parents[2]
ESTATE = ROOT / "examples" / "estate.yaml"


def service(name: str, fqdn: str, **over: Any) -> dict[str, Any]:
    return {
        "name": name,
        "fqdn": fqdn,
        "policy": "default",
        "probe": {"kind": "tcp"},
        "vips": {
            "dc1": [{"address": "127.1.1.1", "port": 18443}],
            "dc2": [{"address": "127.1.2.1", "port": 18443}],
        },
        **over,
    }


def test_the_onboarded_services_are_added_to_the_files() -> None:
    inventory, refused = load_onboarded(ESTATE, {"pay/shop": service("shop", "shop.example.com")})
    assert refused == {}
    assert inventory.services["shop"].fqdn == "shop.example.com"
    assert "foo" in inventory.services  # the file's own are all there
    shop = next(s for s in inventory.estate.services if s.name == "shop")
    assert sorted(shop.vips) == ["dc1", "dc2"]


def test_what_does_not_fit_is_left_out_with_why_and_the_rest_stays() -> None:
    inventory, refused = load_onboarded(
        ESTATE,
        {
            "pay/shop": service("shop", "shop.example.com"),
            "pay/taken-name": service("foo", "other.example.com"),
            "pay/taken-fqdn": service("pay-gw", "pay.example.com"),
            "pay/one-region": service(
                "lonely", "lonely.example.com", vips={"dc1": [{"address": "127.1.1.9"}]}
            ),
            "pay/bad-probe": service("probe", "probe.example.com", probe={"kind": "smtp"}),
            "pay/nan-port": service(
                "nan", "nan.example.com", vips={"dc1": [{"address": "127.1.1.8", "port": "x"}]}
            ),
        },
    )
    assert set(inventory.services) >= {"shop", "foo"} and "lonely" not in inventory.services
    assert inventory.services["foo"].fqdn == "foo.example.com"  # the file's, untouched
    assert set(refused) == {
        "pay/taken-name", "pay/taken-fqdn", "pay/one-region", "pay/bad-probe", "pay/nan-port",
    }  # fmt: skip
    assert refused["pay/taken-name"] == "name: 'foo' is defined twice"
    assert refused["pay/taken-fqdn"] == "fqdn: 'pay.example.com' is already the FQDN of 'pay'"
    assert "needs min_active_regions 2" in refused["pay/one-region"]
    assert refused["pay/bad-probe"].startswith("probe.kind:")


def test_a_bad_file_refuses_the_whole_whatever_is_onboarded(tmp_path: Path) -> None:
    bad = tmp_path / "estate.yaml"
    bad.write_text(ESTATE.read_text().replace("ttl: 10", "ttl: -1", 1))
    with pytest.raises(ConfigError) as e:
        load_onboarded(bad, {"pay/shop": service("shop", "shop.example.com")})
    assert any("ttl" in str(p) for p in e.value.problems)
