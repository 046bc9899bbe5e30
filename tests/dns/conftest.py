"""Shared fixtures of the DNS tests: the test estate, its tables, a server on loopback.

Most tests query a server that runs in a thread with its own event loop, so
they can use blocking clients — dnspython's `dns.query` and `dig` — while the
server answers. Tests of the asyncio behaviour itself (swaps under load, TCP
draining) run the server on the test's own loop. The values and helpers live
in `dns_estate.py`: tests import them from there, as every test folder has a
conftest.py and `from conftest import …` would get whichever came first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dns_estate import BIG_IPS, ESTATE, Running, estate, planned, running, swap_text

from gtm.config import Inventory, loads
from policies import WeightTable


@pytest.fixture(scope="session")
def inventory() -> Inventory:
    return estate()


@pytest.fixture(scope="session")
def estate_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("estate") / "estate.yaml"
    path.write_text(ESTATE.replace("BIG_IPS", BIG_IPS))
    return path


@pytest.fixture(scope="session")
def swap_inventory() -> Inventory:
    return loads(swap_text(), "swap-estate.yaml")


@pytest.fixture(scope="session")
def table(inventory: Inventory) -> WeightTable:
    return planned(inventory)


@pytest.fixture(scope="module")
def served(inventory: Inventory, table: WeightTable) -> Iterator[Running]:
    """The test estate's planned table, served for the whole module."""
    with running(inventory, table) as r:
        yield r
