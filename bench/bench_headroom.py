"""Benchmark: where the 1-day headroom above the linear graph model is, on the tuning markets.

Three measurements, none reading a test window:

1. **The oracle's parts.** Mean daily RankIC against the next day's return of the 1-day oracle and of
   versions of it with a non-linear term made linear: the volume-shock term removed, the reversal at its
   calm strength in the stress regime too, both. Over the whole history after a 60-day burn-in, and over
   fold 0's selection window. The difference is all a perfect model of those terms could add.
2. **The linear graph model against the oracle on the selection window** (ridge on [x_L, m_L], the model's
   input skip and the report's ``linear_graph`` baseline; penalty the best of ``PENALTIES`` there).
3. **Extra inputs for that ridge**: abnormal volume × return products (volume-shock asymmetry), the inputs
   times date-level market-state features (regime-dependent coefficients, as in Gu, Kelly & Xiu's
   characteristic × macro interactions), and — a ceiling no real market has — the simulator's exact
   market- and sector-residual return in place of ``alpha_1d``.

Run: ./run shell, then python bench/bench_headroom.py [--market-seeds 11 12] [--n-stocks 200]
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import torch
from bench_linear_probe import mean_rank_ic, stacked, tuning_market_args
from bench_throughput import market_tables
from scipy.stats import spearmanr

from atft_dagster.graph import build_stock_graph
from atft_dagster.market import SyntheticMarket, market_preset
from atft_dagster.market.simulator import STRESS_REGIME
from atft_dagster.model import TrainingConfig
from atft_dagster.model.atft import neighbour_mean
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.train import config_folds

PENALTIES = (1e3, 3e3, 1e4, 3e4, 1e5, 3e5)
POWER = 2.0  # the model's neighbour_weight_power
BURN_IN = 60
RETURNS = ("ret_1d", "excess_ret_1d", "rel_sec_ret_1d", "alpha_1d", "sec_z_ret_1d", "cs_z_ret_1d")
VOLUMES = ("volume_z_20", "volume_ratio_20", "volume_change_1d", "cs_z_volume_ratio_20")
STATES = ("mkt_vol_20d", "mkt_vol_ratio_20_60")
INPUT_SETS = {
    "[x_L, m_L] (linear_graph)": ("base",),
    "+ abnormal volume x return": ("base", "volume"),
    "+ inputs x market state": ("base", "state"),
    "+ both": ("base", "volume", "state"),
}
EXACT = "[x_L, m_L], alpha_1d := exact residual (ceiling)"
HS = [f"{h}d" for h in TrainingConfig().horizons]


def oracle_parts(mk: SyntheticMarket) -> dict[str, np.ndarray]:
    """(T, N) 1-day oracle variants: the full one and its linearised versions."""
    p = mk.effect_parts
    full = sum(p.values())
    mult = mk.config.effects.reversal_stress_multiplier
    stress = (mk.regime == STRESS_REGIME)[:, None]
    calm_rev = np.where(stress, p["reversal"] / mult if mult else 0.0, p["reversal"])
    return {
        "oracle": full,
        "no volume-shock term": full - p["volume_shock"],
        "reversal at calm strength always": full - p["reversal"] + calm_rev,
        "both linear": full - p["reversal"] + calm_rev - p["volume_shock"],
        "peer lead-lag term only": p["peer_lead_lag"],
    }


def exact_residual(mk: SyntheticMarket) -> pl.DataFrame:
    """(date, code, e) with e the latent market- and sector-residual return, recovered from the reversal
    term (-reversal · stress multiplier · e); needs reversal > 0."""
    eff = mk.config.effects
    mult = np.where(mk.regime == STRESS_REGIME, eff.reversal_stress_multiplier, 1.0)[:, None]
    e = mk.effect_parts["reversal"] / (-eff.reversal * mult)
    T, N = e.shape
    days = pl.Series(np.repeat(np.array(mk.days, dtype="datetime64[D]"), N)).cast(pl.Date)
    return pl.DataFrame({"date": days, "code": np.tile(mk.codes, T), "e": e.ravel()})


def daily_ic(score: np.ndarray, mk: SyntheticMarket, days: range | list[int]) -> float:
    """Mean over ``days`` of the RankIC of score[t] against the return of day t+1."""
    out = []
    for t in days:
        ok = mk.observed[t] & mk.observed[t + 1]
        out.append(spearmanr(score[t][ok], mk.returns[t + 1][ok])[0])
    return float(np.mean(out))


def design(data: PanelTensors, t: int) -> dict[str, np.ndarray]:
    """Date t's input blocks and raw labels."""
    b = data.batch([t])
    x = b.x[:, -1].double()
    ix = {n: i for i, n in enumerate(data.names)}
    base = torch.cat(
        [x, neighbour_mean(x, b.edge_index, b.edge_attr[:, 0].clamp_min(0).double() ** POWER)], 1
    )
    vol = []
    for r in RETURNS:
        for v in VOLUMES:
            shock = torch.relu(x[:, ix[v]])
            vol += [shock * x[:, ix[r]], shock * x[:, ix[r]].abs()]
    state = torch.cat([base * x[:, ix[s], None] for s in STATES], 1)  # date-level: constant on the date
    blocks = {"base": base, "volume": torch.stack(vol, 1), "state": state}
    return {k: v.numpy() for k, v in blocks.items()} | {"y": b.y.numpy()}


def ridge_scores(
    train: list[dict], select: list[dict], keys: tuple[str, ...], cfg: TrainingConfig
) -> list[float]:
    """Per horizon, the selection-window RankIC of ridge on ``keys``, best penalty."""
    tr = [(np.concatenate([d[k] for k in keys], 1), d["y"]) for d in train]
    se = [(np.concatenate([d[k] for k in keys], 1), d["y"]) for d in select]
    out = []
    for j in range(len(cfg.horizons)):
        x, y = stacked(tr, j, cfg.label_clip)
        gram, xty = x.T @ x, x.T @ y
        eye = np.eye(x.shape[1])
        out.append(max(mean_rank_ic(se, j, np.linalg.solve(gram + lam * eye, xty)) for lam in PENALTIES))
    return out


def market_rows(seed: int, n_stocks: int, preset: str) -> list[dict]:
    cfg = TrainingConfig()
    src, panel, topix, reg, feats = market_tables(market_preset(preset, seed=seed, n_stocks=n_stocks))
    graph = build_stock_graph(panel, topix)
    mk = src.market()
    data = PanelTensors.for_model(feats, reg, graph, cfg)
    split = config_folds(data, cfg)[0]
    day_of = {d: i for i, d in enumerate(mk.days)}
    sel_days = [day_of[data.dates[t]] for t in split.selection]
    rows = []
    for name, score in oracle_parts(mk).items():
        rows.append(
            {
                "part": "oracle",
                "variant": name,
                "history 1d": daily_ic(score, mk, range(BURN_IN, mk.n_days - 1)),
                "selection 1d": daily_ic(score, mk, sel_days),
            }
        )
    exact = feats.join(exact_residual(mk), on=["date", "code"], how="left")
    exact_data = PanelTensors.for_model(exact.with_columns(alpha_1d=pl.col("e")).drop("e"), reg, graph, cfg)
    for d, sets in ((data, INPUT_SETS), (exact_data, {EXACT: ("base",)})):
        train = [design(d, t) for t in split.train]
        select = [design(d, t) for t in split.selection]
        for name, keys in sets.items():
            ics = ridge_scores(train, select, keys, cfg)
            rows.append({"part": "ridge", "variant": name, **dict(zip(HS, ics, strict=True))})
    return [{"market_seed": seed, **r} for r in rows]


def main() -> None:
    args = tuning_market_args().parse_args()
    rows = []
    for seed in args.market_seeds:
        for r in market_rows(seed, args.n_stocks, args.preset):
            print(
                json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}), flush=True
            )
            rows.append(r)

    def mean(part: str, variant: str, col: str) -> float:
        return float(np.mean([r[col] for r in rows if r["part"] == part and r["variant"] == variant]))

    seeds = " / ".join(map(str, args.market_seeds))
    print(f"\n| 1-day oracle variant ({args.preset}, seeds {seeds}) | whole history | selection window |")
    print("|---|---|---|")
    for v in dict.fromkeys(r["variant"] for r in rows if r["part"] == "oracle"):
        print(f"| {v} | {mean('oracle', v, 'history 1d'):.4f} | {mean('oracle', v, 'selection 1d'):.4f} |")
    print(f"\n| ridge inputs (selection window) | {' | '.join(HS)} | **mean** |")
    print("|---|" + "---|" * (len(HS) + 1))
    for v in [*INPUT_SETS, EXACT]:
        m = [mean("ridge", v, h) for h in HS]
        print(f"| {v} | " + " | ".join(f"{x:.4f}" for x in m) + f" | **{np.mean(m):.4f}** |")


if __name__ == "__main__":
    main()
