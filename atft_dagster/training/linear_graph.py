"""The linear graph baseline: per horizon, ridge on the last day's inputs x_L and their neighbours'
max(ρ, 0)^p-weighted mean m_L, fitted on the dates the model's ridge start ends on (the train window, or
train through validation with ``skip_refit_through_validation``) with the penalty chosen on the selection
window. It is the model's own ridge start (``skip_init.ridge_start``) without the deep path, so the report shows
what the network adds to a linear model that sees the same graph."""

from __future__ import annotations

import polars as pl

from atft_dagster.evaluation.baselines import DailyRankIC, grid_edge
from atft_dagster.model.atft import ATFTGATFAN
from atft_dagster.model.config import TrainingConfig
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.skip_init import ridge_solutions, set_skip, zero_deep_head
from atft_dagster.training.split import Split
from atft_dagster.training.train import predict, refit_dates

# The ridge start zeroes the deep point head, so the deep path adds exactly 0 to the prediction: it is
# built at the smallest width the config allows, and only the skip's ridge fit decides the scores.
NO_DEEP_PATH = {
    "hidden": 4,
    "attn_heads": 1,
    "gat_heads": [1, 1],
    "lstm_layers": 1,
    "use_fan": False,
    "use_san": False,
    "graph_raw_inputs": False,
    "dropout": 0.0,
}


def linear_graph_baseline(
    data: PanelTensors,
    cfg: TrainingConfig,
    split: Split,
    penalties: list[float],
    min_stocks: int,
    precision: str = "fp32",
) -> tuple[pl.DataFrame, list[dict]]:
    """(one ``linear_graph_<h>d`` column per horizon on the selection and test rows, the choices)."""
    lin = cfg.model_copy(
        update={"use_graph": True, "input_skip": True, "skip_neighbour_mean": True, **NO_DEEP_PATH}
    )
    model = ATFTGATFAN(data.n_features, lin).to(data.device)
    zero_deep_head(model)
    dates = refit_dates(data, cfg, split) if cfg.skip_refit_through_validation else split.train
    weights, _ = ridge_solutions(model, data, dates, penalties, cfg.batch_dates)  # one pass, every penalty
    frames = []
    for penalty in penalties:
        set_skip(model, weights[penalty])
        frames.append(predict(model, data, split.selection + split.test, cfg.batch_dates, precision))
    keys = frames[0].select("date", "code")
    is_sel = keys["date"].is_in([data.dates[t] for t in split.selection]).to_numpy()
    sel_dates = keys["date"].to_numpy()[is_sel]
    out, choices = keys, []
    for h in cfg.horizons:
        score = DailyRankIC(sel_dates, frames[0][f"label_{h}d"].to_numpy()[is_sel], min_stocks)
        sel = [score(f[f"pred_{h}d"].to_numpy()[is_sel]) for f in frames]
        best = max(range(len(penalties)), key=lambda i: -float("inf") if sel[i] != sel[i] else sel[i])
        choices.append(
            {
                "model": "linear_graph",
                "horizon": h,
                "penalty": penalties[best],
                "selection_rank_ic": sel[best],
                "grid_edge": grid_edge(best, len(penalties)),
            }
        )
        out = out.with_columns(frames[best][f"pred_{h}d"].alias(f"linear_graph_{h}d"))
    return out, choices
