"""retrain end to end on a tiny market: evaluation report, champion promotion, predictions."""

from __future__ import annotations

from datetime import date

import dagster as dg
import numpy as np
import polars as pl
import pytest
from mlflow.tracking import MlflowClient

from atft_dagster.definitions import build_definitions
from atft_dagster.pipeline.layout import DataLayout
from atft_dagster.pipeline.records import ChampionState, EvaluationSummary, TrainedModel
from atft_dagster_tests.helpers import SMALL, TINY, champion_of, ingest, partition_keys, tracking


def _run_config(margin: float = 0.0, lr: float = 1e-3, test_rows: bool = True) -> dict:
    """``test_rows`` False: no graph-off or deployed rows (test-window rows only; the champion reads none)."""
    extra = {} if test_rows else {"graph_off_baseline": False, "deployed_rows": False}
    return {
        "ops": {
            "model_checkpoint": {"config": {**TINY, "lr": lr}},
            "evaluation_report": {
                "config": {
                    "lightgbm_max_rounds": 20,
                    "lightgbm_num_leaves": [7],
                    "lightgbm_min_child_samples": [50],
                    **extra,
                }
            },
            "champion_model": {"config": {"margin": margin}},
        }
    }


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrain")
    d = build_definitions(root, SMALL)
    keys = partition_keys()
    inst = dg.DagsterInstance.ephemeral()
    assert ingest(d, inst).success
    res = d.resolve_job_def("retrain").execute_in_process(instance=inst, run_config=_run_config())
    assert res.success
    return root, d, inst, res, keys


def test_evaluation_report_scores_all_models_on_the_same_days(retrained):
    root, _, _, res, _ = retrained
    report = pl.read_parquet(root / "tables" / "evaluation_report.parquet")
    test = report.filter(pl.col("window") == "test")
    models = set(test["model"])
    assert models == {
        "atft_gat_fan",
        "single_seed",
        "graph_off",
        "linear_graph",
        "ridge",
        "lightgbm",
        "momentum",
        "reversal",
        "oracle",
        # every fitted model as deployed at the test start (deployed_rows, on by default)
        "atft_gat_fan_deployed",
        "graph_off_deployed",
        "ridge_deployed",
        "lightgbm_deployed",
    }
    assert set(report["horizon"]) == {1, 5, 10, 20} and set(report["window"]) == {"test", "selection"}
    prim = test.filter(pl.col("horizon") == 1)
    assert prim["days"].n_unique() == 1  # identical test days for every model
    assert prim.filter(pl.col("model") == "oracle")["rank_ic"][0] > 0.05
    assert report.filter(pl.col("window") == "selection", pl.col("model") == "atft_gat_fan").height == 4
    sel_models = set(report.filter(pl.col("window") == "selection")["model"])
    assert {
        "ridge",
        "lightgbm",
        "linear_graph",
    } <= sel_models  # tuned there, so their selection figure is reported too
    assert not any(m.endswith("_deployed") for m in sel_models)  # refitted on it: never scored there
    by = {(r["model"], r["horizon"]): r["rank_ic"] for r in test.to_dicts()}
    assert any(by[("ridge_deployed", h)] != by[("ridge", h)] for h in (1, 5, 10, 20))
    md_file = root / "reports" / res.run_id / "report.md"
    text = md_file.read_text()
    assert "| atft_gat_fan |" in text and "of the oracle" in text
    assert "As deployed at the test start (`atft_gat_fan_deployed`" in text
    assert text.count("Agreement with the oracle") == 8 and "agreement with the oracle's ranking" in text
    agree = prim.filter(pl.col("model") == "atft_gat_fan")["oracle_agreement"][0]
    assert 0.2 < agree <= 1.0  # the embedded market's model ranks much like the true expected returns
    assert prim.filter(pl.col("model") == "oracle")["oracle_agreement"].is_nan().all()
    assert "Test window (all folds pooled; reported only" in text and "Newey-West" in text
    assert "Horizon 20d — selection window" in text and "jpx_side" in text
    assert text.count("`atft_gat_fan` minus each model, day by day") == 8  # 4 horizons x 2 windows
    assert text.count("By market state: mean daily RankIC on turbulent days") == 8
    assert "| atft_gat_fan | " in text.split("By market state")[1]
    split = prim.filter(pl.col("model") == "atft_gat_fan")
    hot, calm = split["turbulent_rank_ic"][0], split["other_rank_ic"][0]
    assert (
        calm == calm and f"{calm:.4f} (" in text.split("By market state")[1]
    )  # the cell is the column's value
    assert hot != hot or -1 <= hot <= 1  # NaN only where the test window held no turbulent day
    assert "| momentum | " in text.split("minus each model")[1] and "(lag 19)" in text
    assert (
        "what the selection window chose" in text
        and "| lightgbm | 20d | num_leaves 7, min_child_samples 50, rounds " in text
        and "| linear_graph | 1d | penalty " in text
    )
    assert (root / "reports" / res.run_id / "cumulative_ls_1d.png").exists()
    md = {e.asset_key.path[-1]: e.materialization.metadata for e in res.get_asset_materialization_events()}
    assert "data:image/png;base64" in md["evaluation_report"]["report_primary"].value
    summary = EvaluationSummary.from_json((root / "reports" / res.run_id / "summary.json").read_text())
    assert summary.report == f"reports/{res.run_id}/report.md" and summary.folds == 1
    assert summary.test_rank_ic == pytest.approx(md["evaluation_report"]["model_rank_ic_primary"].value)
    assert md["evaluation_report"]["oracle_agreement"].value == pytest.approx(agree)
    for h in (1, 5, 10, 20):  # every horizon's plots are on the asset's page
        page = md["evaluation_report"][f"report_{h}d"].value
        assert f"lag {h - 1}" in page  # that horizon's Newey-West lag
        assert "data:image/png;base64" in page


def test_first_model_is_champion_and_predictions_exist(retrained):
    root, _, _, res, _ = retrained
    champ = champion_of(root)
    assert not (root / "champion.json").exists()  # the MLflow alias is the only pointer
    ckpt = TrainedModel.from_json((root / "tables" / "model_checkpoint.json").read_text())
    assert [m.seed for m in ckpt.members] == [42, 43]  # one fold x two ensemble seeds
    assert champ.checkpoints == [m.checkpoint for m in ckpt.fold_members(0)]
    assert champ.data_end == ckpt.data_end  # the retrain sensor reads it
    assert ChampionState.from_json((root / "tables" / "champion_model.json").read_text()) == champ
    md = {e.asset_key.path[-1]: e.materialization.metadata for e in res.get_asset_materialization_events()}
    assert md["champion_model"]["decision"].value.startswith("first model")
    # the latest day is ranked by the deployment refit (through the data's last day), recorded on the champion
    assert champ.deployed_checkpoints and champ.deployed_checkpoints == ckpt.deployed_checkpoints()
    assert md["latest_predictions"]["checkpoints"].value == f"deployment refit through {champ.data_end}"
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("atft_gat_fan", "champion").version) == str(
        ckpt.mlflow_model_version
    )
    latest = pl.read_parquet(root / "tables" / "latest_predictions.parquet")
    day = latest["date"][0]
    csv = pl.read_csv(root / "predictions" / f"{day}.csv")
    assert csv.columns == ["Date", "SecuritiesCode", "Rank"] and sorted(csv["Rank"].to_list()) == list(
        range(csv.height)
    )
    assert {"pred_1d", "q10_1d", "q90_20d", "rank"} <= set(latest.columns)


def test_daily_predictions_are_byte_identical_and_refuse_missing_dates(retrained):
    root, d, inst, _, keys = retrained
    job = d.resolve_job_def("__ASSET_JOB")
    sel = [dg.AssetKey("daily_predictions")]
    res = job.execute_in_process(instance=inst, partition_key=keys[250], asset_selection=sel)
    md = res.get_asset_materialization_events()[0].materialization.metadata
    assert md["checkpoints"].value.startswith(
        f"evaluated checkpoints ({keys[250]} is before"
    )  # point in time
    first = (
        (root / "predictions" / f"{keys[250]}.csv").read_bytes(),
        (root / "tables" / "daily_predictions" / f"{keys[250]}.parquet").read_bytes(),
    )
    assert job.execute_in_process(instance=inst, partition_key=keys[250], asset_selection=sel).success
    again = (
        (root / "predictions" / f"{keys[250]}.csv").read_bytes(),
        (root / "tables" / "daily_predictions" / f"{keys[250]}.parquet").read_bytes(),
    )
    assert first == again
    res = job.execute_in_process(
        instance=inst, partition_key=keys[400], asset_selection=sel, raise_on_error=False
    )
    assert not res.success
    msg = next(e for e in res.all_events if e.is_step_failure).event_specific_data.error.to_string()
    assert "no enriched features for" in msg


def test_the_registered_champion_loads_from_mlflow_and_ranks_like_the_asset(retrained):
    """`models:/atft_gat_fan@champion` is a pyfunc model: it ranks the latest day exactly as
    latest_predictions did, and its version's record is the champion everything else reads."""
    import mlflow

    root = retrained[0]
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/atft_gat_fan@champion")
    version = MlflowClient().get_model_version_by_alias("atft_gat_fan", "champion").version
    assert str(version) == champion_of(root).mlflow_model_version
    latest = pl.read_parquet(root / "tables" / "latest_predictions.parquet")
    got = model.predict(
        {
            "features": pl.read_parquet(root / "tables" / "enriched_features.parquet").to_pandas(),
            "graph": pl.read_parquet(root / "tables" / "stock_graph.parquet"),
            "day": str(latest["date"][0]),
        }
    )
    got = pl.from_pandas(got).with_columns(pl.col("date").cast(pl.Date))
    assert got.select(latest.columns).equals(latest)


def test_the_registered_model_keeps_its_timing_pass_between_calls(retrained, tmp_path):
    """With ``timing_dir``, a caller ranking day after day keeps skip timing's state there and the next
    day continues it, and the ranking is still the asset's."""
    import mlflow

    root = retrained[0]
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/atft_gat_fan@champion")
    features = pl.read_parquet(root / "tables" / "enriched_features.parquet")
    latest = pl.read_parquet(root / "tables" / "latest_predictions.parquet")
    days = features["date"].unique().sort()
    before = days.filter(days < latest["date"][0])[-1]
    inputs = {"features": features, "graph": pl.read_parquet(root / "tables" / "stock_graph.parquet")}
    model.predict({**inputs, "day": str(before), "timing_dir": str(tmp_path)})
    kept = sorted(p.name for p in tmp_path.rglob("*.pt"))
    assert kept == [f"{before}.pt"]
    got = model.predict({**inputs, "day": str(latest["date"][0]), "timing_dir": str(tmp_path)})
    assert sorted(p.name for p in tmp_path.rglob("*.pt")) == sorted([*kept, f"{latest['date'][0]}.pt"])
    # continued, not re-read: equal to float rounding (the rolling normaliser sums in another order)
    got = pl.from_pandas(got).with_columns(pl.col("date").cast(pl.Date)).sort("code")
    want = latest.sort("code")
    assert got.select("date", "code").equals(want.select("date", "code"))
    for col in (c for c in want.columns if c.startswith(("pred_", "q"))):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-3, atol=1e-4, err_msg=col)
    assert (got["rank"] - want["rank"]).abs().max() <= 1  # at most a near-tie swapped


def test_a_range_of_daily_predictions_runs_as_one_step(retrained):
    root, d, inst, _, keys = retrained
    tags = {"dagster/asset_partition_range_start": keys[246], "dagster/asset_partition_range_end": keys[248]}
    res = d.resolve_job_def("__ASSET_JOB").execute_in_process(
        instance=inst, tags=tags, asset_selection=[dg.AssetKey("daily_predictions")]
    )
    assert res.success and len([e for e in res.all_events if e.is_step_start]) == 1
    # skip timing's pass is kept under the data directory: each day of the range continues the day before's
    md = res.get_asset_materialization_events()[-1].materialization.metadata
    assert md["skip_timing"].value == f"skip timing continued the state of {keys[247]}"
    assert {p.name for p in (root / "timing").glob("*/*.pt")} >= {f"{k}.pt" for k in keys[246:249]}
    for k in keys[246:249]:
        part = pl.read_parquet(root / "tables" / "daily_predictions" / f"{k}.parquet")
        assert part["date"].unique().to_list() == [date.fromisoformat(k)]
        assert pl.read_csv(root / "predictions" / f"{k}.csv")["Rank"].sort().to_list() == list(
            range(part.height)
        )


def test_champion_is_kept_unless_beaten_by_the_margin(retrained):
    root, d, inst, _, _ = retrained
    before = champion_of(root)
    res = d.resolve_job_def("retrain").execute_in_process(
        instance=inst, run_config=_run_config(margin=10.0, lr=5e-4, test_rows=False)
    )
    assert res.success
    md = {e.asset_key.path[-1]: e.materialization.metadata for e in res.get_asset_materialization_events()}
    decision = md["champion_model"]["decision"].value
    assert decision.startswith("kept champion") and "selection-window rank_ic" in decision
    assert champion_of(root) == before  # the alias did not move
    # the alias is the one pointer: moved by hand to the kept run's version, predictions follow it
    kept = TrainedModel.from_json((root / "tables" / "model_checkpoint.json").read_text())
    assert kept.mlflow_model_version != before.mlflow_model_version
    tracking(root).promote(kept.mlflow_model_version)

    def predict():
        return d.resolve_job_def("__ASSET_JOB").execute_in_process(
            instance=inst, asset_selection=[dg.AssetKey("latest_predictions")], raise_on_error=False
        )

    refused = predict()  # a version never promoted has no record: refused, not guessed
    (failure,) = [e for e in refused.all_events if e.is_step_failure]
    assert "whose record" in failure.event_specific_data.error.to_string()
    layout = DataLayout(root)
    record = ChampionState.from_model(kept, layout, "rank_ic", None, "promoted by hand")
    layout.champion_record(kept.mlflow_model_version).write_text(record.to_json())
    used = predict().get_asset_materialization_events()[0].materialization.metadata["champion"].value
    assert used == record.checkpoints != before.checkpoints
    tracking(root).promote(before.mlflow_model_version)


def test_the_evaluation_reports_baseline_training_on_the_console(retrained):
    _, _, inst, res, _ = retrained
    messages = [e.user_message for e in inst.all_logs(res.run_id)]
    assert any("fitting ridge and LightGBM" in m for m in messages)
    assert any("graph-off epoch 0:" in m and "val RankIC" in m for m in messages)
