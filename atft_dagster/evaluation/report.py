"""The evaluation report: a table per horizon of models × metrics, plots, and a Markdown file."""

from __future__ import annotations

import base64
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from atft_dagster.evaluation.metrics import MetricReport, daily_ic, evaluate_predictions, newey_west_t

TABLE_METRICS = (
    "rank_ic",
    "ic",
    "rank_icir",
    "icir",
    "rank_ic_t",
    "hit_rate",
    "ls_annual_return",
    "ls_sharpe",
    "ls_max_drawdown",
    "ls_turnover",
    "jpx_sharpe",
    "jpx_side",
    "days",
    "days_excluded",
)


def score_models(
    frame: pl.DataFrame, models: dict[str, str], label: str, min_stocks: int, nw_lag: int = 0
) -> tuple[dict[str, MetricReport], dict[str, pl.DataFrame]]:
    """``models``: display name -> prediction column. Every model is scored on the same rows."""
    common = frame.drop_nulls([label, *models.values()])
    reports, daily = {}, {}
    for name, col in models.items():
        reports[name], daily[name] = evaluate_predictions(common, col, label, min_stocks, nw_lag)
    return reports, daily


def oracle_agreement(
    frame: pl.DataFrame, models: dict[str, str], label: str, oracle: str, min_stocks: int
) -> dict[str, float]:
    """Per model (display name -> prediction column): the mean daily RankIC of its prediction against the
    true expected return ``oracle``, on the rows :func:`score_models` scores (label and every prediction
    present): how closely the model ranks like the truth, read without the realised returns' noise.

    Where a return is its expectation plus noise of one law for every stock, independent of the prediction,
    corr(pred, r) = corr(pred, oracle) · corr(oracle, r), so the agreement is the model's expected share of
    the oracle's IC (exact for Pearson correlations; for ranks under normal scores the share is about
    2 sin(pi a / 6), 0.015 above an agreement a of 0.8). Where the noise differs by stock, as the synthetic
    markets' idiosyncratic volatilities do, a ranking that also weighs risk can out-rank the expected return
    itself, and a model's realised share can exceed its agreement. Only a synthetic market has an oracle;
    beyond 1 day it is first order (``market/simulator.py``), and the agreement is as good as that."""
    common = frame.drop_nulls([label, *models.values()]).sort("date")
    days = common.partition_by("date", maintain_order=True)
    truth = [d[oracle].to_numpy() for d in days]
    return {
        name: _mean_or_nan(daily_ic([d[col].to_numpy() for d in days], truth, min_stocks, rank=True))
        for name, col in models.items()
    }


def _mean_or_nan(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def agreement_md(agreement: dict[str, float]) -> str:
    """One row: each model's agreement with the oracle (:func:`oracle_agreement`)."""
    names = list(agreement)
    return (
        "Agreement with the oracle: mean daily RankIC of each prediction against the true expected return, "
        "free of the realised returns' noise (with noise alike for every stock, the expected share of the "
        "oracle's RankIC). The oracle is exact at 1 day and first order beyond: on a strongly trending market "
        "it misses second-order terms at 10-20 days that a model may capture.\n\n"
        "| | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
        "| agreement | " + " | ".join(f"{agreement[n]:.3f}" for n in names) + " |\n"
    )


# Below this many non-overlapping labels the Newey–West t (lag h - 1) is too often large when nothing is
# predictable: on pure-noise markets iid random rankings passed |t| > 3 in 0.4 / 1.2 / 2.5 % of draws with
# 24 / 12 / 6 of them (120 days at 5 / 10 / 20 days), 0.1-0.2 % with 48 or more (the normal reading: 0.27 %;
# docs/benchmarks.md, "The pure-noise canary rebuilt").
MIN_INDEPENDENT_LABELS = 20


def overlap_note(days: int, horizon: int) -> str:
    """A warning for the report when ``days`` of ``horizon``-day labels hold too few independent ones."""
    independent = days // horizon
    if horizon == 1 or independent >= MIN_INDEPENDENT_LABELS:
        return ""
    return (
        f"**{days} days hold only {independent} non-overlapping {horizon}-day labels**: with fewer than "
        f"{MIN_INDEPENDENT_LABELS} this t exceeds 3 by chance several times more often than a normal t "
        "would, so read it as indicative and compare models over several markets or a longer window. "
    )


def table_md(reports: dict[str, MetricReport], horizon: int, window: str = "test") -> str:
    head = "| model | " + " | ".join(TABLE_METRICS) + " |\n|---|" + "---|" * len(TABLE_METRICS) + "\n"
    rows = []
    for name, r in reports.items():
        d = r.as_dict()
        rows.append(
            f"| {name} | "
            + " | ".join(f"{d[m]:.4f}" if isinstance(d[m], float) else str(d[m]) for m in TABLE_METRICS)
            + " |"
        )
    lag = next(iter(reports.values())).nw_lag if reports else horizon - 1
    note = (
        f"Window: **{window}**. `rank_ic_t`: Newey–West t of the mean daily RankIC, lag {lag}"
        + (f" ({horizon}-day labels of consecutive days overlap)" if lag else " (the plain t)")
        + ". "
        + overlap_note(min((r.days for r in reports.values()), default=0), horizon)
        + "`jpx_side`: stocks per side of the JPX portfolio "
        "(`min(200, n // 2)`; below 400 stocks the two sides cover the whole universe, so `jpx_sharpe` is not "
        "comparable with the competition's ~2000-stock score).\n\n"
    )
    return f"### Horizon {horizon}d — {window} window\n\n" + note + head + "\n".join(rows) + "\n"


def paired_rows(daily: dict[str, pl.DataFrame], model: str, nw_lag: int) -> list[dict]:
    """``model`` minus each other model, day by day (the same rows, so market noise cancels): the mean
    daily RankIC difference, its Newey-West t (``nw_lag``: h - 1), and the days the model scored higher."""
    mine = daily[model].select("date", pl.col("rank_ic").alias("mine"))
    out = []
    for name, other in daily.items():
        if name == model:
            continue
        d = mine.join(other.select("date", "rank_ic"), on="date").drop_nulls()
        diff = (d["mine"] - d["rank_ic"]).to_numpy()
        diff = diff[np.isfinite(diff)]
        out.append(
            {
                "versus": name,
                "rank_ic_difference": float(diff.mean()) if len(diff) else float("nan"),
                "t": newey_west_t(diff, nw_lag),
                "days_ahead": int((diff > 0).sum()),
                "days": len(diff),
            }
        )
    return out


def paired_md(rows: list[dict], model: str, nw_lag: int) -> str:
    head = (
        f"`{model}` minus each model, day by day on the same rows: mean daily RankIC difference, its Newey–West "
        f"t (lag {nw_lag}), and on how many days `{model}` ranked better. |t| < 2: the window cannot tell them "
        "apart.\n\n| versus | rank_ic difference | t | days ahead |\n|---|---|---|---|\n"
    )
    return (
        head
        + "\n".join(
            f"| {r['versus']} | {r['rank_ic_difference']:+.4f} | {r['t']:.2f} | {r['days_ahead']} / {r['days']} |"
            for r in rows
        )
        + "\n"
    )


# 1 on a day whose market 20-day volatility exceeds 1.2 x its 60-day one, known at that day's close
# (features/definitions.py): the report's split into turbulent and other days
STATE_COLUMN = "mkt_regime_high_vol"


def turbulent_dates(features: pl.DataFrame) -> set[date] | None:
    """The dates whose ``STATE_COLUMN`` is 1; None where the features lack it."""
    if STATE_COLUMN not in features.columns:
        return None
    return set(features.filter(pl.col(STATE_COLUMN) == 1)["date"].unique().to_list())


def state_rows(daily: dict[str, pl.DataFrame], turbulent: set[date]) -> list[dict]:
    """Per model: the mean daily RankIC on the ``turbulent`` dates and on the others, with their days."""
    out, hot_days = [], pl.Series(sorted(turbulent), dtype=pl.Date)
    for name, d in daily.items():
        hot = d["date"].is_in(hot_days)
        parts = {"turbulent": d.filter(hot)["rank_ic"], "other": d.filter(~hot)["rank_ic"]}
        row = {"model": name}
        for key, ric in parts.items():
            x = ric.drop_nulls().to_numpy()
            x = x[np.isfinite(x)]
            row[f"{key}_rank_ic"] = float(x.mean()) if len(x) else float("nan")
            row[f"{key}_days"] = len(x)
        out.append(row)
    return out


def state_md(rows: list[dict]) -> str:
    """The :func:`state_rows` table."""
    head = (
        "By market state: mean daily RankIC on turbulent days (the market's 20-day volatility above 1.2 times "
        f"its 60-day one, `{STATE_COLUMN}`, known at each day's close) and on the others. Momentum-like "
        "rankings are known to fail while markets are turbulent; a model whose edge lives in calm days "
        "shows it here.\n\n| model | turbulent days | other days |\n|---|---|---|\n"
    )

    def cell(r: dict, key: str) -> str:
        v = r[f"{key}_rank_ic"]
        return f"{v:.4f} ({r[f'{key}_days']} d)" if v == v else f"– ({r[f'{key}_days']} d)"

    return (
        head
        + "\n".join(f"| {r['model']} | {cell(r, 'turbulent')} | {cell(r, 'other')} |" for r in rows)
        + "\n"
    )


def plots(
    daily: dict[str, pl.DataFrame], reports: dict[str, MetricReport], folder: Path, horizon: int
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []

    def finish(fig, ax, title: str, name: str, dates: bool = True) -> None:
        ax.set_title(title)
        ax.legend(fontsize=7)
        if dates:
            fig.autofmt_xdate()
        paths.append(folder / f"{name}.png")
        fig.savefig(paths[-1], dpi=90, bbox_inches="tight")
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, d in daily.items():
        ax.plot(d["date"].to_list(), np.cumsum(d["ls_return"].to_numpy()), label=name)
    finish(
        fig, ax, f"Cumulative long-short return ({horizon}d label, quintiles)", f"cumulative_ls_{horizon}d"
    )
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, d in daily.items():
        ax.plot(d["date"].to_list(), d["rank_ic"].rolling_mean(20, min_samples=5).to_numpy(), label=name)
    ax.axhline(0, color="grey", lw=0.5)
    finish(fig, ax, f"Rolling 20-day RankIC ({horizon}d)", f"rolling_rank_ic_{horizon}d")
    fig, ax = plt.subplots(figsize=(8, 4))
    names = list(reports)
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        dec = reports[name].deciles
        ax.bar(np.arange(len(dec)) + i * width, dec, width=width, label=name)
    finish(fig, ax, f"Mean label by prediction decile ({horizon}d)", f"deciles_{horizon}d", dates=False)
    return paths


def embed_png(path: Path) -> str:
    return f"![{path.stem}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"


def baseline_choices_md(choices: list[dict]) -> str:
    """What each learned baseline chose per fold and horizon, and the selection figure it chose on."""
    head = (
        "## Learned baselines: what the selection window chose\n\n"
        "Ridge and the linear graph model (ridge on the last day's inputs and their neighbours' weighted "
        "mean): the penalty with the best selection-window mean daily RankIC. LightGBM: each grid point is "
        "stopped at its best validation-window RankIC; the grid point with the best selection-window RankIC "
        "is kept. The test window is only predicted.\n\n"
        "| fold | model | horizon | chosen | validation RankIC | selection RankIC |\n|---|---|---|---|---|---|\n"
    )
    skip = {"fold", "model", "horizon", "val_rank_ic", "selection_rank_ic", "grid_edge"}
    rows = []
    for c in choices:
        chosen = ", ".join(f"{k} {v:g}" for k, v in c.items() if k not in skip)
        if c.get("grid_edge"):
            chosen += f" (**the grid's {c['grid_edge']} end**: widen the grid)"
        val = f"{c['val_rank_ic']:.4f}" if "val_rank_ic" in c else "—"
        rows.append(
            f"| {c.get('fold', 0)} | {c['model']} | {c['horizon']}d | {chosen} | {val} | {c['selection_rank_ic']:.4f} |"
        )
    return head + "\n".join(rows) + "\n"
