"""A full-OHLCV history from 2017 ingests through `atft ingest`, from the J-Quants API (a stand-in server on
127.0.0.1 that answers as the API does) and from J-Quants-layout landing files, with the first partition
moved by ATFT_HISTORY_START. Each runs the real CLI in a subprocess: the partitions are built at import."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import polars as pl
import pytest

from atft_dagster.landing import land_days
from atft_dagster.market import market_preset
from atft_dagster.pipeline.layout import DataLayout
from atft_dagster.sources.synthetic import SyntheticSource
from atft_dagster_tests.jquants_server import FakeJQuants, market_responder

HISTORY = market_preset("demo", seed=17, n_stocks=12, start=date(2017, 1, 4), n_days=40)


def _ingest(env: dict[str, str], start: date, end: date) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "atft_dagster.cli", "ingest", "--start", str(start), "--end", str(end)]
    return subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("source", ["jquants", "files"])
def test_a_full_ohlcv_history_from_2017_ingests(tmp_path, source):
    market = SyntheticSource(HISTORY)
    days = market.history_days()
    assert days[0] == date(2017, 1, 4)
    layout = DataLayout(tmp_path / "data")
    env = {
        "ATFT_HISTORY_START": "2017-01-01",
        "ATFT_DATA_DIR": str(layout.root),
        "DAGSTER_HOME": str(tmp_path),
        "ATFT_MARKET_SOURCE": source,
    }
    if source == "files":
        layout.landing_dir.mkdir(parents=True)
        land_days(market, layout.landing_dir, days)
        done = _ingest(env, days[0], days[-1])
        requests: list[str] = []
    else:
        with FakeJQuants(responder=market_responder(market, page_rows=1000)) as server:
            env |= {"JQUANTS_API_KEY": "test-key-not-real", "ATFT_JQUANTS_BASE_URL": server.base_url}
            done = _ingest(env, days[0], days[-1])
        requests = server.paths
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"ingest {len(days)} trading days {days[0]} .. {days[-1]}" in done.stdout

    panel = pl.read_parquet(layout.tables_dir / "market_panel.parquet")
    assert panel["date"].unique().sort().to_list() == days
    assert panel["code"].n_unique() == HISTORY.n_stocks
    expected = market.daily_quotes(days[0], days[-1]).select("date", "code", "open", "high", "low", "close")
    got = panel.select("date", "code", "open", "high", "low", "close").join(expected, on=["date", "code"])
    assert got.height == expected.height
    for col in ("open", "high", "low", "close"):
        assert (got[col] - got[f"{col}_right"]).abs().max() < 1e-6, col
    assert panel["volume"].null_count() == 0 and panel["sector33_code"].null_count() == 0
    if source == "jquants":  # the whole market by date, one session a request
        assert requests.count("/v2/equities/bars/daily") == len(days)
