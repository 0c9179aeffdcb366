"""evaluation_report, champion_model and daily_predictions."""

import json
import tempfile
from pathlib import Path

import dagster as dg
import mlflow
import polars as pl
from pydantic import Field

from atft_dagster.defs.mlflow_resource import MlflowTracking
from atft_dagster.defs.model_assets import REGISTERED_MODEL, TorchDevice
from atft_dagster.defs.partitions import partition_date, trading_days_partitions
from atft_dagster.defs.resources import MarketSourceResource, ProjectPaths, SyntheticMarketResource
from atft_dagster.evaluation.baselines import factor_baselines, learned_baselines
from atft_dagster.evaluation.report import TABLE_METRICS, embed_png, plots, score_models, table_md
from atft_dagster.features import default_registry
from atft_dagster.model import TrainingConfig
from atft_dagster.storage import write_json_atomic, write_text_atomic
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.split import Split
from atft_dagster.training.train import load_model, predict, train

EVAL_GROUP = "evaluation"
CHAMPION_FILE = "champion.json"


class EvaluationConfig(dg.Config):
    min_stocks_per_date: int = Field(
        20, description="Test days with fewer stocks are excluded (and counted)."
    )
    graph_off_baseline: bool = Field(True, description="Also train the same model with the graph block off.")
    lightgbm_rounds: int = Field(200, description="Boosting rounds of the LightGBM baseline.")


def _split(ck: dict) -> Split:
    s = ck["split"]
    return Split(s["fold"], s["train"], s["val"], s["test"], s["gap"])


@dg.asset(
    group_name=EVAL_GROUP,
    pool="gpu",
    kinds={"polars", "mlflow"},
    description="Held-out test days only: IC, RankIC, ICIR, t-stats, hit rate, quintile long-short (annualised return, "
    "Sharpe, drawdown, turnover), the JPX competition Sharpe and decile returns, per horizon, for the model and its "
    "baselines (graph block off, ridge, LightGBM, momentum, reversal, and the oracle on the synthetic market) on exactly "
    "the same days and stocks. Plots and a Markdown report under data/reports/<run id>/.",
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
    row = model_checkpoint.row(0, named=True)
    model, ck = load_model(Path(row["checkpoint"]), device)
    cfg = TrainingConfig(**ck["config"])
    registry = default_registry()
    data = PanelTensors(
        enriched_features, registry, stock_graph, cfg.horizons, cfg.seq_len, cfg.input_clip, device
    )
    split = _split(ck)
    preds = predict(model, data, split.test, cfg.batch_dates, torch_device.precision)
    keys = preds.select("date", "code")
    frame = preds.join(factor_baselines(enriched_features, keys), on=["date", "code"], how="left")
    train_dates = [data.dates[t] for t in split.train]
    frame = frame.join(
        learned_baselines(
            enriched_features, registry, train_dates, keys, cfg.horizons, config.lightgbm_rounds, cfg.seed
        ),
        on=["date", "code"],
        how="left",
    )
    if config.graph_off_baseline:
        off_cfg = cfg.model_copy(update={"use_graph": False})
        with tempfile.TemporaryDirectory() as tmp:
            res = train(data, off_cfg, split, Path(tmp), {"baseline": "graph_off"}, torch_device.precision)
            off_model, _ = load_model(Path(res.best_checkpoint), device)
            off = predict(off_model, data, split.test, cfg.batch_dates, torch_device.precision)
        frame = frame.join(
            off.select(
                "date", "code", *[pl.col(f"pred_{h}d").alias(f"graph_off_{h}d") for h in cfg.horizons]
            ),
            on=["date", "code"],
            how="left",
        )
    if isinstance(market_source, SyntheticMarketResource):
        oracle = market_source.source().oracle(frame["date"].min(), frame["date"].max())
        frame = frame.join(oracle, on=["date", "code"], how="left")
    out_dir = paths.root / "reports" / context.run_id
    rows, sections, md_meta = [], [], {}
    for h in cfg.horizons:
        models = {"atft_gat_fan": f"pred_{h}d"}
        if config.graph_off_baseline:
            models["graph_off"] = f"graph_off_{h}d"
        models.update(
            {
                "ridge": f"ridge_{h}d",
                "lightgbm": f"lightgbm_{h}d",
                "momentum": "momentum",
                "reversal": "reversal",
            }
        )
        if f"oracle_{h}d" in frame.columns:
            models["oracle"] = f"oracle_{h}d"
        reports, daily = score_models(frame, models, f"label_{h}d", config.min_stocks_per_date)
        table = table_md(reports, h)
        images = plots(daily, reports, out_dir, h)
        sections.append(table + "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in images) + "\n")
        if h == cfg.primary_horizon:
            md_meta["report_primary"] = dg.MetadataValue.md(
                table + "\n" + "\n".join(embed_png(p) for p in images)
            )
        for name, r in reports.items():
            rows.append({"horizon": h, "model": name, **{m: float(getattr(r, m)) for m in TABLE_METRICS}})
    result = pl.DataFrame(rows)
    prim = result.filter(pl.col("horizon") == cfg.primary_horizon)
    model_score = prim.filter(pl.col("model") == "atft_gat_fan")["rank_ic"][0]
    oracle_score = prim.filter(pl.col("model") == "oracle")["rank_ic"].to_list()
    header = (
        f"# Evaluation report — run {context.run_id}\n\nTest days {split.describe(data.dates)['test']} "
        f"({len(split.test)} days); every model scored on the same (date, code) rows. Checkpoint `{row['checkpoint']}`.\n\n"
    )
    if oracle_score:
        header += f"Model RankIC ({cfg.primary_horizon}d) = {model_score:.4f} = **{model_score / oracle_score[0]:.2f} of the oracle** ({oracle_score[0]:.4f}).\n\n"
    report_path = out_dir / "report.md"
    write_text_atomic(header + "\n".join(sections), report_path)
    frame.write_parquet(out_dir / "test_predictions.parquet")
    with mlflow_tracking.run(context.run_id, context.job_name):
        mlflow.log_metrics(
            {
                f"test_{m}_{h}d_{name}": v
                for h, name, m, v in (
                    (r["horizon"], r["model"], m, r[m])
                    for r in rows
                    for m in ("rank_ic", "ic", "ls_sharpe", "jpx_sharpe")
                )
                if v == v
            }
        )
        mlflow.log_artifacts(str(out_dir), artifact_path="report")
    context.add_output_metadata(
        {
            "report": dg.MetadataValue.path(str(report_path)),
            "model_rank_ic_primary": float(model_score),
            "oracle_fraction": float(model_score / oracle_score[0]) if oracle_score else float("nan"),
            "test_days": len(split.test),
            **md_meta,
        }
    )
    context.log.info(f"evaluation report: {report_path}")
    return result.with_columns(
        pl.lit(context.run_id).alias("run_id"), pl.lit(row["checkpoint"]).alias("checkpoint")
    )


class ChampionConfig(dg.Config):
    margin: float = Field(
        0.0, description="The new model must beat the champion's primary metric by more than this."
    )
    metric: str = Field("rank_ic", description="Primary metric (a column of the evaluation report).")


def _score_on(
    checkpoint: str,
    data: PanelTensors,
    test: list[int],
    horizon: int,
    metric: str,
    min_stocks: int,
    device,
    precision: str,
) -> float:
    from atft_dagster.evaluation.metrics import evaluate_predictions

    model, ck = load_model(Path(checkpoint), device)
    preds = predict(model, data, test, TrainingConfig(**ck["config"]).batch_dates, precision)
    report, _ = evaluate_predictions(preds, f"pred_{horizon}d", f"label_{horizon}d", min_stocks)
    return float(getattr(report, metric))


@dg.asset(
    group_name=EVAL_GROUP,
    kinds={"mlflow"},
    description="Promotes the new checkpoint only if it beats the current champion on the same evaluation window by "
    "the configured margin (the first model becomes champion). MLflow registry alias `champion`.",
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
    row = model_checkpoint.row(0, named=True)
    cfg = TrainingConfig(**json.loads(row["config"]))
    new_score = float(
        evaluation_report.filter(
            (pl.col("model") == "atft_gat_fan") & (pl.col("horizon") == cfg.primary_horizon)
        )[config.metric][0]
    )
    state_path = paths.root / CHAMPION_FILE
    previous = json.loads(state_path.read_text()) if state_path.exists() else None
    decision, champ_score = "first model: promoted", None
    promote = True
    if previous and previous["checkpoint"] != row["checkpoint"]:
        if previous.get("feature_manifest_hash") != row["feature_manifest_hash"]:
            decision = "champion built for another feature manifest: promoted"
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
            _, ck = load_model(Path(row["checkpoint"]), device)
            champ_score = _score_on(
                previous["checkpoint"],
                data,
                ck["split"]["test"],
                cfg.primary_horizon,
                config.metric,
                cfg.min_stocks_per_date,
                device,
                torch_device.precision,
            )
            promote = new_score > champ_score + config.margin
            decision = f"{'promoted' if promote else 'kept champion'}: new {new_score:.4f} vs champion {champ_score:.4f} + margin {config.margin}"
    elif previous:
        decision, promote = "already champion", True
    current = (
        {
            "checkpoint": row["checkpoint"],
            "run_id": row["run_id"],
            "score": new_score,
            "metric": config.metric,
            "feature_manifest_hash": row["feature_manifest_hash"],
            "mlflow_model_version": row.get("mlflow_model_version"),
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
            "new_score": new_score,
            "champion_score": champ_score if champ_score is not None else float("nan"),
            "champion_checkpoint": dg.MetadataValue.path(current["checkpoint"]),
        }
    )
    context.log.info(f"champion: {decision}")
    return pl.DataFrame([{**current, "decision": decision}])


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
    device = torch_device.resolve()
    model, ck = load_model(Path(champion["checkpoint"][0]), device)
    cfg = TrainingConfig(**ck["config"])
    data = PanelTensors(
        features.filter(pl.col("date") <= day),
        default_registry(),
        graph,
        cfg.horizons,
        cfg.seq_len,
        cfg.input_clip,
        device,
    )
    t = data.dates.index(day)
    if t < cfg.seq_len - 1:
        raise ValueError(f"{day} has fewer than {cfg.seq_len} trading days of history")
    preds = predict(model, data, [t], cfg.batch_dates, torch_device.precision).drop(
        [f"label_{h}d" for h in cfg.horizons]
    )
    preds = preds.sort([f"pred_{cfg.primary_horizon}d", "code"], descending=[True, False]).with_columns(
        pl.int_range(pl.len()).cast(pl.Int32).alias("rank")
    )
    csv = preds.select(
        pl.col("date").dt.strftime("%Y-%m-%d").alias("Date"),
        pl.col("code").alias("SecuritiesCode"),
        pl.col("rank").alias("Rank"),
    )
    csv_path = paths.root / "predictions" / f"{day}.csv"
    write_text_atomic(csv.write_csv(), csv_path)
    context.add_output_metadata(
        {
            "date": str(day),
            "stocks": preds.height,
            "champion": champion["checkpoint"][0],
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
