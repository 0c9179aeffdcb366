"""The evaluation of a training run: every model and baseline scored on the same (date, code) rows of
each fold's selection and test windows, and the Markdown report."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
from pydantic import Field

from atft_dagster.evaluation.baselines import BaselineConfig, factor_baselines, learned_baselines
from atft_dagster.evaluation.report import (
    TABLE_METRICS,
    agreement_md,
    baseline_choices_md,
    oracle_agreement,
    paired_md,
    paired_rows,
    plots,
    score_models,
    state_md,
    state_rows,
    table_md,
    turbulent_dates,
)
from atft_dagster.evaluation.selection import TrainedFold
from atft_dagster.features.registry import FeatureRegistry
from atft_dagster.model import TrainingConfig
from atft_dagster.pipeline.layout import DataLayout
from atft_dagster.pipeline.records import EvaluationSummary, TrainedModel
from atft_dagster.training.checkpoint import load_checkpoint
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.deploy import deployment_refit
from atft_dagster.training.ensemble import ensemble_predict
from atft_dagster.training.linear_graph import linear_graph_baseline
from atft_dagster.training.split import Split
from atft_dagster.training.train import refit_dates, train

MODEL = "atft_gat_fan"
DEPLOYED = "_deployed"  # suffix of a model scored as deployed at the test start
ORACLE = "oracle"
# (first, last) date -> the true expected returns (oracle_{h}d per date, code), or None where unknown
OracleLookup = Callable[[date, date], pl.DataFrame | None]
Log = Callable[[str], None]


class EvaluationSettings(BaselineConfig):
    """The baselines' search spaces, and whether to train the graph-off model. Days with fewer stocks
    than the trained model's ``min_stocks_per_date`` are excluded (one threshold for training,
    evaluation and promotion)."""

    graph_off_baseline: bool = Field(True, description="Also train the same model with the graph block off.")
    deployed_rows: bool = Field(
        True,
        description="Also score, on the test window, every fitted model as deployed at the test start: "
        "refitted at what it chose on every usable date through the selection window (the ensemble's and the "
        "graph-off model's kept ridge starts, as the deployment refit does; ridge at its penalty; LightGBM "
        "at its grid point and rounds). What users get from the deployment refit; no decision reads it.",
    )


@dataclass(frozen=True)
class EvaluationResult:
    table: pl.DataFrame  # window, horizon, model and one column per TABLE_METRICS
    test_predictions: pl.DataFrame  # every model's test-window predictions, with labels
    markdown: str
    test_tables: dict[int, str]  # per horizon, the test window's table (Markdown)
    test_plots: dict[int, list[Path]]  # per horizon, the test window's plots
    primary_horizon: int
    test_days: int
    folds: int
    ensemble_seeds: int

    @property
    def primary_test_table(self) -> str:
        return self.test_tables.get(self.primary_horizon, "")

    @property
    def primary_plots(self) -> list[Path]:
        return self.test_plots.get(self.primary_horizon, [])

    def score(self, window: str, model: str = MODEL, metric: str = "rank_ic") -> float | None:
        row = self.table.filter(
            (pl.col("horizon") == self.primary_horizon)
            & (pl.col("window") == window)
            & (pl.col("model") == model)
        )
        return float(row[metric][0]) if row.height else None

    @property
    def oracle_fraction(self) -> float | None:
        model, oracle = self.score("test"), self.score("test", ORACLE)
        return model / oracle if model is not None and oracle else None

    @property
    def oracle_agreement(self) -> float | None:
        """The model's agreement with the oracle (primary horizon, test window; ``report.oracle_agreement``),
        None without an oracle."""
        if "oracle_agreement" not in self.table.columns:
            return None
        value = self.score("test", MODEL, "oracle_agreement")
        return value if value is not None and value == value else None

    def summary(self, run_id: str, report: str) -> EvaluationSummary:
        """The typed record of this result (``report``: the Markdown's path relative to the data directory)."""
        return EvaluationSummary(
            run_id=run_id,
            primary_horizon=self.primary_horizon,
            test_rank_ic=self.score("test"),
            selection_rank_ic=self.score("selection"),
            oracle_fraction=self.oracle_fraction,
            test_days=self.test_days,
            folds=self.folds,
            ensemble_seeds=self.ensemble_seeds,
            report=report,
            rows=self.table.to_dicts(),
        )


def model_columns(h: int, frame: pl.DataFrame) -> dict[str, str]:
    """Display name -> prediction column at horizon ``h``, for the models present in ``frame``."""
    cols = {
        MODEL: f"pred_{h}d",
        "single_seed": f"single_seed_{h}d",
        "graph_off": f"graph_off_{h}d",
        "linear_graph": f"linear_graph_{h}d",
        "ridge": f"ridge_{h}d",
        "lightgbm": f"lightgbm_{h}d",
        "momentum": "momentum",
        "reversal": "reversal",
        ORACLE: f"oracle_{h}d",
        MODEL + DEPLOYED: f"deployed_{h}d",
        **{m + DEPLOYED: f"{m}_deployed_{h}d" for m in ("graph_off", "ridge", "lightgbm")},
    }
    return {name: col for name, col in cols.items() if col in frame.columns}


def _with_columns(frame: pl.DataFrame, other: pl.DataFrame, names: dict[str, str]) -> pl.DataFrame:
    """Left-join ``other``'s columns (renamed old -> new) on (date, code)."""
    return frame.join(
        other.select("date", "code", *[pl.col(a).alias(b) for a, b in names.items()]),
        on=["date", "code"],
        how="left",
    )


@dataclass(frozen=True)
class _Context:
    cfg: TrainingConfig
    settings: EvaluationSettings
    data: PanelTensors
    features: pl.DataFrame
    registry: FeatureRegistry
    precision: str
    log: Log


def baseline_windows(
    data: PanelTensors, cfg: TrainingConfig, split: Split, deployed: bool = False
) -> dict[str, list]:
    """The fold's train, validation and selection dates for the learned baselines, ``refit`` (the dates
    the model's ridge start ends on) when ``skip_refit_through_validation`` is on, and with ``deployed``
    ``deploy``: every usable date through the selection window (:func:`deployed_through`)."""
    windows = {w: [data.dates[t] for t in getattr(split, w)] for w in ("train", "val", "selection")}
    if cfg.skip_refit_through_validation:
        windows["refit"] = [data.dates[t] for t in refit_dates(data, cfg, split)]
    if deployed:
        last = deployed_through(split)
        windows["deploy"] = [data.dates[t] for t in data.usable_dates(cfg.min_stocks_per_date) if t <= last]
    return windows


def deployed_through(split: Split) -> int:
    """The last date a model deployed at the fold's test start is refitted on: the selection window's last;
    its labels end inside the purge gap, before the test window's first day."""
    return split.selection[-1]


def deployed_predictions(
    checkpoints: list[str],
    data: PanelTensors,
    split: Split,
    folder: Path,
    name: str,
    precision: str = "fp32",
    evaluated: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The test-window predictions (``<name>_<h>d``) of ``checkpoints`` as deployed at the test start: each
    one's kept ridge starts refitted through :func:`deployed_through` (``deployment_refit``; a checkpoint
    without one predicts as it is). ``evaluated``: the same checkpoints' ensemble frame (``pred_<h>d``) over
    windows that end with the test window; where no checkpoint was refitted it is the answer (ranks are per
    date and the timing pass ends on the same day), so the test window is not predicted again."""
    refits, changed = [], False
    for i, ck in enumerate(checkpoints):
        out = folder / f"{name}_{i}.pt"
        kept = deployment_refit(Path(ck), data, out, folder / f"{name}_shared.pt", deployed_through(split))
        refits.append(str(out) if kept else ck)
        changed = changed or bool(kept)
    if changed or evaluated is None:
        pred, _ = ensemble_predict(refits, data, split.test, precision)
    else:
        pred = evaluated.filter(pl.col("date").is_in([data.dates[t] for t in split.test]))
    horizons = [int(c.removeprefix("pred_").removesuffix("d")) for c in pred.columns if c.startswith("pred_")]
    return pred.select("date", "code", *[pl.col(f"pred_{h}d").alias(f"{name}_{h}d") for h in horizons])


def fold_frames(
    fold: TrainedFold, split: Split, c: _Context
) -> tuple[pl.DataFrame, pl.DataFrame, list[dict]]:
    """(test rows, selection rows, the learned baselines' choices) of one fold: the seed ensemble, its
    first member alone and the baselines. Learned baselines are fitted on the fold's training dates,
    stopped on its validation window and tuned on its selection window. With ``deployed_rows`` the test
    rows also hold every fitted model as deployed at the test start (never the selection rows: those
    models were refitted on them)."""
    cfg, data = c.cfg, c.data
    single = {f"pred_{h}d": f"single_seed_{h}d" for h in cfg.horizons}
    # one pass over both windows (each member is loaded once); ranks are per date, so splitting after is exact
    ens, members = ensemble_predict(fold.checkpoints, data, split.selection + split.test, c.precision)
    frame = _with_columns(ens, members[0], single)
    frame = frame.join(
        factor_baselines(c.features, frame.select("date", "code")), on=["date", "code"], how="left"
    ).with_columns(pl.lit(fold.fold).alias("fold"))
    test_dates = [data.dates[t] for t in split.test]
    deployed = c.settings.deployed_rows
    windows = baseline_windows(data, cfg, split, deployed)
    c.log(f"fold {fold.fold}: fitting ridge and LightGBM (tuned on the selection window)")
    fit = learned_baselines(
        c.features,
        c.registry,
        windows,
        frame.select("date", "code"),
        cfg.horizons,
        BaselineConfig(**{k: getattr(c.settings, k) for k in BaselineConfig.model_fields}),
        input_clip=cfg.input_clip,
        label_clip=cfg.label_clip,
        min_stocks=cfg.min_stocks_per_date,
        seed=cfg.seed,
    )
    frame = frame.join(fit.predictions, on=["date", "code"], how="left")
    c.log(f"fold {fold.fold}: fitting the linear graph baseline (penalty chosen on the selection window)")
    lin, lin_choices = linear_graph_baseline(
        data, cfg, split, c.settings.linear_graph_penalties, cfg.min_stocks_per_date, c.precision
    )
    frame = frame.join(lin, on=["date", "code"], how="left")
    test = frame.filter(pl.col("date").is_in(test_dates))
    selection = frame.filter(~pl.col("date").is_in(test_dates)).select(pl.exclude("^.*_deployed_.*$"))
    if deployed:
        c.log(f"fold {fold.fold}: refitting the ensemble's kept ridge starts through the selection window")
        with tempfile.TemporaryDirectory() as tmp:
            dep = deployed_predictions(
                fold.checkpoints, data, split, Path(tmp), "deployed", c.precision, evaluated=ens
            )
        test = test.join(dep, on=["date", "code"], how="left")
    if c.settings.graph_off_baseline:
        off_cfg = cfg.model_copy(update={"use_graph": False})
        c.log(f"fold {fold.fold}: training the graph-off baseline (up to {off_cfg.epochs} epochs)")

        def on_epoch(e) -> None:
            ric = {k: round(v, 4) for k, v in e.val_rank_ic.items()}
            c.log(f"fold {fold.fold} graph-off epoch {e.epoch}: {e.seconds:.1f}s, val RankIC {ric}")

        with tempfile.TemporaryDirectory() as tmp:
            res = train(data, off_cfg, split, Path(tmp), {"baseline": "graph_off"}, c.precision, on_epoch)
            off, _ = ensemble_predict([res.best_checkpoint], data, split.test, c.precision)
            if deployed:
                test = test.join(
                    deployed_predictions(
                        [res.best_checkpoint],
                        data,
                        split,
                        Path(tmp),
                        "graph_off_deployed",
                        c.precision,
                        evaluated=off,
                    ),
                    on=["date", "code"],
                    how="left",
                )
        test = _with_columns(test, off, {f"pred_{h}d": f"graph_off_{h}d" for h in cfg.horizons})
    return test, selection, [{"fold": fold.fold, **ch} for ch in fit.choices + lin_choices]


def evaluate_run(
    model: TrainedModel,
    layout: DataLayout,
    data: PanelTensors,
    features: pl.DataFrame,
    registry: FeatureRegistry,
    settings: EvaluationSettings,
    oracle: OracleLookup,
    report_dir: Path,
    precision: str = "fp32",
    log: Log = lambda _: None,
    inputs_note: str = "",
) -> EvaluationResult:
    """Score the run's seed ensembles and every baseline per fold, pool the folds per window, and write
    the test window's plots into ``report_dir``. The test window is reported only. ``inputs_note``
    (Markdown) says which inputs the data supported."""
    cfg = TrainingConfig.from_recorded(model.config)
    folds = model.trained_folds(layout)
    splits = [Split.from_dict(load_checkpoint(Path(f.checkpoints[0]))["split"]) for f in folds]
    c = _Context(cfg, settings, data, features, registry, precision, log)
    tests, selections, choices = [], [], []
    for fold, split in zip(folds, splits, strict=True):
        test, sel, chosen = fold_frames(fold, split, c)
        tests.append(test)
        selections.append(sel)
        choices += chosen
    windows = {"test": pl.concat(tests, how="diagonal"), "selection": pl.concat(selections, how="diagonal")}
    for name, frame in windows.items():
        truth = oracle(frame["date"].min(), frame["date"].max())
        if truth is not None:
            windows[name] = frame.join(truth, on=["date", "code"], how="left")
    turbulent = turbulent_dates(features)
    rows, sections, test_tables, test_plots = [], {"test": [], "selection": []}, {}, {}
    for window, frame in windows.items():
        for h in cfg.horizons:
            columns = model_columns(h, frame)
            label = f"label_{h}d"
            reports, daily = score_models(frame, columns, label, cfg.min_stocks_per_date, h - 1)
            table = table_md(reports, h, window)
            if MODEL in daily:
                table += "\n" + paired_md(paired_rows(daily, MODEL, h - 1), MODEL, h - 1)
            agreement = {}
            if ORACLE in columns:
                others = {n: c for n, c in columns.items() if n != ORACLE}
                agreement = oracle_agreement(frame, others, label, columns[ORACLE], cfg.min_stocks_per_date)
                table += "\n" + agreement_md(agreement)
            by_state = {}
            if turbulent is not None:
                split_rows = state_rows(daily, turbulent)
                table += "\n" + state_md(split_rows)
                by_state = {r["model"]: r for r in split_rows}
            images = plots(daily, reports, report_dir, h) if window == "test" else []
            sections[window].append(table + "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in images) + "\n")
            if window == "test":
                test_tables[h], test_plots[h] = table, images
            rows += [
                {
                    "window": window,
                    "horizon": h,
                    "model": name,
                    **{m: float(getattr(r, m)) for m in TABLE_METRICS},
                    "oracle_agreement": agreement.get(name, float("nan")),
                    **{
                        k: by_state.get(name, {}).get(k, float("nan"))
                        for k in ("turbulent_rank_ic", "other_rank_ic")
                    },
                }
                for name, r in reports.items()
            ]
    result = EvaluationResult(
        table=pl.DataFrame(rows),
        test_predictions=windows["test"],
        markdown="",
        test_tables=test_tables,
        test_plots=test_plots,
        primary_horizon=cfg.primary_horizon,
        test_days=sum(len(s.test) for s in splits),
        folds=len(folds),
        ensemble_seeds=len(folds[0].checkpoints),
    )
    md = _header(model.run_id, result, [s.describe(data.dates) for s in splits]) + inputs_note
    md += _body(sections, choices)
    return EvaluationResult(**{**result.__dict__, "markdown": md})


def _header(run_id: str, r: EvaluationResult, described: list[dict]) -> str:
    out = (
        f"# Evaluation report — run {run_id}\n\n"
        f"Model: seed ensemble of {r.ensemble_seeds} (per-date mean of the members' cross-sectional "
        f"ranks); `single_seed` is its first member alone. {r.folds} walk-forward fold(s):\n\n"
        + "\n".join(
            f"- fold {d['fold']}: train {d['train']}, validation {d['val']} (early stopping), selection "
            f"{d['selection']} (champion promotion), test {d['test']} (reported only)"
            for d in described
        )
        + "\n\nEvery model is scored on the same (date, code) rows of a window. t-statistics are Newey-West with "
        "lag h - 1.\n\n"
    )
    oracle = r.score("test", ORACLE)
    if oracle:
        out += (
            f"Test window: model RankIC ({r.primary_horizon}d) = {r.score('test'):.4f} = "
            f"**{r.oracle_fraction:.2f} of the oracle** ({oracle:.4f})"
            + (
                f"; its agreement with the oracle's ranking (RankIC against the true expected returns, "
                f"free of the realised returns' noise) is **{r.oracle_agreement:.2f}**"
                if r.oracle_agreement is not None
                else ""
            )
            + ".\n\n"
        )
        deployed = r.score("test", MODEL + DEPLOYED)
        if deployed is not None:
            out += (
                f"As deployed at the test start (`{MODEL + DEPLOYED}`: the kept ridge starts refitted through "
                f"the selection window, as the deployment refit does for new days): {deployed:.4f} = "
                f"**{deployed / oracle:.2f} of the oracle**; every fitted baseline is refitted the same way "
                "(`_deployed` rows).\n\n"
            )
    return out


def _body(sections: dict[str, list[str]], choices: list[dict]) -> str:
    return (
        "## Test window (all folds pooled; reported only, no decision reads it)\n\n"
        + "\n".join(sections["test"])
        + "\n## Selection window (all folds pooled; champion promotion reads the model's figure)\n\n"
        + "\n".join(sections["selection"])
        + "\n"
        + baseline_choices_md(choices)
    )
