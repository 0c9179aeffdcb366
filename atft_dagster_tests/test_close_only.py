"""A user's own closes in the JPX-Kaggle layout (Open = High = Low = Close, Volume empty, no TOPIX file,
some stocks missing on some sessions) go through ingest -> retrain -> report with no hand edits."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import polars as pl
import pytest

from atft_dagster.definitions import build_definitions
from atft_dagster.defs.resources import LandingFilesResource
from atft_dagster.features import default_registry
from atft_dagster.features.support import CLOSE_ONLY
from atft_dagster.sources.files import DERIVED_INDEX
from atft_dagster_tests.helpers import SMALL, TINY, ingest

SEGMENTS = {"Prime": "Prime Market", "Standard": "Standard Market", "Growth": "Growth Market"}


def _kaggle_close_only(folder) -> int:
    """stock_prices.csv (closes only, 1% of stock-sessions left out) and stock_list.csv from the
    synthetic market; returns the stock-sessions left out."""
    src = SMALL.source()
    days = src.history_days()
    q = src.daily_quotes(days[0], days[-1]).sort("code", "date")
    keep = np.random.default_rng(0).random(q.height) > 0.01
    first_last = (pl.col("date") == pl.col("date").min().over("code")) | (
        pl.col("date") == pl.col("date").max().over("code")
    )
    q = q.filter(pl.Series(keep) | first_last)  # no-trade days inside each stock's history
    prices = q.select(
        pl.col("date").dt.strftime("%Y-%m-%d").alias("Date"),
        pl.col("code").cast(pl.Int64).alias("SecuritiesCode"),
        *[pl.col("close").alias(c) for c in ("Open", "High", "Low", "Close")],
        pl.lit(None, pl.Int64).alias("Volume"),
        # Kaggle records a split's factor on the last row before the ex-date
        pl.col("adj_factor").shift(-1).over("code").fill_null(1.0).alias("AdjustmentFactor"),
    )
    prices.write_csv(folder / "stock_prices.csv")
    m = src.sector_master(days[-1]).sort("code", "valid_from").unique("code", keep="first")
    m.select(
        pl.col("code").cast(pl.Int64).alias("SecuritiesCode"),
        pl.lit(days[0].strftime("%Y%m%d")).alias("EffectiveDate"),
        pl.col("name").alias("Name"),
        pl.col("market_segment").replace_strict(SEGMENTS).alias("NewMarketSegment"),
        pl.col("sector33_code").cast(pl.Int64).cast(pl.String).alias("33SectorCode"),
        pl.col("sector17_code").cast(pl.Int64).cast(pl.String).alias("17SectorCode"),
    ).write_csv(folder / "stock_list.csv")
    return int((~keep).sum())


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    root = tmp_path_factory.mktemp("close_only")
    landing = root / "landing"
    landing.mkdir()
    left_out = _kaggle_close_only(landing)
    d = build_definitions(root, LandingFilesResource(landing_dir=str(landing)))
    inst = dg.DagsterInstance.ephemeral()
    ingested = ingest(d, inst)
    config = {
        "ops": {
            "model_checkpoint": {"config": TINY},
            "evaluation_report": {
                "config": {
                    "lightgbm_max_rounds": 10,
                    "lightgbm_num_leaves": [7],
                    "graph_off_baseline": False,
                    "deployed_rows": False,
                }
            },
        }
    }
    retrained = d.resolve_job_def("retrain").execute_in_process(instance=inst, run_config=config)
    return root, ingested, retrained, left_out


def test_close_only_files_ingest_with_a_derived_index_and_no_trade_days(ran):
    root, ingested, _, left_out = ran
    assert ingested.success and left_out > 0
    md = {
        e.asset_key.path[-1]: e.materialization.metadata for e in ingested.get_asset_materialization_events()
    }
    assert md["topix_index"]["index"].value == DERIVED_INDEX
    assert md["market_panel"]["no_trade_stock_days"].value >= left_out


def test_close_only_files_train_and_the_report_says_what_was_dropped(ran):
    root, _, retrained, _ = ran
    assert retrained.success
    manifest = json.loads((root / "tables" / "enriched_features.manifest.json").read_text())
    assert 0 < manifest["n_features"] < len(default_registry())
    assert manifest["dropped"]["ret_intraday"] == CLOSE_ONLY
    report = next(root.glob("reports/*/report.md")).read_text()
    assert "## Inputs" in report and "closes only" in report and "no volume" in report
    # deployed_rows off: no model is scored as deployed at the test start
    assert "As deployed at the test start" not in report and "_deployed |" not in report
    table = pl.read_parquet(root / "tables" / "evaluation_report.parquet")
    assert not table.filter(pl.col("model").str.ends_with("_deployed")).height
    features = pl.read_parquet(root / "tables" / "enriched_features.parquet")
    assert "ret_intraday" not in features.columns and "ret_1d" in features.columns
    assert list((root / "champions").glob("v*.json")) and list((root / "predictions").glob("*.csv"))
