"""Jobs. ``ingest`` loads trading days (a partition range runs as one step) and rebuilds the panel."""

from __future__ import annotations

import dagster as dg

from atft_dagster.defs.feature_assets import FEATURES_GROUP
from atft_dagster.defs.market_assets import MARKET_GROUP, TRUTH_GROUP
from atft_dagster.defs.model_assets import MODEL_GROUP

ingest_job = dg.define_asset_job(
    name="ingest",
    selection=dg.AssetSelection.groups(MARKET_GROUP),
    description="Raw quotes and TOPIX for the requested trading days, then sector master, calendar and market panel.",
)

market_truth_job = dg.define_asset_job(
    name="synthetic_truth",
    selection=dg.AssetSelection.groups(TRUTH_GROUP),
    description="Synthetic market only: oracle and hidden peer network.",
)

prepare_job = dg.define_asset_job(
    name="prepare",
    selection=dg.AssetSelection.groups(FEATURES_GROUP),
    description="Model inputs from the market panel: enriched features and the stock graph.",
)

train_job = dg.define_asset_job(
    name="train",
    selection=dg.AssetSelection.groups(MODEL_GROUP),
    description="Train ATFT-GAT-FAN on the current features and graph (GPU pool).",
)

retrain_job = dg.define_asset_job(
    name="retrain",
    selection=dg.AssetSelection.assets(
        "sector_master",
        "trading_calendar",
        "market_panel",
        "enriched_features",
        "stock_graph",
        "model_checkpoint",
        "evaluation_report",
        "champion_model",
        "latest_predictions",
    ),
    description="market panel -> features -> graph -> model checkpoint -> evaluation report -> champion -> "
    "predictions for the latest day. Configure every step in the launchpad, under ops, then the asset's name, then config.",
)

nightly_job = dg.define_asset_job(
    name="nightly",
    selection=dg.AssetSelection.groups(MARKET_GROUP)
    | dg.AssetSelection.assets("enriched_features", "stock_graph", "daily_predictions"),
    description="For one trading day: ingest it, refresh the panel, features and graph, predict with the champion.",
)

JOBS = [ingest_job, prepare_job, train_job, retrain_job, nightly_job, market_truth_job]
