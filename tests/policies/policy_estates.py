"""Small estates for the policy engine's tests."""

from __future__ import annotations

from policies import Bounds, Estate, Guardrails, Policy, Redistribute, Service, Vip

REGIONS = ("dc1", "dc2", "dc3")


def service(
    name: str, policy: Policy, regions: tuple[str, ...] = REGIONS, vips: int = 1
) -> Service:
    return Service(
        name=name,
        fqdn=f"{name}.example.com",
        policy=policy,
        vips={
            r: tuple(
                Vip(Vip.make_id(name, r, f"10.{i}.{n}.1", 443), name, r, f"10.{i}.{n}.1", 443)
                for n in range(vips)
            )
            for i, r in enumerate(regions, start=1)
        },
    )


def policy(**kw: object) -> Policy:
    kw.setdefault("guardrails", Guardrails(min_active_regions=1, max_concurrent_exits=2))
    return Policy.uniform("p", REGIONS, **kw)  # type: ignore[arg-type]


def estate(*services: Service) -> Estate:
    return Estate(REGIONS, services)


__all__ = ["REGIONS", "Bounds", "Redistribute", "estate", "policy", "service"]
