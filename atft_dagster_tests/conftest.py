from __future__ import annotations

import pytest

from atft_dagster.market import SyntheticMarketConfig, simulate


@pytest.fixture(scope="session")
def small_config() -> SyntheticMarketConfig:
    return SyntheticMarketConfig(seed=3, n_stocks=60, n_days=120)


@pytest.fixture(scope="session")
def small_market(small_config):
    return simulate(small_config)


@pytest.fixture(scope="session")
def default_market():
    return simulate(SyntheticMarketConfig())
