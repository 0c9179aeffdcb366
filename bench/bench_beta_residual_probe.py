"""Probe: the ridge start fitted on labels with each date's beta exposure taken out, on the tuning markets.

On ``realistic`` the 5-20-day truth leans on the beta premium (beta alone agrees 0.33-0.62 with it on the
selection windows, ``bench_factor_agreement.py``), while the realised labels carry beta x the market's move,
whose sign over the train window decides what a fit learns about beta. Variant ``resid``: per date and
horizon, the z-scored label minus its cross-sectional projection on the ``beta_60d`` input, so the fit learns
the other effects without that noise (and without the premium). Both variants: ridge start without the deep
path, penalty per horizon on validation (each against its own labels), fitted on the train window.
Scored on the selection window: agreement with the oracle (``agree``) and with the oracle less its own
per-date projection on ``beta_60d`` (``agree_resid``: the part of the truth that is not beta). Exploratory:
it decides nothing; a lever built on it must pass a pre-registered sweep.

``--premium`` adds the thirty-fourth sweep's variants (docs/benchmarks.md): the ``resid`` fit plus the beta
premium estimated apart, ``b_t,h * (u_beta - date mean)``, where ``b_t,h`` is the mean per-date slope of the
z-scored h-day label on the beta input over every usable date s with s + h <= t (point-in-time: labels known
at t), shrunk by its Newey-West t as ``b t^2 / (1 + t^2)`` (``premium``), unshrunk (``premium_raw``), or the
train window's mean slope, fixed (``premium_train``: the decomposition without the longer history).

Run: ./run shell, then python bench/bench_beta_residual_probe.py --preset realistic --n-stocks 1000 --market-seeds 11 12 13 14 [--premium]
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import torch
from bench_linear_probe import tuning_market_args
from bench_throughput import inputs

from atft_dagster.evaluation.metrics import newey_west_t
from atft_dagster.evaluation.report import oracle_agreement
from atft_dagster.market import market_preset
from atft_dagster.model import TrainingConfig
from atft_dagster.model.atft import ATFTGATFAN
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ic import daily_ic_device
from atft_dagster.training.linear_graph import NO_DEEP_PATH
from atft_dagster.training.skip_init import set_skip, skip_batches, zero_deep_head, zscore_by_date
from atft_dagster.training.train import config_folds, predict

BETA = "beta_60d"


def residual_by_date(
    yz: torch.Tensor, b: torch.Tensor, counts: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(``yz`` less, per date and column, its least-squares projection on the date's centred ``b``; the
    projections' slopes, (dates, columns), NaN where a date has too few rows)."""
    out, start = yz.clone(), 0
    slopes = torch.full((len(counts), yz.shape[1]), torch.nan, dtype=yz.dtype)
    for d, n in enumerate(counts):
        bb = b[start : start + n]
        for j in range(yz.shape[1]):
            y = yz[start : start + n, j]
            ok = torch.isfinite(y) & torch.isfinite(bb)
            if ok.sum() < 3:
                continue
            x = bb[ok] - bb[ok].mean()
            coef = (x @ (y[ok] - y[ok].mean())) / (x @ x).clamp_min(1e-12)
            out[start : start + n, j][ok] = y[ok] - coef * x
            slopes[d, j] = coef
        start += n
    return out, slopes


def ridge_start(
    u: torch.Tensor,
    y: torch.Tensor,
    uv: torch.Tensor,
    yv: torch.Tensor,
    cv: list[int],
    cfg: TrainingConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The ridge start on train rows (u, z-scored labels y), one solve per horizon and penalty of
    ``skip_ridge_penalties`` (per row), each horizon's penalty chosen by the validation rows' (uv, yv; ``cv``
    rows per date) mean daily RankIC: ((H, d) weights, {horizon: penalty})."""
    eye = torch.eye(u.shape[1], dtype=torch.float64)
    weight = torch.zeros(len(cfg.horizons), u.shape[1], dtype=torch.float64)
    chosen = {}
    for j, h in enumerate(cfg.horizons):
        ok = torch.isfinite(y[:, j])
        gram, cross, n = u[ok].T @ u[ok], u[ok].T @ y[ok, j], int(ok.sum())
        fits = {p: torch.linalg.solve(gram + n * p * eye, cross) for p in cfg.skip_ridge_penalties}
        val = {
            p: float(daily_ic_device(uv @ w, yv[:, j], cv, cfg.min_stocks_per_date, True).nanmean())
            for p, w in fits.items()
        }
        chosen[f"{h}d"] = max(val, key=val.get)
        weight[j] = fits[chosen[f"{h}d"]]
    return weight, chosen


def premium_estimate(slopes: np.ndarray, dates: np.ndarray, t: int, h: int, mode: str) -> float:
    """``b_t,h``: the mean of the per-date beta slopes of horizon h over the dates whose h-day label is known
    at t (``dates`` + h <= t); ``shrunk`` multiplies it by t^2 / (1 + t^2), t its Newey-West t (lag h - 1)."""
    x = slopes[dates + h <= t]
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return 0.0
    b = float(x.mean())
    if mode == "raw":
        return b
    t_stat = newey_west_t(x, h - 1)
    return b * t_stat**2 / (1.0 + t_stat**2) if np.isfinite(t_stat) else 0.0


def with_premium(
    frame: pl.DataFrame, beta_rows: np.ndarray, row_dates: np.ndarray, horizons: list[int], coef
) -> pl.DataFrame:
    """``frame`` (rows in ``beta_rows``' order) with ``coef(t, h) * (u_beta - date mean)`` added to each
    ``pred_{h}d``; ``row_dates`` holds each row's date index."""
    days, where = np.unique(row_dates, return_inverse=True)
    centred = beta_rows - (np.bincount(where, beta_rows) / np.bincount(where))[where]
    cols = []
    for h in horizons:
        b = dict(zip(days.tolist(), (coef(int(t), h) for t in days), strict=True))
        add = np.array([b[t] for t in row_dates.tolist()]) * centred
        cols.append((pl.col(f"pred_{h}d") + pl.Series(add)).alias(f"pred_{h}d"))
    return frame.with_columns(cols)


def zscored_rows(model, data: PanelTensors, dates: list[int], cfg: TrainingConfig):
    """The ``dates``' skip inputs u (n, d), their labels z-scored per date and clipped, and rows per date."""
    parts = list(skip_batches(model, data, dates, cfg.batch_dates))
    counts = [c for p in parts for c in p[2]]
    u = torch.cat([p[0] for p in parts])
    return u, zscore_by_date(torch.cat([p[1] for p in parts]), counts, cfg.label_clip), counts


def linear_setup(preset: str, seed: int, n_stocks: int, **market):
    """(config, source, features, panel tensors, fold 0, the model without its deep path: the ridge start's
    frame) of a tuning market; ``market`` overrides further market fields (``n_days``)."""
    cfg = TrainingConfig()
    src, reg, feats, graph = inputs(market_preset(preset, seed=seed, n_stocks=n_stocks, **market))
    data = PanelTensors.for_model(feats, reg, graph, cfg)
    split = config_folds(data, cfg)[0]
    model = ATFTGATFAN(data.n_features, cfg.model_copy(update=NO_DEEP_PATH))
    zero_deep_head(model)
    return cfg, src, feats, data, split, model


def probe(preset: str, seed: int, n_stocks: int, premium: bool = False) -> list[dict]:
    cfg, src, feats, data, split, model = linear_setup(preset, seed, n_stocks)
    j_beta = data.names.index(BETA)

    def rows(dates: list[int]):
        parts = list(skip_batches(model, data, dates, cfg.batch_dates))
        u = torch.cat([p[0] for p in parts])
        counts = [c for p in parts for c in p[2]]
        yz = zscore_by_date(torch.cat([p[1] for p in parts]), counts, cfg.label_clip)
        resid, slopes = residual_by_date(yz, u[:, j_beta], counts)
        return u, {"default": yz, "resid": resid}, counts, slopes

    (u, ys, _, slopes), (uv, yv, cv, _) = rows(split.train), rows(split.val)
    # what the train window's labels say about beta: the mean per-date slope on the beta input (the truth's
    # is positive: the preset prices beta), and the t of the window's mean daily market return
    train_days = [data.dates[t] for t in split.train]
    mkt = feats.filter(pl.col("date").is_in(train_days)).group_by("date").agg(pl.col("mkt_ret_1d").first())
    m = mkt["mkt_ret_1d"].drop_nulls().to_numpy()
    window = {"train_market_t": float(m.mean() / m.std(ddof=1) * np.sqrt(len(m)))}
    for j, h in enumerate(cfg.horizons):
        window[f"train_beta_slope_{h}d"] = float(np.nanmean(slopes[:, j].numpy()))
    print(json.dumps({"market_seed": seed} | {k: round(v, 4) for k, v in window.items()}), flush=True)
    sel_dates = [data.dates[t] for t in split.selection]
    truth = src.oracle(min(sel_dates), max(sel_dates)).join(
        feats.select("date", "code", BETA), on=["date", "code"], how="left"
    )
    for h in cfg.horizons:  # the oracle less its per-date projection on beta
        o, b = pl.col(f"oracle_{h}d"), pl.col(BETA)
        bc, oc = b - b.mean().over("date"), o - o.mean().over("date")
        slope = (bc * oc).sum().over("date") / (bc * bc).sum().over("date")
        truth = truth.with_columns((oc - slope * bc).alias(f"resid_oracle_{h}d"))
    if premium:  # the per-date beta slopes over every usable date up to the selection window's end
        hist = np.array([t for t in data.usable_dates(cfg.min_stocks_per_date) if t <= max(split.selection)])
        hist_slopes = torch.cat(
            [
                residual_by_date(zscore_by_date(y, c, cfg.label_clip), uu[:, j_beta], c)[1]
                for uu, y, c in skip_batches(model, data, hist.tolist(), cfg.batch_dates)
            ]
        ).numpy()
        sel = list(skip_batches(model, data, split.selection, cfg.batch_dates))
        sel_beta = torch.cat([p[0][:, j_beta] for p in sel]).numpy()
        sel_y = torch.cat([p[1] for p in sel]).numpy()
        sel_dates = np.repeat(np.array(split.selection), [n for p in sel for n in p[2]])
        train_slope = np.nanmean(slopes.numpy(), axis=0)
        coefs = {
            "premium": lambda t, h: premium_estimate(
                hist_slopes[:, cfg.horizons.index(h)], hist, t, h, "shrunk"
            ),
            "premium_raw": lambda t, h: premium_estimate(
                hist_slopes[:, cfg.horizons.index(h)], hist, t, h, "raw"
            ),
            "premium_train": lambda t, h: float(train_slope[cfg.horizons.index(h)]),
        }
    out = []
    for variant, y in ys.items():
        weight, chosen = ridge_start(u, y, uv, yv[variant], cv, cfg)
        set_skip(model, weight)
        base = predict(model, data, split.selection, cfg.batch_dates)
        frames = {variant: base}
        if premium and variant == "resid":
            labels = base.select([f"label_{h}d" for h in cfg.horizons]).to_numpy()
            if not np.allclose(labels, sel_y, equal_nan=True):
                raise RuntimeError("predict's rows are not in skip_batches' order")
            for name, coef in coefs.items():
                frames[name] = with_premium(base, sel_beta, sel_dates, cfg.horizons, coef)
        for name, frame in frames.items():
            frame = frame.join(truth, on=["date", "code"])
            row = {"preset": preset, "market_seed": seed, "variant": name, "penalty": chosen} | window
            if name.startswith("premium"):
                row |= {f"premium_first_{h}d": coefs[name](int(sel_dates[0]), h) for h in cfg.horizons}
            for h in cfg.horizons:
                col = {"p": f"pred_{h}d"}
                row[f"agree_{h}d"] = oracle_agreement(
                    frame, col, f"label_{h}d", f"oracle_{h}d", cfg.min_stocks_per_date
                )["p"]
                row[f"agree_resid_{h}d"] = oracle_agreement(
                    frame, col, f"label_{h}d", f"resid_oracle_{h}d", cfg.min_stocks_per_date
                )["p"]
            print(
                json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}),
                flush=True,
            )
            out.append(row)
    return out


def by_variant(rows: list[dict]) -> dict[str, dict[int, dict]]:
    """{variant: {market seed: row}}, variants in their first row's order."""
    out: dict[str, dict[int, dict]] = {}
    for r in rows:
        out.setdefault(r["variant"], {})[r["market_seed"]] = r
    return out


def mean_change(rs: dict, base: dict, seeds: list[int], hs, prefix: str = "agree") -> list[float]:
    """Per market of ``seeds``: the mean over horizons ``hs`` of ``rs`` less ``base`` in ``{prefix}_{h}d``."""
    return [float(np.mean([rs[s][f"{prefix}_{h}d"] - base[s][f"{prefix}_{h}d"] for h in hs])) for s in seeds]


def signed(xs: list[float]) -> str:
    """Per-market changes, then their mean in brackets."""
    return " / ".join(f"{x:+.3f}" for x in xs) + f" ({np.mean(xs):+.3f})"


def main() -> None:
    parser = tuning_market_args("realistic", (11, 12, 13, 14), 1000)
    parser.add_argument("--premium", action="store_true", help="add the thirty-fourth sweep's variants")
    args = parser.parse_args()
    rows = [r for seed in args.market_seeds for r in probe(args.preset, seed, args.n_stocks, args.premium)]
    seeds, variants = args.market_seeds, by_variant(rows)
    print(
        "\n| variant | agreement 5 / 10 / 20 d (mean), market "
        + " / ".join(map(str, seeds))
        + " | with the non-beta truth |"
    )
    print("|---|---|---|")
    for v, rs in variants.items():
        a = [np.mean([rs[s][f"agree_{h}d"] for h in (5, 10, 20)]) for s in seeds]
        b = [np.mean([rs[s][f"agree_resid_{h}d"] for h in (5, 10, 20)]) for s in seeds]
        print(
            f"| {v} | " + " / ".join(f"{x:.3f}" for x in a) + " | " + " / ".join(f"{x:.3f}" for x in b) + " |"
        )
    base = variants["default"]
    print(
        "\n| change from default | L = 5-20 d mean, per market (mean) | 1 d, per market (mean) |\n|---|---|---|"
    )
    for v, rs in list(variants.items())[1:]:
        print(
            f"| {v} | {signed(mean_change(rs, base, seeds, (5, 10, 20)))} | {signed(mean_change(rs, base, seeds, (1,)))} |"
        )


if __name__ == "__main__":
    main()
