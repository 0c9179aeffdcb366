"""The run-level core (atft_dagster.pipeline) without Dagster: layout, records, and every decision."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from atft_dagster.evaluation.selection import Comparison
from atft_dagster.horizons import HORIZONS, target_horizons
from atft_dagster.model import TrainingConfig
from atft_dagster.pipeline import ChampionState, DataLayout, FoldWindows, TrainedMember, TrainedModel
from atft_dagster.pipeline.champion import decide_champion, load_champion
from atft_dagster.pipeline.evaluate import EvaluationResult, model_columns
from atft_dagster.pipeline.rank import NoFeaturesForDay, rank_day
from atft_dagster.pipeline.records import EvaluationSummary
from atft_dagster.pipeline.retrain import retrain_decision
from atft_dagster.pipeline.train_run import HorizonMismatch, require_horizons


def _member(fold: int, seed: int, run_id: str = "r1") -> TrainedMember:
    return TrainedMember(
        fold=fold,
        seed=seed,
        checkpoint=f"models/{run_id}/fold_{fold}/seed_{seed}/best.pt",
        best_epoch=2,
        epochs_run=4,
        best_val_rank_ic=0.1,
        horizon_epochs={"1d": 2, "5d": -1},
        val_rank_ic={"1d": 0.1},
        val_ic={"1d": 0.09},
        n_parameters=1000,
        seconds_per_epoch=1.5,
        samples_per_second=100.0,
        device="cpu",
    )


def _model(run_id: str = "r1", manifest: str = "m1", folds: int = 1) -> TrainedModel:
    windows = [
        FoldWindows(
            fold=k,
            gap_days=20,
            train=(date(2022, 1, 4), date(2023, 1, 4 + k)),
            val=(date(2023, 2, 1), date(2023, 5, 1)),
            selection=(date(2023, 6, 1), date(2023, 8, 1)),
            test=(date(2023, 9, 1), date(2023, 12, 1)),
            sizes=[250, 60, 40, 60],
        )
        for k in range(folds)
    ]
    return TrainedModel(
        run_id=run_id,
        training_key=f"k{run_id}",
        feature_manifest_hash=manifest,
        data_end=date(2024, 7, 3),
        config=TrainingConfig().model_dump(),
        graph_config={"top_k": 10},
        folds=windows,
        members=[_member(k, s, run_id) for k in range(folds) for s in (42, 43)],
        mlflow_model_version="3",
    )


# ---- layout ----------------------------------------------------------------------------------
def test_layout_owns_every_name_and_paths_are_relative(tmp_path):
    layout = DataLayout(tmp_path)
    inside = layout.member_dir("run", 1, 42) / "best.pt"
    assert layout.relative(inside) == "models/run/fold_1/seed_42/best.pt"
    assert layout.resolve(layout.relative(inside)) == inside
    assert layout.relative("/elsewhere/x.pt") == "/elsewhere/x.pt"  # outside the root: kept absolute
    assert layout.resolve("/elsewhere/x.pt") == Path("/elsewhere/x.pt")  # as earlier versions wrote
    names = [layout.tables_dir, layout.champion_file, layout.failures_log, layout.report_dir("r")]
    assert all(p.is_relative_to(tmp_path) for p in names)
    assert layout.predictions_csv(date(2024, 7, 3)).name == "2024-07-03.csv"


# ---- records ---------------------------------------------------------------------------------
def test_records_round_trip_through_json_and_have_a_schema():
    model = _model(folds=2)
    assert TrainedModel.from_json(model.to_json()) == model
    assert {"data_end", "members", "folds", "config"} <= set(TrainedModel.json_schema()["properties"])
    state = ChampionState.from_model(model, DataLayout(Path("/data")), "rank_ic", 0.1, "first")
    assert ChampionState.from_json(state.to_json()) == state
    assert state.data_end == date(2024, 7, 3) and state.checkpoints == [
        m.checkpoint for m in model.fold_members(0)
    ]
    assert state.folds[1]["checkpoints"][0].startswith("models/")  # relative inside the record
    with pytest.raises(ValueError, match="extra"):
        TrainedModel.model_validate({**json.loads(model.to_json()), "unknown": 1})


def test_the_champion_ranks_new_days_with_fold_0s_deployed_checkpoints(tmp_path):
    model = _model(folds=2)
    assert model.deployed_checkpoints() is None  # no member refitted: the evaluated checkpoints rank
    seed43 = "models/r1/fold_0/seed_43/deployed.pt"
    members = [
        m.model_copy(update={"deployed_checkpoint": seed43}) if (m.fold, m.seed) == (0, 43) else m
        for m in model.members
    ]
    model = model.model_copy(update={"members": members})
    # a member with nothing refitted (seed 42) ranks with its evaluated checkpoint
    assert model.deployed_checkpoints() == ["models/r1/fold_0/seed_42/best.pt", seed43]
    layout = DataLayout(tmp_path)
    state = ChampionState.from_model(model, layout, "rank_ic", 0.1, "first")
    assert ChampionState.from_json(state.to_json()) == state
    new, why = state.members_for(layout, date(2024, 7, 3))  # the data's last day: the refit may rank it
    assert new == [str(tmp_path / c) for c in model.deployed_checkpoints()] and "through 2024-07-03" in why
    old, why = state.members_for(layout, date(2024, 7, 2))  # a backfilled day: not the refit
    assert old == state.member_paths(layout) and "before 2024-07-03" in why


def test_trained_folds_resolve_checkpoints_under_the_data_directory(tmp_path):
    folds = _model(folds=2).trained_folds(DataLayout(tmp_path))
    assert [f.fold for f in folds] == [0, 1]
    assert folds[0].checkpoints == tuple(
        str(tmp_path / f"models/r1/fold_0/seed_{s}/best.pt") for s in (42, 43)
    )
    assert folds[1].train_end == date(2023, 1, 5) and folds[1].selection[0] == date(2023, 6, 1)


def test_a_champion_file_of_an_earlier_version_still_loads(tmp_path):
    (tmp_path / "champion.json").write_text(
        json.dumps({"run_id": "old", "checkpoints": ["/abs/a.pt"], "x": 1})
    )
    state = load_champion(DataLayout(tmp_path), None)  # no MLflow alias yet: the old file is the champion
    assert (
        state.folds is None
        and state.data_end is None
        and state.member_paths(DataLayout(tmp_path)) == ["/abs/a.pt"]
    )
    assert load_champion(DataLayout(tmp_path / "none"), None) is None


def test_the_alias_names_the_champion_and_its_record_must_exist(tmp_path):
    from atft_dagster.pipeline.champion import ChampionRecordMissing, require_version
    from atft_dagster.pipeline.records import ChampionState

    layout = DataLayout(tmp_path)
    (tmp_path / "champion.json").write_text(json.dumps({"run_id": "old", "checkpoints": ["a.pt"]}))
    with pytest.raises(ChampionRecordMissing, match="points at model version 3, whose record"):
        load_champion(layout, "3")  # an alias is never overruled by the old file
    new = ChampionState(run_id="r3", folds=None, checkpoints=["b.pt"], mlflow_model_version="3")
    layout.champion_record(require_version(new)).parent.mkdir()
    layout.champion_record("3").write_text(new.to_json())
    assert load_champion(layout, "3") == new
    with pytest.raises(ChampionRecordMissing, match="no registered MLflow model version"):
        require_version(new.model_copy(update={"mlflow_model_version": None}))


# ---- champion --------------------------------------------------------------------------------
class _Compare:
    def __init__(self, promote: bool):
        self.calls, self.promote = 0, promote

    def __call__(self, candidate, champion) -> Comparison:
        self.calls += 1
        assert candidate[0].checkpoints != champion[0].checkpoints
        verdict = "promoted" if self.promote else "kept champion"
        return Comparison(0.2 if self.promote else 0.05, 0.1, [0], self.promote, f"{verdict}: ...")


@pytest.mark.parametrize(
    ("previous", "decision"),
    [
        (None, "first model"),
        ("same run", "already champion"),
        ("other manifest", "another feature manifest"),
        ("legacy", "earlier version"),
    ],
)
def test_promotion_without_a_comparison(tmp_path, previous, decision):
    layout, candidate, compare = DataLayout(tmp_path), _model("r2"), _Compare(False)
    prev = {
        None: None,
        "same run": ChampionState.from_model(candidate, layout, "rank_ic", None, ""),
        "other manifest": ChampionState.from_model(_model("r1", "m0"), layout, "rank_ic", None, ""),
        "legacy": ChampionState(run_id="r0", folds=None, checkpoints=["a.pt"], feature_manifest_hash="m1"),
    }[previous]
    d = decide_champion(candidate, prev, layout, compare, "rank_ic")
    assert d.promote and decision in d.decision and compare.calls == 0
    assert d.state.run_id == "r2" and d.state.data_end == candidate.data_end


@pytest.mark.parametrize("wins", [True, False])
def test_promotion_follows_the_selection_comparison(tmp_path, wins):
    layout = DataLayout(tmp_path)
    champion = ChampionState.from_model(_model("r1"), layout, "rank_ic", 0.1, "first model: promoted")
    compare = _Compare(wins)
    d = decide_champion(_model("r2"), champion, layout, compare, "rank_ic")
    assert compare.calls == 1 and d.promote is wins
    assert d.state.run_id == ("r2" if wins else "r1")  # kept: champion.json is unchanged
    assert d.state == champion or wins


# ---- retrain policy --------------------------------------------------------------------------
def test_retrain_policy_counts_trading_days_since_the_champions_data():
    end = date(2024, 7, 3)  # Wednesday
    assert not retrain_decision(None, end, 5).retrain
    assert retrain_decision(date(2024, 7, 10), None, 5).reason == "no champion yet"
    one = retrain_decision(date(2024, 7, 4), end, 5)
    assert not one.retrain and one.new_trading_days == 1 and "need 5" in one.reason
    four = retrain_decision(date(2024, 7, 9), end, 5)  # Thu, Fri, Mon, Tue: the weekend does not count
    assert not four.retrain and four.new_trading_days == 4
    five = retrain_decision(date(2024, 7, 10), end, 5)
    assert five.retrain and five.new_trading_days == 5
    assert not retrain_decision(date(2024, 7, 10), end, 5, active_retrain="STARTED").retrain
    assert not retrain_decision(date(2024, 7, 1), end, 1).retrain  # the panel is behind the champion


# ---- horizons --------------------------------------------------------------------------------
def test_horizons_have_one_default_and_a_mismatch_is_refused():
    assert TrainingConfig().horizons == list(HORIZONS)
    cols = ["date", "code", "target_1d", "target_5d", "target_1d_excess", "target_5d_excess"]
    assert target_horizons(cols) == (1, 5)
    require_horizons(TrainingConfig(horizons=[1, 5], horizon_weights=[1.0, 0.5], primary_horizon=1), cols)
    with pytest.raises(HorizonMismatch, match=r"include \[10, 20\].*\[1, 5\]"):
        require_horizons(TrainingConfig(), cols)


# ---- evaluation ------------------------------------------------------------------------------
def test_model_columns_and_the_oracle_fraction():
    frame = pl.DataFrame(
        {"pred_1d": [0.1], "ridge_1d": [0.2], "momentum": [0.3], "oracle_1d": [0.4], "deployed_1d": [0.5]}
    )
    assert model_columns(1, frame) == {
        "atft_gat_fan": "pred_1d",
        "ridge": "ridge_1d",
        "momentum": "momentum",
        "oracle": "oracle_1d",
        "atft_gat_fan_deployed": "deployed_1d",
    }
    table = pl.DataFrame(
        {
            "window": ["test", "test", "selection"],
            "horizon": [1, 1, 1],
            "model": ["atft_gat_fan", "oracle", "atft_gat_fan"],
            "rank_ic": [0.06, 0.08, 0.05],
        }
    )
    r = EvaluationResult(table, pl.DataFrame(), "", {1: "t"}, {1: []}, 1, 10, 1, 2)
    assert r.oracle_fraction == pytest.approx(0.75) and r.score("selection") == 0.05
    summary = r.summary("run1", "reports/run1/report.md")
    assert EvaluationSummary.from_json(summary.to_json()) == summary
    assert (
        summary.test_rank_ic == 0.06
        and len(summary.rows) == 3
        and summary.oracle_fraction == pytest.approx(0.75)
    )
    no_oracle = EvaluationResult(
        table.filter(pl.col("model") != "oracle"), pl.DataFrame(), "", {}, {}, 1, 10, 1, 2
    )
    assert no_oracle.oracle_fraction is None
    assert r.oracle_agreement is None  # a table without the column (a run before it existed)
    agreeing = EvaluationResult(
        table.with_columns(pl.Series("oracle_agreement", [0.7, float("nan"), 0.6])),
        pl.DataFrame(),
        "",
        {},
        {},
        1,
        10,
        1,
        2,
    )
    assert agreeing.oracle_agreement == pytest.approx(0.7)  # the model's, test window, primary horizon
    nan_only = table.with_columns(pl.lit(float("nan")).alias("oracle_agreement"))
    assert EvaluationResult(nan_only, pl.DataFrame(), "", {}, {}, 1, 10, 1, 2).oracle_agreement is None


def test_ranking_a_day_without_features_names_the_range(tmp_path):
    features = pl.DataFrame({"date": [date(2024, 7, 1), date(2024, 7, 2)], "code": ["1301", "1301"]})
    champion = ChampionState(run_id="r", folds=None, checkpoints=["a.pt"])
    with pytest.raises(NoFeaturesForDay, match="2024-07-05.*2024-07-01 .. 2024-07-02"):
        rank_day(champion, DataLayout(tmp_path), features, None, None, date(2024, 7, 5))


# ---- landing ---------------------------------------------------------------------------------
def test_landing_plan_requests_each_file_version_once_and_quarantines_bad_ones(tmp_path):
    import os

    from atft_dagster.landing import land_days, next_days_to_land
    from atft_dagster.pipeline.landing_plan import plan_landing
    from atft_dagster.sources.files import LandingFileSource
    from atft_dagster_tests.helpers import SMALL

    landing, quarantine = tmp_path / "landing", tmp_path / "q"
    days = next_days_to_land(SMALL.source(), landing, 2)
    land_days(SMALL.source(), landing, days)
    (landing / "daily_quotes_bad.csv").write_text(
        "Date,Code,O,H,L,C,Vo,Va,AdjFactor\n2024-01-04,1301,x,1,1,1,1,1,1\n"
    )
    source = LandingFileSource(landing, quarantine)
    plan = plan_landing(source, {})
    assert sorted(d for r in plan.requests for d in r.days) == days and len(plan.requests) == 2
    assert [e.path.name for e in plan.rejected] == ["daily_quotes_bad.csv"]
    assert (quarantine / "daily_quotes_bad.csv").exists() and any("quarantined" in n for n in plan.notes)
    again = plan_landing(source, plan.seen)
    assert not again.requests and not again.rejected  # nothing runs twice
    first = sorted(landing.glob("daily_quotes_*.csv"))[0]
    os.utime(first, (first.stat().st_atime, first.stat().st_mtime + 10))
    rewritten = plan_landing(source, plan.seen)
    assert [r.file for r in rewritten.requests] == [first.name]  # a rewritten file is ingested again
    assert rewritten.requests[0].key != next(r.key for r in plan.requests if r.file == first.name)


# ---- panel -----------------------------------------------------------------------------------
def test_panel_integrity_needs_unique_keys_and_known_sectors():
    from atft_dagster.panel import panel_integrity

    good = pl.DataFrame(
        {"date": [date(2024, 7, 1)] * 3, "code": ["1", "2", "3"], "sector33_code": ["0050"] * 3}
    )
    assert panel_integrity(good).passed
    dup = pl.concat([good, good.head(1)])
    assert panel_integrity(dup).duplicate_keys == 2 and not panel_integrity(dup).passed
    gap = good.with_columns(
        pl.when(pl.col("code") == "3").then(None).otherwise(pl.col("sector33_code")).alias("sector33_code")
    )
    r = panel_integrity(gap)
    assert (
        not r.passed
        and r.sector33_coverage == pytest.approx(2 / 3)
        and r.rows_without_sector33["code"].to_list() == ["3"]
    )
    assert panel_integrity(gap, min_coverage=0.5).passed


# ---- nightly ---------------------------------------------------------------------------------
def test_nightly_runs_only_right_after_the_panel():
    from atft_dagster.pipeline.nightly import nightly_decision

    assert nightly_decision(date(2024, 7, 1), date(2024, 6, 28)).run  # Fri -> Mon
    assert nightly_decision(date(2024, 6, 28), date(2024, 6, 28)).run  # the same day again: idempotent
    assert "not an XTKS trading day" in nightly_decision(date(2024, 7, 15), date(2024, 7, 12)).reason
    assert not nightly_decision(date(2024, 7, 1), None).run
    gap = nightly_decision(date(2024, 7, 3), date(2024, 6, 28))
    assert not gap.run and "2 trading day(s)" in gap.reason and "2024-07-01 .. 2024-07-02" in gap.reason


# ---- ingest guards ---------------------------------------------------------------------------
def test_a_source_lacking_a_requested_day_or_a_panel_gap_fails_naming_the_days():
    from atft_dagster.panel import PanelError, require_no_gaps
    from atft_dagster.sources.base import MissingSourceData, calendar_frame, require_days

    days = [date(2024, 7, 1), date(2024, 7, 2), date(2024, 7, 3)]
    frame = pl.DataFrame({"date": [days[0], days[2]]})
    require_days(frame, [days[0], days[2]], "x")
    with pytest.raises(MissingSourceData, match=r"source 'x' has no rows for 1 .*2024-07-02"):
        require_days(frame, days, "source 'x'")
    cal = calendar_frame(days[0], days[-1], days)
    require_no_gaps(pl.Series(days), cal)
    with pytest.raises(PanelError, match=r"1 missing trading day.*2024-07-02"):
        require_no_gaps(frame["date"], cal)
