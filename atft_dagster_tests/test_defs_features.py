"""The enriched_features asset in Dagster: validated before writing, manifest beside it, config honoured."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest

from atft_dagster.definitions import build_definitions
from atft_dagster.defs import feature_assets
from atft_dagster.defs.partitions import trading_days_partitions
from atft_dagster.defs.resources import SyntheticMarketResource
from atft_dagster.features import default_registry
from atft_dagster.graph import GraphConfig

SMALL = SyntheticMarketResource(n_stocks=30, n_days=260)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    d = build_definitions(root, SMALL)
    keys = trading_days_partitions.get_partition_keys()
    inst = dg.DagsterInstance.ephemeral()
    res = d.resolve_job_def("ingest").execute_in_process(
        instance=inst,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[259]},
    )
    assert res.success
    return root, d, inst


def _prepare(d, inst, run_config=None):
    return d.resolve_job_def("prepare").execute_in_process(
        instance=inst, run_config=run_config or {}, raise_on_error=False
    )


def test_enriched_features_materialise_with_manifest_and_check(ingested):
    root, d, inst = ingested
    res = _prepare(d, inst)
    assert res.success
    reg = default_registry()
    df = pl.read_parquet(root / "tables" / "enriched_features.parquet")
    assert [c for c in df.columns if c in set(reg.names)] == reg.names
    manifest = json.loads((root / "tables" / "enriched_features.manifest.json").read_text())
    assert manifest["hash"] == reg.hash and manifest["n_features"] == len(reg)
    mats = {e.asset_key.path[-1]: e.materialization.metadata for e in res.get_asset_materialization_events()}
    md = mats["enriched_features"]
    assert md["n_features"].value == len(reg) and md["manifest_hash"].value == reg.hash
    assert (
        mats["stock_graph"]["edges_total"].value > 0
        and mats["stock_graph"]["mean_degree"].value >= GraphConfig().top_k
    )
    checks = {c.check_name: c.passed for c in res.get_asset_check_evaluations()}
    assert checks == {"enriched_features_schema": True, "stock_graph_sound": True}


def test_graph_config_reaches_the_asset(ingested):
    root, d, inst = ingested
    cfg = {"ops": {"stock_graph": {"config": {"top_k": 3, "rebuild_every": 20}}}}
    res = d.resolve_job_def("prepare").execute_in_process(
        instance=inst, run_config=cfg, asset_selection=[dg.AssetKey("stock_graph")]
    )
    assert res.success
    g = pl.read_parquet(root / "tables" / "stock_graph.parquet")
    md = next(e for e in res.get_asset_materialization_events()).materialization.metadata
    assert md["config"].value["top_k"] == 3
    assert g["date"].n_unique() == md["rebuild_dates"].value == len(range(0, 260, 20)) + 1


def test_config_horizons_change_the_targets(ingested):
    root, d, inst = ingested
    cfg = {"ops": {"enriched_features": {"config": {"horizons": [1, 5]}}}}
    assert _prepare(d, inst, cfg).success
    df = pl.read_parquet(root / "tables" / "enriched_features.parquet")
    assert sorted(c for c in df.columns if c.startswith("target_")) == [
        "target_1d",
        "target_1d_excess",
        "target_5d",
        "target_5d_excess",
    ]


def test_invalid_features_are_never_written(ingested, monkeypatch):
    root, d, inst = ingested
    path = root / "tables" / "enriched_features.parquet"
    assert _prepare(d, inst).success
    before = path.read_bytes()
    real = feature_assets.compute_features

    def broken(*args, **kwargs):
        df, stats = real(*args, **kwargs)
        return df.drop("sector33_code"), stats

    monkeypatch.setattr(feature_assets, "compute_features", broken)
    res = _prepare(d, inst)
    assert not res.success
    err = next(e for e in res.all_events if e.is_step_failure).event_specific_data.error.to_string()
    assert "sector33_code" in err
    assert path.read_bytes() == before, "the failed run left the previous, valid table in place"
