"""Which service an AccessPoint with `spec.gtm` onboards, and what a member keeps of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from accesspoints import UpstreamVip, parse_accesspoint
from gtm.service.accesspoint_apply import Discovered
from gtm.service.onboarding import OnboardedFile, onboarded_services, service_of


def ap(name: str = "shop", **gtm: Any) -> Any:
    return parse_accesspoint(
        {
            "apiVersion": "gtm.io/v1alpha1",
            "kind": "AccessPoint",
            "metadata": {"name": name, "namespace": "pay"},
            "spec": {
                "scope": {"clusters": ["dc1", "dc2"]},
                "trafficTemplate": {
                    "service": {"spec": {"type": "LoadBalancer", "ports": [{"port": 8443}]}}
                },
                **({"gtm": {"fqdn": f"{name}.example.com", **gtm}} if gtm is not None else {}),
            },
        }
    )


VIPS = (
    UpstreamVip("dc2", "dc2", "region02/az01", "127.1.2.1"),
    UpstreamVip("dc1", "dc1", "region01/az01", "127.1.1.1"),
)


def test_an_ap_with_gtm_is_a_service_of_its_vips_per_region() -> None:
    assert service_of(ap(policy="critical"), Discovered(VIPS)) == {
        "name": "shop",
        "fqdn": "shop.example.com",
        "policy": "critical",
        "probe": {"kind": "tcp"},  # an L4 entry: its port answering, unless the AP says more
        "vips": {
            "dc1": [{"address": "127.1.1.1", "port": 8443}],
            "dc2": [{"address": "127.1.2.1", "port": 8443}],
        },
    }
    probe = {"kind": "https", "path": "/healthz"}
    assert service_of(ap(probe=probe), Discovered(VIPS))["probe"] == probe  # type: ignore[index]


def test_nothing_is_onboarded_without_vips_or_a_gtm_section() -> None:
    assert service_of(ap(), Discovered()) is None
    plain = parse_accesspoint({**_doc(), "spec": {"scope": {"clusters": ["dc1"]}}})
    assert service_of(plain, Discovered(VIPS)) is None


def _doc() -> dict[str, Any]:
    return {"apiVersion": "gtm.io/v1alpha1", "kind": "AccessPoint",
            "metadata": {"name": "plain", "namespace": "pay"}}  # fmt: skip


def test_a_partial_discovery_keeps_what_the_ap_had() -> None:
    before = {"pay/shop": service_of(ap(), Discovered(VIPS))}
    partial = {"shop": Discovered(VIPS[1:], {"dc2": "timeout"})}  # dc2 unread: not gone
    assert onboarded_services([ap()], partial, before) == before  # type: ignore[arg-type]
    whole = {"shop": Discovered(VIPS[1:])}  # dc2 read, its VIP gone
    got = onboarded_services([ap()], whole, before)  # type: ignore[arg-type]
    assert list(got["pay/shop"]["vips"]) == ["dc1"]


def test_the_saved_set_survives_a_restart_and_a_bad_file_is_ignored(tmp_path: Path) -> None:
    saved = OnboardedFile(tmp_path)
    assert saved.read() == {}
    services = {"pay/shop": service_of(ap(), Discovered(VIPS))}
    saved.write(services)  # type: ignore[arg-type]
    assert saved.read() == services
    for bad in ("{not json", "[1, 2]", json.dumps({"pay/shop": 3}), "\x00\x01"):
        saved.path.write_text(bad)
        assert saved.read() == {}  # the next scan onboards them again
