"""evaluation_report, champion_model and daily_predictions."""

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import mlflow
import polars as pl
from pydantic import Field

from atft_dagster.defs.mlflow_resource import MlflowTracking
from atft_dagster.defs.model_assets import REGISTERED_MODEL, TorchDevice
from atft_dagster.defs.partitions import partition_date, trading_days_partitions
from atft_dagster.defs.resources import MarketSourceResource, ProjectPaths, SyntheticMarketResource
from atft_dagster.evaluation.baselines import BaselineConfig, factor_baselines, learned_baselines
from atft_dagster.evaluation.report import (
    TABLE_METRICS,
    baseline_choices_md,
    embed_png,
    plots,
    score_models,
    table_md,
)
from atft_dagster.evaluation.selection import TrainedFold, compare_on_selection, folds_from_rows
from atft_dagster.features import default_registry
from atft_dagster.model import TrainingConfig
from atft_dagster.storage import write_json_atomic, write_parquet_atomic, write_text_atomic
from atft_dagster.training.checkpoint import load_checkpoint
from atft_dagster.training.daily import predict_day, ranking_csv
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ensemble import ensemble_predict
from atft_dagster.training.linear_graph import linear_graph_baseline
from atft_dagster.training.split import Split
from atft_dagster.training.train import train

EVAL_GROUP = "evaluation"
CHAMPION_FILE = "champion.json"


class EvaluationConfig(dg.Config, BaselineConfig):
    """Report settings, and every field of :class:`atft_dagster.evaluation.baselines.BaselineConfig`."""

    min_stocks_per_date: int = Field(
        20, description="Test days with fewer stocks are excluded (and counted)."
    )
    graph_off_baseline: bool = Field(True, description="Also train the same model with the graph block off.")


def _with_columns(frame: pl.DataFrame, other: pl.DataFrame, names: dict[str, str]) -> pl.DataFrame:
    """Left-join ``other``'s columns (renamed old -> new) on (date, code)."""
    return frame.join(
        other.select("date", "code", *[pl.col(a).alias(b) for a, b in names.items()]),
        on=["date", "code"],
        how="left",
    )


def _fold_frames(
    fold: TrainedFold,
    split: Split,
    cfg: TrainingConfig,
    config: EvaluationConfig,
    data: PanelTensors,
    enriched_features: pl.DataFrame,
    registry,
    torch_device: TorchDevice,
    log: Callable[[str], None],
) -> tuple[pl.DataFrame, pl.DataFrame, list[dict]]:
    """(test rows, selection rows, the learned baselines' choices) of one fold: the seed ensemble, its first
    member alone and the baselines. Learned baselines are fitted on the fold's training dates, stopped on
    its validation window and tuned on its selection window. ``log`` reports progress (the console)."""
    precision = torch_device.precision
    single = {f"pred_{h}d": f"single_seed_{h}d" for h in cfg.horizons}
    # one pass over both windows (each member is loaded once); ranks are per date, so splitting after is exact
    ens, members = ensemble_predict(fold.checkpoints, data, split.selection + split.test, precision)
    frame = _with_columns(ens, members[0], single)
    frame = frame.join(
        factor_baselines(enriched_features, frame.select("date", "code")), on=["date", "code"], how="left"
    ).with_columns(pl.lit(fold.fold).alias("fold"))
    test_dates = [data.dates[t] for t in split.test]
    windows = {w: [data.dates[t] for t in getattr(split, w)] for w in ("train", "val", "selection")}
    log(f"fold {fold.fold}: fitting ridge and LightGBM (tuned on the selection window)")
    fit = learned_baselines(
        enriched_features,
        registry,
        windows,
        frame.select("date", "code"),
        cfg.horizons,
        BaselineConfig(**{k: getattr(config, k) for k in BaselineConfig.model_fields}),
        input_clip=cfg.input_clip,
        label_clip=cfg.label_clip,
        min_stocks=config.min_stocks_per_date,
        seed=cfg.seed,
    )
    frame = frame.join(fit.predictions, on=["date", "code"], how="left")
    log(f"fold {fold.fold}: fitting the linear graph baseline (penalty chosen on the selection window)")
    lin, lin_choices = linear_graph_baseline(
        data, cfg, split, config.linear_graph_penalties, config.min_stocks_per_date, precision
    )
    frame = frame.join(lin, on=["date", "code"], how="left")
    test = frame.filter(pl.col("date").is_in(test_dates))
    selection = frame.filter(~pl.col("date").is_in(test_dates))
    if config.graph_off_baseline:
        off_cfg = cfg.model_copy(update={"use_graph": False})
        log(f"fold {fold.fold}: training the graph-off baseline (up to {off_cfg.epochs} epochs)")

        def on_epoch(e) -> None:
            ric = {k: round(v, 4) for k, v in e.val_rank_ic.items()}
            log(f"fold {fold.fold} graph-off epoch {e.epoch}: {e.seconds:.1f}s, val RankIC {ric}")

        with tempfile.TemporaryDirectory() as tmp:
            res = train(data, off_cfg, split, Path(tmp), {"baseline": "graph_off"}, precision, on_epoch)
            off, _ = ensemble_predict([res.best_checkpoint], data, split.test, precision)
        test = _with_columns(test, off, {f"pred_{h}d": f"graph_off_{h}d" for h in cfg.horizons})
    return test, selection, [{"fold": fold.fold, **c} for c in fit.choices + lin_choices]


def _model_columns(h: int, frame: pl.DataFrame) -> dict[str, str]:
    """Display name -> prediction column, for the models present in ``frame``."""
    cols = {
        "atft_gat_fan": f"pred_{h}d",
        "single_seed": f"single_seed_{h}d",
        "graph_off": f"graph_off_{h}d",
        "linear_graph": f"linear_graph_{h}d",
        "ridge": f"ridge_{h}d",
        "lightgbm": f"lightgbm_{h}d",
        "momentum": "momentum",
        "reversal": "reversal",
        "oracle": f"oracle_{h}d",
    }
    return {name: col for name, col in cols.items() if col in frame.columns}


@dg.asset(
    group_name=EVAL_GROUP,
    pool="gpu",
    kinds={"polars", "mlflow"},
    description="Per horizon and window, for the seed-ensemble model, one member alone and the baselines (graph "
    "block off, the linear graph model, ridge, LightGBM, momentum, reversal, and the oracle on the synthetic market), on exactly the same "
    "days and stocks: IC, RankIC, ICIR, Newey-West t, hit rate, quintile long-short, JPX Sharpe, deciles. The "
    "test window (all walk-forward folds pooled) is reported only; the selection window is what champion "
    "promotion reads. Plots and a Markdown report in data/reports, in a folder named after the run id.",
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    model_checkpoint: pl.DataFrame,
    enriched_features: pl.DataFrame,
    stock_graph: pl.DataFrame,
    torch_device: TorchDevice,
    paths: ProjectPaths,
    mlflow_tracking: MlflowTracking,
    market_source: MarketSourceResource,
) -> pl.DataFrame:
    device = torch_device.resolve()
    folds = folds_from_rows(model_checkpoint.to_dicts())
    cfg = TrainingConfig.from_recorded(load_checkpoint(Path(folds[0].checkpoints[0]))["config"])
    registry = default_registry()
    data = PanelTensors(
        enriched_features, registry, stock_graph, cfg.horizons, cfg.seq_len, cfg.input_clip, device
    )
    tests, selections, splits, choices = [], [], [], []
    for fold in folds:
        split = Split.from_dict(load_checkpoint(Path(fold.checkpoints[0]))["split"])
        splits.append(split)
        test, sel, chosen = _fold_frames(
            fold, split, cfg, config, data, enriched_features, registry, torch_device, context.log.info
        )
        choices += chosen
        tests.append(test)
        selections.append(sel)
    windows = {"test": pl.concat(tests, how="diagonal"), "selection": pl.concat(selections, how="diagonal")}
    if isinstance(market_source, SyntheticMarketResource):
        for name, frame in windows.items():
            oracle = market_source.source().oracle(frame["date"].min(), frame["date"].max())
            windows[name] = frame.join(oracle, on=["date", "code"], how="left")
    out_dir = paths.root / "reports" / context.run_id
    rows, sections, md_meta = [], {"test": [], "selection": []}, {}
    for window, frame in windows.items():
        for h in cfg.horizons:
            reports, daily = score_models(
                frame, _model_columns(h, frame), f"label_{h}d", config.min_stocks_per_date, h - 1
            )
            table = table_md(reports, h, window)
            images = plots(daily, reports, out_dir, h) if window == "test" else []
            sections[window].append(table + "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in images) + "\n")
            if h == cfg.primary_horizon and window == "test":
                md_meta["report_primary"] = dg.MetadataValue.md(
                    table + "\n" + "\n".join(embed_png(p) for p in images)
                )
            for name, r in reports.items():
                rows.append(
                    {
                        "window": window,
                        "horizon": h,
                        "model": name,
                        **{m: float(getattr(r, m)) for m in TABLE_METRICS},
                    }
                )
    result = pl.DataFrame(rows)
    prim = result.filter((pl.col("horizon") == cfg.primary_horizon) & (pl.col("window") == "test"))
    model_score = prim.filter(pl.col("model") == "atft_gat_fan")["rank_ic"][0]
    oracle_score = prim.filter(pl.col("model") == "oracle")["rank_ic"].to_list()
    described = [s.describe(data.dates) for s in splits]
    header = (
        f"# Evaluation report — run {context.run_id}\n\n"
        f"Model: seed ensemble of {len(folds[0].checkpoints)} (per-date mean of the members' cross-sectional "
        f"ranks); `single_seed` is its first member alone. {len(folds)} walk-forward fold(s):\n\n"
        + "\n".join(
            f"- fold {d['fold']}: train {d['train']}, validation {d['val']} (early stopping), selection "
            f"{d['selection']} (champion promotion), test {d['test']} (reported only)"
            for d in described
        )
        + "\n\nEvery model is scored on the same (date, code) rows of a window. t-statistics are Newey-West with "
        "lag h - 1.\n\n"
    )
    if oracle_score:
        header += (
            f"Test window: model RankIC ({cfg.primary_horizon}d) = {model_score:.4f} = "
            f"**{model_score / oracle_score[0]:.2f} of the oracle** ({oracle_score[0]:.4f}).\n\n"
        )
    body = (
        "## Test window (all folds pooled; reported only, no decision reads it)\n\n"
        + "\n".join(sections["test"])
        + "\n## Selection window (all folds pooled; champion promotion reads the model's figure)\n\n"
        + "\n".join(sections["selection"])
        + "\n"
        + baseline_choices_md(choices)
    )
    report_path = out_dir / "report.md"
    write_text_atomic(header + body, report_path)
    write_parquet_atomic(windows["test"], out_dir / "test_predictions.parquet")
    with mlflow_tracking.run(context.run_id, context.job_name):
        mlflow.log_metrics(
            {
                f"{r['window']}_{m}_{r['horizon']}d_{r['model']}": r[m]
                for r in rows
                for m in ("rank_ic", "ic", "ls_sharpe", "jpx_sharpe")
                if r[m] == r[m]
            }
        )
        mlflow.log_artifacts(str(out_dir), artifact_path="report")
    sel_score = result.filter(
        (pl.col("horizon") == cfg.primary_horizon)
        & (pl.col("window") == "selection")
        & (pl.col("model") == "atft_gat_fan")
    )["rank_ic"][0]
    context.add_output_metadata(
        {
            "report": dg.MetadataValue.path(str(report_path)),
            "model_rank_ic_primary": float(model_score),
            "model_rank_ic_primary_window": "test",
            "selection_rank_ic_primary": float(sel_score),
            "oracle_fraction": float(model_score / oracle_score[0]) if oracle_score else float("nan"),
            "test_days": sum(len(s.test) for s in splits),
            "folds": len(folds),
            "ensemble_seeds": len(folds[0].checkpoints),
            **md_meta,
        }
    )
    context.log.info(f"evaluation report: {report_path}")
    return result.with_columns(pl.lit(context.run_id).alias("run_id"))


class ChampionConfig(dg.Config):
    margin: float = Field(
        0.0, description="The new model must beat the champion's primary metric by more than this."
    )
    metric: str = Field("rank_ic", description="Primary metric (a column of the evaluation report).")


@dg.asset(
    group_name=EVAL_GROUP,
    kinds={"mlflow"},
    description="Promotes the new seed ensemble only if it beats the current champion on the new run's selection "
    "windows (mean over folds; test-window labels are removed before scoring) by the configured margin; the first "
    "model becomes champion. MLflow registry alias `champion`.",
)
def champion_model(
    context: dg.AssetExecutionContext,
    config: ChampionConfig,
    model_checkpoint: pl.DataFrame,
    evaluation_report: pl.DataFrame,
    enriched_features: pl.DataFrame,
    stock_graph: pl.DataFrame,
    torch_device: TorchDevice,
    paths: ProjectPaths,
    mlflow_tracking: MlflowTracking,
) -> pl.DataFrame:
    rows = model_checkpoint.to_dicts()
    row = rows[0]
    cfg = TrainingConfig.from_recorded(json.loads(row["config"]))
    candidate = folds_from_rows(rows)
    state_path = paths.root / CHAMPION_FILE
    previous = json.loads(state_path.read_text()) if state_path.exists() else None
    decision, scores, promote = "first model: promoted", (float("nan"), float("nan")), True
    if previous and previous["run_id"] != row["run_id"]:
        if previous.get("feature_manifest_hash") != row["feature_manifest_hash"]:
            decision = "champion built for another feature manifest: promoted"
        elif "folds" not in previous:
            decision = "champion written by an earlier version (no selection windows recorded): promoted"
        else:
            device = torch_device.resolve()
            data = PanelTensors(
                enriched_features,
                default_registry(),
                stock_graph,
                cfg.horizons,
                cfg.seq_len,
                cfg.input_clip,
                device,
            )
            cmp = compare_on_selection(
                candidate,
                [TrainedFold.from_dict(f) for f in previous["folds"]],
                data,
                cfg.primary_horizon,
                config.metric,
                cfg.min_stocks_per_date,
                config.margin,
                torch_device.precision,
            )
            promote, decision, scores = cmp.promote, cmp.decision, (cmp.candidate, cmp.champion)
    elif previous:
        decision, promote = "already champion", True
    current = (
        {
            "run_id": row["run_id"],
            "checkpoints": list(candidate[0].checkpoints),
            "folds": [f.as_dict() for f in candidate],
            "metric": config.metric,
            "selection_score": scores[0],
            "feature_manifest_hash": row["feature_manifest_hash"],
            "mlflow_model_version": row.get("mlflow_model_version"),
            "data_end": row["data_end"],
        }
        if promote
        else previous
    )
    write_json_atomic(current, state_path)
    if promote and row.get("mlflow_model_version"):
        mlflow_tracking.client().set_registered_model_alias(
            REGISTERED_MODEL, "champion", row["mlflow_model_version"]
        )
    context.add_output_metadata(
        {
            "decision": decision,
            "window": "selection",
            "new_score": scores[0],
            "champion_score": scores[1],
            "champion_checkpoints": dg.MetadataValue.json(current["checkpoints"]),
        }
    )
    context.log.info(f"champion: {decision}")
    return pl.DataFrame(
        [
            {
                "run_id": current["run_id"],
                "checkpoints": current["checkpoints"],
                "decision": decision,
                "data_end": current.get("data_end"),
                "feature_manifest_hash": current["feature_manifest_hash"],
            }
        ]
    )


def _predict_day(
    context,
    day,
    champion: pl.DataFrame,
    features: pl.DataFrame,
    graph: pl.DataFrame,
    torch_device: TorchDevice,
    paths: ProjectPaths,
) -> pl.DataFrame:
    have = features["date"].unique()
    if day not in set(have.to_list()):
        raise ValueError(
            f"no enriched features for {day}: ingest that trading day first (features cover {have.min()} .. {have.max()})"
        )
    members = champion["checkpoints"][0].to_list()
    preds = predict_day(
        members,
        features,
        default_registry(),
        graph,
        day,
        torch_device.resolve(),
        torch_device.precision,
    )
    csv = ranking_csv(preds)
    csv_path = paths.root / "predictions" / f"{day}.csv"
    write_text_atomic(csv, csv_path)
    context.add_output_metadata(
        {
            "date": str(day),
            "stocks": preds.height,
            "champion": dg.MetadataValue.json(members),
            "csv": dg.MetadataValue.path(str(csv_path)),
        }
    )
    context.log.info(f"predictions for {day}: {csv_path}")
    return preds


@dg.asset(
    group_name=EVAL_GROUP,
    partitions_def=trading_days_partitions,
    kinds={"polars", "parquet", "csv"},
    description="For the partition's trading date, the champion's scores for every stock trading that day: point "
    "prediction per horizon, quantiles and cross-sectional rank (0 = best). Parquet plus a JPX-style CSV "
    "(Date, SecuritiesCode, Rank) under data/predictions/. Same date and champion => byte-identical files.",
)
def daily_predictions(
    context: dg.AssetExecutionContext,
    champion_model: pl.DataFrame,
    enriched_features: pl.DataFrame,
    stock_graph: pl.DataFrame,
    torch_device: TorchDevice,
    paths: ProjectPaths,
) -> pl.DataFrame:
    return _predict_day(
        context,
        partition_date(context.partition_key),
        champion_model,
        enriched_features,
        stock_graph,
        torch_device,
        paths,
    )


@dg.asset(
    group_name=EVAL_GROUP,
    kinds={"polars", "parquet", "csv"},
    description="The champion's predictions for the latest trading day with features (what `retrain` "
    "ends with); the same files as that day's daily_predictions partition.",
)
def latest_predictions(
    context: dg.AssetExecutionContext,
    champion_model: pl.DataFrame,
    enriched_features: pl.DataFrame,
    stock_graph: pl.DataFrame,
    torch_device: TorchDevice,
    paths: ProjectPaths,
) -> pl.DataFrame:
    return _predict_day(
        context,
        enriched_features["date"].max(),
        champion_model,
        enriched_features,
        stock_graph,
        torch_device,
        paths,
    )


ASSETS = [evaluation_report, champion_model, daily_predictions, latest_predictions]
