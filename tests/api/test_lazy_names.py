"""Packages that load names on first use export exactly what they list."""

from __future__ import annotations

import importlib

import pytest

LAZY_PACKAGES = ["gtm.api", "chaos.drills", "chaos.estate"]


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_listed_name_loads(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
        assert name in dir(module)


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_unknown_name_is_an_attribute_error(package: str) -> None:
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match=f"{package}.*no_such_name"):
        module.no_such_name  # noqa: B018
