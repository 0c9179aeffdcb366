"""Per-day cross-sectional metrics on test days. Everything is computed per date, then aggregated over
dates; a date with fewer than ``min_stocks`` stocks is excluded and counted.

Conventions (Qlib / JPX): IC and RankIC are the per-day Pearson and Spearman correlations, averaged;
ICIR = mean / std of the daily values (not annualised). The t-statistic of the mean daily IC is
Newey–West with lag h − 1 for an h-day label (h-day labels of consecutive days overlap by h − 1 days, so
their ICs are autocorrelated; lag 0 gives the plain t = ICIR · sqrt(days)). Long-short: top and bottom
quintile, equal weight, daily return (long - short) / 2, annualised ×252, Sharpe ×sqrt(252). JPX: rank all
stocks, top 200 long and bottom 200 short with weights linear from 2 to 1, daily spread = weighted long
mean - weighted short mean, score = mean / std (sample std), not annualised. With fewer than 400 stocks a
side holds ``min(200, n // 2)`` stocks, so the two sides cover the whole universe and the score is not
comparable to the competition's (about 2000 stocks); ``jpx_side`` reports the mean side size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

TRADING_DAYS = 252
JPX_PORTFOLIO = 200


def _rank(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), as Spearman needs."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    xs = x[order]
    boundaries = np.flatnonzero(np.diff(xs) != 0) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(x)]])
    for s, e in zip(starts, ends, strict=True):
        if e - s > 1:
            ranks[order[s:e]] = (s + e - 1) / 2.0
    return ranks


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return pearson(_rank(a), _rank(b))


def daily_ic(
    pred: list[np.ndarray], label: list[np.ndarray], min_stocks: int = 2, rank: bool = False
) -> np.ndarray:
    """One IC per date (NaN labels dropped; dates with fewer than ``min_stocks`` give NaN)."""
    out = []
    fn = spearman if rank else pearson
    for p, y in zip(pred, label, strict=True):
        ok = np.isfinite(p) & np.isfinite(y)
        out.append(fn(p[ok], y[ok]) if ok.sum() >= min_stocks else np.nan)
    return np.asarray(out)


def quantile_long_short(p: np.ndarray, y: np.ndarray, q: float = 0.2) -> tuple[float, np.ndarray, np.ndarray]:
    """(long-short return, long members, short members): top and bottom q of p, equal weight, (L - S)/2."""
    n = len(p)
    k = max(1, int(np.floor(n * q)))
    order = np.argsort(p, kind="mergesort")
    short, long = order[:k], order[-k:]
    return float((y[long].mean() - y[short].mean()) / 2.0), long, short


def jpx_spread(p: np.ndarray, y: np.ndarray, size: int = JPX_PORTFOLIO) -> float:
    """JPX daily spread: rank by p; top ``size`` long, bottom ``size`` short, weights linspace(2, 1)."""
    k = min(size, len(p) // 2)
    if k == 0:
        return float("nan")
    w = np.linspace(2, 1, k)
    order = np.argsort(-p, kind="mergesort")
    long, short = y[order[:k]], y[order[::-1][:k]]
    return float((long * w).sum() / w.mean() - (short * w).sum() / w.mean())


def decile_means(p: np.ndarray, y: np.ndarray, n: int = 10) -> np.ndarray:
    order = np.argsort(p, kind="mergesort")
    return np.array([y[chunk].mean() for chunk in np.array_split(order, n)])


def max_drawdown(returns: np.ndarray) -> float:
    wealth = np.cumprod(1 + returns)
    peak = np.maximum.accumulate(np.concatenate([[1.0], wealth]))[1:]
    return float((wealth / peak - 1).min()) if len(wealth) else float("nan")


@dataclass(frozen=True)
class MetricReport:
    days: int
    days_excluded: int
    ic: float
    rank_ic: float
    icir: float
    rank_icir: float
    ic_t: float  # Newey–West, lag nw_lag
    rank_ic_t: float
    nw_lag: int
    hit_rate: float
    ls_annual_return: float
    ls_sharpe: float
    ls_max_drawdown: float
    ls_turnover: float
    jpx_sharpe: float
    jpx_side: float  # mean stocks per side of the JPX portfolio (200 only with >= 400 stocks)
    deciles: list[float]

    def as_dict(self) -> dict:
        return asdict(self)


def newey_west_t(x: np.ndarray, lag: int) -> float:
    """t-statistic of mean(x) with the Newey–West (Bartlett kernel) long-run variance up to ``lag``:
    var(mean) = (g0 + 2 sum_{l=1..lag} (1 - l / (lag + 1)) g_l) / (n - 1), g_l the lag-l autocovariance
    (sum over n - l products, divided by n). Dividing by n - 1, not n, makes lag 0 the plain
    t = mean / (sd / sqrt(n)) with the sample standard deviation."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 2:
        return float("nan")
    d = x - x.mean()
    lrv = float(d @ d) / n
    for lag_l in range(1, min(lag, n - 1) + 1):
        lrv += 2.0 * (1.0 - lag_l / (lag + 1)) * float(d[lag_l:] @ d[:-lag_l]) / n
    return float(x.mean() / np.sqrt(lrv / (n - 1))) if lrv > 0 else float("nan")


def _ir(x: np.ndarray, nw_lag: int = 0) -> tuple[float, float, float]:
    """(mean, IR, Newey–West t with ``nw_lag``)."""
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return float(np.mean(x)) if len(x) else float("nan"), float("nan"), float("nan")
    sd = x.std(ddof=1)
    ir = float(x.mean() / sd) if sd > 0 else float("nan")
    return float(x.mean()), ir, newey_west_t(x, nw_lag)


def evaluate_predictions(
    frame: pl.DataFrame, pred: str, label: str, min_stocks: int = 20, nw_lag: int = 0
) -> tuple[MetricReport, pl.DataFrame]:
    """All metrics of one prediction column against one label column, and the per-day series
    (date, ic, rank_ic, ls_return, jpx_spread). ``nw_lag``: h - 1 for an h-day label."""
    rows, deciles, hits = [], [], []
    prev_long: set | None = None
    prev_short: set | None = None
    turnovers, excluded, sides = [], 0, []
    for part in (
        frame.select("date", "code", pred, label)
        .drop_nulls()
        .sort("date", "code")
        .partition_by("date", maintain_order=True)
    ):
        p, y, codes = part[pred].to_numpy(), part[label].to_numpy(), part["code"].to_numpy()
        ok = np.isfinite(p) & np.isfinite(y)
        p, y, codes = p[ok], y[ok], codes[ok]
        if len(p) < min_stocks:
            excluded += 1
            continue
        ls, long, short = quantile_long_short(p, y)
        lset, sset = set(codes[long]), set(codes[short])
        if prev_long is not None:
            turnovers.append((len(lset - prev_long) / len(lset) + len(sset - prev_short) / len(sset)) / 2)
        prev_long, prev_short = lset, sset
        rows.append((part["date"][0], pearson(p, y), spearman(p, y), ls, jpx_spread(p, y)))
        sides.append(min(JPX_PORTFOLIO, len(p) // 2))
        deciles.append(decile_means(p, y))
        hits.append(float(np.mean(np.sign(p - np.median(p)) == np.sign(y - np.median(y)))))
    daily = pl.DataFrame(
        rows,
        schema={
            "date": pl.Date,
            "ic": pl.Float64,
            "rank_ic": pl.Float64,
            "ls_return": pl.Float64,
            "jpx_spread": pl.Float64,
        },
        orient="row",
    )
    ic_m, ic_ir, ic_t = _ir(daily["ic"].to_numpy(), nw_lag)
    ric_m, ric_ir, ric_t = _ir(daily["rank_ic"].to_numpy(), nw_lag)
    ls = daily["ls_return"].to_numpy()
    jpx = daily["jpx_spread"].to_numpy()
    sd = ls.std(ddof=1) if len(ls) > 1 else float("nan")
    report = MetricReport(
        days=daily.height,
        days_excluded=excluded,
        ic=ic_m,
        rank_ic=ric_m,
        icir=ic_ir,
        rank_icir=ric_ir,
        ic_t=ic_t,
        rank_ic_t=ric_t,
        nw_lag=nw_lag,
        hit_rate=float(np.mean(hits)) if hits else float("nan"),
        ls_annual_return=float(ls.mean() * TRADING_DAYS) if len(ls) else float("nan"),
        ls_sharpe=float(ls.mean() / sd * np.sqrt(TRADING_DAYS)) if sd and sd > 0 else float("nan"),
        ls_max_drawdown=max_drawdown(ls),
        ls_turnover=float(np.mean(turnovers)) if turnovers else float("nan"),
        jpx_sharpe=float(jpx.mean() / jpx.std(ddof=1))
        if len(jpx) > 1 and jpx.std(ddof=1) > 0
        else float("nan"),
        jpx_side=float(np.mean(sides)) if sides else float("nan"),
        deciles=[float(v) for v in np.mean(deciles, axis=0)] if deciles else [],
    )
    return report, daily
