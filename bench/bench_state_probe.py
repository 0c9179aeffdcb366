"""Probe (thirty-fifth sweep): the ridge start's feature groups re-weighted by the market's state.

``realistic`` prices a momentum crash: in the stress regime (about 15 % of days, market volatility x 1.9)
momentum turns negative and reversal doubles, while a fit over the train window averages the regimes. Variant
``state``: the default ridge start ``w_h`` (bench_beta_residual_probe.ridge_start), its group sub-scores
``S_h = U B_h`` (skip_timing.group_basis), and the point-in-time state ``s_t``, the log of ``mkt_vol_20d``
z-scored with the train window's mean and s.d. On the train window the default's residual ``y_z - U w_h`` is
regressed on ``X = S_h * s_t`` (one coefficient per group and horizon),
``(X'X + k diag(X'X)) c = X'r``, with ``k`` per horizon from ``STATE_PENALTIES`` by the validation window's mean
daily RankIC (``inf``: no state term). The prediction is the default's (``predict``, timing as the default
has it) plus ``X c``. Diagnostic ``state_true`` (not point-in-time; decides nothing): ``s_t`` the true stress
indicator, centred by its train-window mean. Scored on the selection window by the agreement with the oracle,
on all its dates and apart on its stress and other dates. ``--hmm`` adds the thirty-sixth sweep's state,
``P(high-variance state | market returns through t)`` of a two-state Markov-switching model fitted up to the
train window's end (``regime_filter.py``), centred by its train-window mean, with the penalty chosen on
validation (``hmm``) or fixed (``hmm_k0.1``, ``hmm_k1``, ``hmm_k10``).

Run: ./run shell, then python bench/bench_state_probe.py --preset realistic --n-stocks 1000 --market-seeds 11 12 13 14 15 16 17 18
"""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import torch
from bench_beta_residual_probe import by_variant, linear_setup, mean_change, ridge_start, signed
from bench_linear_probe import tuning_market_args
from regime_filter import filtered_high_vol

from atft_dagster.evaluation.report import oracle_agreement
from atft_dagster.market.simulator import STRESS_REGIME
from atft_dagster.training.ic import daily_ic_device
from atft_dagster.training.skip_init import set_skip, skip_batches, zscore_by_date
from atft_dagster.training.skip_timing import group_basis
from atft_dagster.training.train import predict

STATE = "mkt_vol_20d"
STATE_PENALTIES = (0.1, 1.0, 10.0, 100.0, math.inf)
HMM_FIXED_PENALTIES = (0.1, 1.0, 10.0)


def state_coefficients(
    x: torch.Tensor,
    r: torch.Tensor,
    xv: torch.Tensor,
    base_v: torch.Tensor,
    yv: torch.Tensor,
    cv,
    cfg,
    penalties: tuple[float, ...] = STATE_PENALTIES,
) -> tuple[torch.Tensor, float]:
    """((G,) coefficients of the state columns ``x`` on the residual ``r``, the penalty chosen): ridge
    scaled by the diagonal, the penalty by the validation rows' mean daily RankIC of ``base_v + xv c``."""
    ok = torch.isfinite(r)
    gram, cross = x[ok].T @ x[ok], x[ok].T @ r[ok]
    diag = torch.diag(gram.diagonal().clamp_min(1e-12))
    best, best_ic = torch.zeros(x.shape[1], dtype=x.dtype), -math.inf
    chosen = math.inf
    for k in penalties:
        c = (
            torch.zeros(x.shape[1], dtype=x.dtype)
            if math.isinf(k)
            else torch.linalg.solve(gram + k * diag, cross)
        )
        ic = float(daily_ic_device(base_v + xv @ c, yv, cv, cfg.min_stocks_per_date, True).nanmean())
        if ic > best_ic:
            best, best_ic, chosen = c, ic, k
    return best, chosen


def probe(preset: str, seed: int, n_stocks: int, hmm: bool = False) -> list[dict]:
    cfg, src, feats, data, split, model = linear_setup(preset, seed, n_stocks)
    market = src.market()
    day_index = {d: i for i, d in enumerate(market.days)}
    vol = dict(feats.group_by("date").agg(pl.col(STATE).first()).iter_rows())

    def rows(dates: list[int]):
        parts = list(skip_batches(model, data, dates, cfg.batch_dates))
        counts = [c for p in parts for c in p[2]]
        u = torch.cat([p[0] for p in parts])
        y = torch.cat([p[1] for p in parts])
        row_dates = np.repeat(np.array(dates), counts)
        return u, y, zscore_by_date(y, counts, cfg.label_clip), counts, row_dates

    (u, _, yz, _, td), (uv, _, yvz, cv, vd), (us, ys_raw, _, _, sd) = (
        rows(split.train),
        rows(split.val),
        rows(split.selection),
    )
    weight, chosen = ridge_start(u, yz, uv, yvz, cv, cfg)
    set_skip(model, weight)
    base = predict(model, data, split.selection, cfg.batch_dates)
    labels = base.select([f"label_{h}d" for h in cfg.horizons]).to_numpy()
    if not np.allclose(labels, ys_raw.numpy(), equal_nan=True):
        raise RuntimeError("predict's rows are not in skip_batches' order")
    basis = group_basis(weight, data.groups, model.with_neighbour_mean)

    # a date before the state's 20-day warm-up has none: it sits at the train mean (state 0)
    log_vol = {
        t: math.log(vol[data.dates[t]]) if vol[data.dates[t]] else math.nan
        for t in split.train + split.val + split.selection
    }
    train_lv = np.array([log_vol[t] for t in split.train])
    train_lv = train_lv[np.isfinite(train_lv)]
    stress = {t: float(market.regime[day_index[data.dates[t]]] == STRESS_REGIME) for t in log_vol}
    train_stress = np.mean([stress[t] for t in split.train])
    states = {
        "state": {t: np.nan_to_num((v - train_lv.mean()) / train_lv.std()) for t, v in log_vol.items()},
        "state_true": {t: s - train_stress for t, s in stress.items()},
    }
    variants = {"state": ("state", STATE_PENALTIES), "state_true": ("state_true", STATE_PENALTIES)}
    if hmm:  # thirty-sixth sweep: P(high-variance state | market returns through t), EM up to the train's end
        mkt = dict(feats.group_by("date").agg(pl.col("mkt_ret_1d").first()).iter_rows())
        r = np.array([np.nan if mkt.get(d) is None else mkt[d] for d in data.dates], dtype=float)
        p_high = filtered_high_vol(r, max(split.train))
        train_p = np.mean([p_high[t] for t in split.train])
        states["hmm"] = {t: float(p_high[t] - train_p) for t in log_vol}
        variants["hmm"] = ("hmm", STATE_PENALTIES)
        for k in HMM_FIXED_PENALTIES:
            variants[f"hmm_k{k:g}"] = ("hmm", (k,))
    sel_days = [data.dates[t] for t in split.selection]
    stress_days = [data.dates[t] for t in split.selection if stress[t] == 1.0]
    truth = src.oracle(min(sel_days), max(sel_days))
    frames, picks = {"default": base}, {}

    def col(state: dict[int, float], dates: np.ndarray) -> torch.Tensor:
        return torch.tensor([state[int(t)] for t in dates], dtype=torch.float64)[:, None]

    for name, (key, penalties) in variants.items():
        s, add, picks[name] = states[key], {}, {}
        for j, h in enumerate(cfg.horizons):
            x, xv, xs = u @ basis[j] * col(s, td), uv @ basis[j] * col(s, vd), us @ basis[j] * col(s, sd)
            c, k = state_coefficients(
                x, yz[:, j] - u @ weight[j], xv, uv @ weight[j], yvz[:, j], cv, cfg, penalties
            )
            add[f"pred_{h}d"] = (xs @ c).numpy()
            picks[name][f"{h}d"] = "none" if math.isinf(k) else k
        frames[name] = base.with_columns([(pl.col(k) + pl.Series(v)).alias(k) for k, v in add.items()])
    out = []
    for name, frame in frames.items():
        frame = frame.join(truth, on=["date", "code"])
        row = {
            "preset": preset,
            "market_seed": seed,
            "variant": name,
            "penalty": chosen,
            "state_penalty": picks.get(name),
            "stress_days": {"train": int(sum(stress[t] for t in split.train)), "selection": len(stress_days)},
        }
        parts = {"": frame, "stress_": frame.filter(pl.col("date").is_in(stress_days))}
        parts["other_"] = frame.filter(~pl.col("date").is_in(stress_days))
        for h in cfg.horizons:
            for tag, part in parts.items():
                row[f"{tag}agree_{h}d"] = (
                    oracle_agreement(
                        part, {"p": f"pred_{h}d"}, f"label_{h}d", f"oracle_{h}d", cfg.min_stocks_per_date
                    )["p"]
                    if part.height
                    else float("nan")
                )
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        out.append(row)
    return out


def main() -> None:
    parser = tuning_market_args("realistic", (11, 12, 13, 14, 15, 16, 17, 18), 1000)
    parser.add_argument("--hmm", action="store_true", help="add the thirty-sixth sweep's variants")
    args = parser.parse_args()
    rows = [r for seed in args.market_seeds for r in probe(args.preset, seed, args.n_stocks, args.hmm)]
    seeds, variants, hs = args.market_seeds, by_variant(rows), (1, 5, 10, 20)
    print(
        f"\n| variant | A = 1-20 d mean agreement, market {' / '.join(map(str, seeds))} (mean) | 1 d (mean) |"
    )
    print("|---|---|---|")
    for v, rs in variants.items():
        a = [np.mean([rs[s][f"agree_{h}d"] for h in hs]) for s in seeds]
        one = np.mean([rs[s]["agree_1d"] for s in seeds])
        print(f"| {v} | " + " / ".join(f"{x:.3f}" for x in a) + f" ({np.mean(a):.3f}) | {one:.3f} |")
    base = variants["default"]
    stressed = [s for s in seeds if base[s]["stress_days"]["selection"]]
    print(
        "\n| change from default | A per market (mean) | 1 d (mean) | A on stress dates (markets with any) |"
    )
    print("|---|---|---|---|")
    for v, rs in list(variants.items())[1:]:
        one = np.mean(mean_change(rs, base, seeds, (1,)))
        stress = " / ".join(f"{x:+.3f}" for x in mean_change(rs, base, stressed, hs, "stress_agree"))
        print(f"| {v} | {signed(mean_change(rs, base, seeds, hs))} | {one:+.3f} | {stress} |")


if __name__ == "__main__":
    main()
