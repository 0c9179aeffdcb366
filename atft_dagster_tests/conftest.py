from __future__ import annotations

import os

# Under pytest-xdist (`./run test -n 2`) each worker gets one core's worth of threads, and so do the
# processes it starts: two workers with two threads each would oversubscribe two cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)

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
