"""The feature definitions. Every rolling window looks backward; every cross-section is one date.

Panel columns used: adj_open/high/low/close, adj_volume, close, volume, turnover (raw), sector33_code,
sector17_code. Market features come from TOPIX, calendar features from the trading calendar; both are
date-level and joined by date.
"""

from __future__ import annotations

import math

import polars as pl

from atft_dagster.features.registry import Feature, FeatureRegistry, Helper, Scope, Stage

CODE, DATE, SECTOR, SECTOR17 = "code", "date", "sector33_code", "sector17_code"
RETURN_WINDOWS = (1, 2, 3, 5, 10, 20, 60, 120)
VOL_WINDOWS = (5, 10, 20, 60)
MA_WINDOWS = (5, 10, 20, 60, 120)
RANGE_WINDOWS = (20, 60, 120)
CS_CLIP = 5.0
MAD_SCALE = 1.4826
CALENDAR_CAP = 30  # trading days to/since a holiday are capped here

c, o, h, lo, v = (pl.col(x) for x in ("adj_close", "adj_open", "adj_high", "adj_low", "adj_volume"))


def col(name: str) -> pl.Expr:
    return pl.col(name)


ROW = "_row_in_code"  # 0-based row number within the code; computed before every stage


def per_code(e: pl.Expr) -> pl.Expr:
    """A recursive computation (EWM) restarted for every code."""
    return e.over(CODE)


def within_code(e: pl.Expr, n: int) -> pl.Expr:
    """``e`` evaluated over the whole (code, date)-sorted column, kept only where its window of n rows lies
    inside one code. Identical to ``e.over(code)`` for a window of n rows, and much faster."""
    return pl.when(pl.col(ROW) >= n).then(e) if n > 0 else e


def div(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """a / b, null where b is 0 or null (never inf)."""
    return pl.when(b != 0).then(a / b).otherwise(None)


def rmean(e: pl.Expr, n: int) -> pl.Expr:
    return within_code(e.rolling_mean(n, min_samples=n), n - 1)


def rstd(e: pl.Expr, n: int) -> pl.Expr:
    return within_code(e.rolling_std(n, min_samples=n), n - 1)


def rmax(e: pl.Expr, n: int) -> pl.Expr:
    return within_code(e.rolling_max(n, min_samples=n), n - 1)


def rmin(e: pl.Expr, n: int) -> pl.Expr:
    return within_code(e.rolling_min(n, min_samples=n), n - 1)


def rsum(e: pl.Expr, n: int) -> pl.Expr:
    return within_code(e.rolling_sum(n, min_samples=n), n - 1)


def ema(
    e: pl.Expr, span: int | None = None, alpha: float | None = None, warmup: int | None = None
) -> pl.Expr:
    n = warmup or span or int(round(1 / alpha))
    return per_code(e.ewm_mean(span=span, alpha=alpha, adjust=False, min_samples=n))


def lag(e: pl.Expr, n: int = 1) -> pl.Expr:
    return within_code(e.shift(n), n)


def diff(e: pl.Expr, n: int = 1) -> pl.Expr:
    return within_code(e.diff(n), n)


# ---- helpers (stage BASE, per code) ------------------------------------------------------------
HELPERS: tuple[Helper, ...] = (
    Helper("_r1", c / lag(c) - 1),
    Helper("_logc", c.log()),
    Helper("_lv", v.log1p()),
    Helper("_hl", (h / lo).log()),
    Helper("_co", (c / o).log()),
    Helper("_oc", (o / lag(c)).log()),
    Helper("_rs", (h / c).log() * (h / o).log() + (lo / c).log() * (lo / o).log()),
    Helper("_tr", pl.max_horizontal(h - lo, (h - lag(c)).abs(), (lo - lag(c)).abs())),
    Helper("_pdm", pl.when((h - lag(h) > lag(lo) - lo) & (h - lag(h) > 0)).then(h - lag(h)).otherwise(0.0)),
    Helper(
        "_mdm", pl.when((lag(lo) - lo > h - lag(h)) & (lag(lo) - lo > 0)).then(lag(lo) - lo).otherwise(0.0)
    ),
    Helper("_gain", diff(c).clip(lower_bound=0)),
    Helper("_loss", (-diff(c)).clip(lower_bound=0)),
    Helper("_tp", (h + lo + c) / 3),
    Helper("_dv", pl.coalesce(col("turnover"), col("close") * col("volume"))),
    Helper("_t", pl.col(ROW).cast(pl.Float64)),
    Helper("_up", pl.when(c > lag(c)).then(v).otherwise(0.0)),
)


def _returns() -> list[Feature]:
    out = []
    for n in RETURN_WINDOWS:
        out.append(Feature(f"ret_{n}d", "returns", n, c / lag(c, n) - 1))
        out.append(Feature(f"logret_{n}d", "returns", n, diff(c.log(), n)))
    out.append(Feature("gap_overnight", "returns", 1, col("_oc").exp() - 1))
    out.append(Feature("ret_intraday", "returns", 0, col("_co").exp() - 1))
    return out


def _volatility() -> list[Feature]:
    r = col("_r1")
    out = [Feature(f"vol_{n}d", "volatility", n + 1, rstd(r, n)) for n in VOL_WINDOWS]
    for n in (10, 20):
        out.append(
            Feature(
                f"parkinson_{n}d", "volatility", n, (rmean(col("_hl") ** 2, n) / (4 * math.log(2))).sqrt()
            )
        )
        gk = 0.5 * col("_hl") ** 2 - (2 * math.log(2) - 1) * col("_co") ** 2
        out.append(Feature(f"garman_klass_{n}d", "volatility", n, rmean(gk, n).clip(lower_bound=0).sqrt()))
    for n in (20, 60):
        k = 0.34 / (1.34 + (n + 1) / (n - 1))
        var = rstd(col("_oc"), n) ** 2 + k * rstd(col("_co"), n) ** 2 + (1 - k) * rmean(col("_rs"), n)
        out.append(Feature(f"yang_zhang_{n}d", "volatility", n + 1, var.clip(lower_bound=0).sqrt()))
    for n in (5, 14):
        out.append(Feature(f"atr_{n}d", "volatility", n + 1, div(ema(col("_tr"), alpha=1 / n), c)))
    out += [
        Feature("hl_range", "volatility", 0, (h - lo) / c),
        Feature("hl_range_20d", "volatility", 20, rmean((h - lo) / c, 20)),
        Feature("downside_vol_20d", "volatility", 21, rmean(r.clip(upper_bound=0) ** 2, 20).sqrt()),
        Feature("upside_vol_20d", "volatility", 21, rmean(r.clip(lower_bound=0) ** 2, 20).sqrt()),
        Feature("ret_skew_20d", "volatility", 21, within_code(r.rolling_skew(20, min_samples=20), 19)),
        Feature("ret_max_20d", "volatility", 21, rmax(r, 20)),
        Feature("ret_min_20d", "volatility", 21, rmin(r, 20)),
        Feature("vol_ratio_5_20", "volatility", 21, div(col("vol_5d"), col("vol_20d")), Stage.SERIES2),
        Feature("vol_of_vol_20d", "volatility", 26, rstd(col("vol_5d"), 20), Stage.SERIES2),
    ]
    return out


def _trend() -> list[Feature]:
    out = []
    for n in MA_WINDOWS:
        out.append(Feature(f"sma_gap_{n}d", "trend", n, c / rmean(c, n) - 1))
        out.append(Feature(f"ema_gap_{n}d", "trend", n, c / ema(c, span=n) - 1))
    for a, b in ((5, 20), (10, 60), (20, 60), (20, 120)):
        out.append(Feature(f"ma_cross_{a}_{b}", "trend", b, rmean(c, a) / rmean(c, b) - 1))
    out.append(Feature("ema_cross_12_26", "trend", 26, ema(c, span=12, warmup=26) / ema(c, span=26) - 1))
    for n in RANGE_WINDOWS:
        out.append(Feature(f"range_pos_{n}d", "trend", n, div(c - rmin(lo, n), rmax(h, n) - rmin(lo, n))))
        out.append(Feature(f"dist_high_{n}d", "trend", n, c / rmax(h, n) - 1))
        out.append(Feature(f"dist_low_{n}d", "trend", n, c / rmin(lo, n) - 1))
    for n in (60, 120):
        out.append(Feature(f"drawdown_{n}d", "trend", n, c / rmax(c, n) - 1))
    for n in (20, 60):
        slope = within_code(pl.rolling_cov("_logc", "_t", window_size=n, min_samples=n), n - 1) / (
            (n * n - 1) / 12
        )
        out.append(Feature(f"trend_slope_{n}d", "trend", n, slope))
    return out


def _oscillators() -> list[Feature]:
    out = []
    for n in (2, 6, 14):
        g, lo_ = ema(col("_gain"), alpha=1 / n, warmup=n + 1), ema(col("_loss"), alpha=1 / n, warmup=n + 1)
        out.append(Feature(f"rsi_{n}", "oscillators", n + 1, 100 * div(g, g + lo_)))
    macd = div(ema(c, span=12, warmup=26) - ema(c, span=26), c)
    sd20 = rstd(c, 20)
    k14 = div(c - rmin(lo, 14), rmax(h, 14) - rmin(lo, 14)) * 100
    pdi = 100 * div(ema(col("_pdm"), alpha=1 / 14), ema(col("_tr"), alpha=1 / 14))
    mdi = 100 * div(ema(col("_mdm"), alpha=1 / 14), ema(col("_tr"), alpha=1 / 14))
    dx = 100 * div((col("plus_di_14") - col("minus_di_14")).abs(), col("plus_di_14") + col("minus_di_14"))
    pos = pl.when(col("_tp") > lag(col("_tp"))).then(col("_tp") * v).otherwise(0.0)
    neg = pl.when(col("_tp") < lag(col("_tp"))).then(col("_tp") * v).otherwise(0.0)
    macd_signal = ema(col("macd"), span=9)
    out += [
        Feature("macd", "oscillators", 26, macd),
        Feature("macd_signal", "oscillators", 35, macd_signal, Stage.SERIES2),
        Feature("macd_hist", "oscillators", 35, col("macd") - macd_signal, Stage.SERIES2),
        Feature("bb_pctb_20", "oscillators", 20, div(c - (rmean(c, 20) - 2 * sd20), 4 * sd20)),
        Feature("bb_width_20", "oscillators", 20, div(4 * sd20, rmean(c, 20))),
        Feature("stoch_k_14", "oscillators", 14, k14),
        Feature("stoch_d_14", "oscillators", 16, rmean(col("stoch_k_14"), 3), Stage.SERIES2),
        Feature("plus_di_14", "oscillators", 15, pdi),
        Feature("minus_di_14", "oscillators", 15, mdi),
        Feature(
            "adx_14",
            "oscillators",
            29,
            per_code(dx.ewm_mean(alpha=1 / 14, adjust=False, min_samples=14)),
            Stage.SERIES2,
        ),
        Feature(
            "cci_20", "oscillators", 20, div(col("_tp") - rmean(col("_tp"), 20), 0.015 * rstd(col("_tp"), 20))
        ),
        Feature("williams_r_14", "oscillators", 14, -100 * div(rmax(h, 14) - c, rmax(h, 14) - rmin(lo, 14))),
        Feature("mfi_14", "oscillators", 15, 100 * div(rsum(pos, 14), rsum(pos + neg, 14))),
    ]
    return out


def _volume() -> list[Feature]:
    dv = col("_dv")
    return [
        Feature("volume_ratio_5", "volume", 5, div(v, rmean(v, 5))),
        Feature("volume_ratio_20", "volume", 20, div(v, rmean(v, 20))),
        Feature("volume_ma_ratio_5_20", "volume", 20, div(rmean(v, 5), rmean(v, 20))),
        Feature("volume_change_1d", "volume", 1, diff(col("_lv"))),
        Feature("volume_z_20", "volume", 20, div(col("_lv") - rmean(col("_lv"), 20), rstd(col("_lv"), 20))),
        Feature("log_turnover", "volume", 0, dv.log1p()),
        Feature("log_turnover_20d", "volume", 20, rmean(dv, 20).log1p()),
        Feature("turnover_ratio_5_60", "volume", 60, div(rmean(dv, 5), rmean(dv, 60)).log()),
        Feature("amihud_20d", "volume", 21, rmean(div(col("_r1").abs(), dv) * 1e9, 20)),
        Feature("updown_volume_20d", "volume", 21, div(rsum(col("_up"), 20), rsum(v, 20))),
        Feature("close_vs_vwap", "volume", 0, div(col("close"), div(dv, col("volume"))) - 1),
    ]


def _stock_market() -> list[Feature]:
    r, m = col("_r1"), col("_mkt_r1")
    out = []
    for n in (20, 60):
        cov = within_code(pl.rolling_cov("_r1", "_mkt_r1", window_size=n, min_samples=n), n - 1)
        var = within_code(m.rolling_var(n, min_samples=n), n - 1)
        out.append(Feature(f"beta_{n}d", "stock_market", n + 1, div(cov, var)))
        corr = within_code(pl.rolling_corr("_r1", "_mkt_r1", window_size=n, min_samples=n), n - 1)
        out.append(Feature(f"corr_mkt_{n}d", "stock_market", n + 1, corr))
    out.append(Feature("excess_ret_1d", "stock_market", 1, r - m))
    for n in (1, 5, 20):
        out.append(
            Feature(
                f"alpha_{n}d",
                "stock_market",
                61,
                col(f"ret_{n}d") - col("beta_60d") * col(f"mkt_ret_{n}d"),
                Stage.SERIES2,
            )
        )
    for n in (20, 60):
        out.append(
            Feature(
                f"rel_strength_{n}d",
                "stock_market",
                n,
                col(f"ret_{n}d") - col(f"mkt_ret_{n}d"),
                Stage.SERIES2,
            )
        )
        out.append(
            Feature(f"idio_vol_{n}d", "stock_market", 61 + n, rstd(r - col("beta_60d") * m, n), Stage.SERIES2)
        )
    return out


def _sector() -> list[Feature]:
    grp = (DATE, SECTOR)
    out = []
    for n in (1, 5, 20):
        ret = col(f"ret_{n}d")
        mean, std = ret.mean().over(grp), ret.std().over(grp)
        out += [
            Feature(f"sec_ret_mean_{n}d", "sector", n, mean, Stage.SECTOR),
            Feature(f"sec_ret_median_{n}d", "sector", n, ret.median().over(grp), Stage.SECTOR),
            Feature(f"rel_sec_ret_{n}d", "sector", n, ret - mean, Stage.SECTOR),
            # a sector with one member on the day: the stock is its own sector, z = 0
            Feature(
                f"sec_z_ret_{n}d",
                "sector",
                n,
                pl.when(std > 0).then((ret - mean) / std).otherwise(pl.when(ret.is_not_null()).then(0.0)),
                Stage.SECTOR,
            ),
            Feature(
                f"sec_rank_ret_{n}d",
                "sector",
                n,
                div(ret.rank().over(grp), ret.count().over(grp)),
                Stage.SECTOR,
            ),
        ]
    for n in (1, 5):
        out.append(
            Feature(
                f"sec17_ret_mean_{n}d",
                "sector",
                n,
                col(f"ret_{n}d").mean().over(DATE, SECTOR17),
                Stage.SECTOR,
            )
        )
    out += [
        Feature("sec_momentum_60d", "sector", 60, col("ret_60d").mean().over(grp), Stage.SECTOR),
        Feature("sec_vol_20d", "sector", 21, col("vol_20d").mean().over(grp), Stage.SECTOR),
        Feature(
            "sec_dispersion_1d",
            "sector",
            1,
            col("ret_1d").std().over(grp).fill_null(pl.when(col("ret_1d").is_not_null()).then(0.0)),
            Stage.SECTOR,
        ),
        Feature("sec_member_count", "sector", 0, pl.len().over(grp).cast(pl.Float64), Stage.SECTOR),
    ]
    return out


CROSS_SECTION_KEYS = (
    "ret_1d",
    "ret_5d",
    "ret_20d",
    "ret_60d",
    "vol_20d",
    "volume_ratio_20",
    "rsi_14",
    "sma_gap_20d",
    "amihud_20d",
    "beta_60d",
    "idio_vol_20d",
    "log_turnover",
    "dist_high_60d",
)


def median_helper(name: str) -> str:
    return f"_med_{name}"


def robust_z(name: str, by: str = DATE, clip: float = CS_CLIP) -> pl.Expr:
    """(x - median) / (1.4826 MAD) within ``by``, clipped to ±clip; null where MAD is 0. The median is the
    helper column ``_med_<name>`` (a window inside a window would be evaluated group by group)."""
    dev = col(name) - col(median_helper(name))
    return div(dev, MAD_SCALE * dev.abs().median().over(by)).clip(-clip, clip)


CROSS_HELPERS: tuple[Helper, ...] = tuple(
    Helper(median_helper(k), col(k).median().over(DATE), Stage.SECTOR) for k in CROSS_SECTION_KEYS
)


def _cross(lookbacks: dict[str, int]) -> list[Feature]:
    out = []
    for k in CROSS_SECTION_KEYS:
        out.append(
            Feature(
                f"cs_rank_{k}",
                "cross_section",
                lookbacks[k],
                div(col(k).rank().over(DATE), col(k).count().over(DATE)),
                Stage.CROSS,
            )
        )
        out.append(Feature(f"cs_z_{k}", "cross_section", lookbacks[k], robust_z(k), Stage.CROSS))
    return out


# ---- date-level features: computed on the TOPIX and calendar frames, joined by date -------------
def _market() -> list[Feature]:
    mc, mo = col("close"), col("open")
    r = col("_mkt_r1")
    vol20, vol60 = r.rolling_std(20, min_samples=20), r.rolling_std(60, min_samples=60)
    g, lo_ = (
        col("_mkt_gain").ewm_mean(alpha=1 / 14, adjust=False, min_samples=15),
        col("_mkt_loss").ewm_mean(alpha=1 / 14, adjust=False, min_samples=15),
    )
    out = [
        Feature(f"mkt_ret_{n}d", "market", n, mc / mc.shift(n) - 1, Stage.SERIES, Scope.DATE)
        for n in (1, 5, 20, 60)
    ]
    out += [
        Feature("mkt_vol_20d", "market", 21, vol20, Stage.SERIES, Scope.DATE),
        Feature("mkt_vol_60d", "market", 61, vol60, Stage.SERIES, Scope.DATE),
        Feature("mkt_vol_ratio_20_60", "market", 61, div(vol20, vol60), Stage.SERIES, Scope.DATE),
        Feature(
            "mkt_regime_high_vol",
            "market",
            61,
            (vol20 > 1.2 * vol60).cast(pl.Float64),
            Stage.SERIES,
            Scope.DATE,
        ),
        Feature(
            "mkt_regime_bull",
            "market",
            60,
            (mc > mc.rolling_mean(60, min_samples=60)).cast(pl.Float64),
            Stage.SERIES,
            Scope.DATE,
        ),
        Feature(
            "mkt_sma_gap_20d",
            "market",
            20,
            mc / mc.rolling_mean(20, min_samples=20) - 1,
            Stage.SERIES,
            Scope.DATE,
        ),
        Feature(
            "mkt_sma_gap_60d",
            "market",
            60,
            mc / mc.rolling_mean(60, min_samples=60) - 1,
            Stage.SERIES,
            Scope.DATE,
        ),
        Feature(
            "mkt_drawdown_60d",
            "market",
            60,
            mc / mc.rolling_max(60, min_samples=60) - 1,
            Stage.SERIES,
            Scope.DATE,
        ),
        Feature(
            "mkt_drawdown_120d",
            "market",
            120,
            mc / mc.rolling_max(120, min_samples=120) - 1,
            Stage.SERIES,
            Scope.DATE,
        ),
        Feature("mkt_rsi_14", "market", 15, 100 * div(g, g + lo_), Stage.SERIES, Scope.DATE),
        Feature("mkt_gap", "market", 1, mo / mc.shift(1) - 1, Stage.SERIES, Scope.DATE),
    ]
    return out


MARKET_HELPERS: tuple[Helper, ...] = (
    Helper("_mkt_r1", pl.col("close") / pl.col("close").shift(1) - 1),
    Helper("_mkt_gain", pl.col("close").diff().clip(lower_bound=0)),
    Helper("_mkt_loss", (-pl.col("close").diff()).clip(lower_bound=0)),
)


def _calendar() -> list[Feature]:
    d = Scope.DATE
    return [
        Feature("day_of_week", "calendar", 0, (col(DATE).dt.weekday() - 1).cast(pl.Float64), Stage.SERIES, d),
        Feature("is_month_end", "calendar", 0, col("_is_month_end"), Stage.SERIES, d),
        Feature("is_month_start", "calendar", 0, col("_is_month_start"), Stage.SERIES, d),
        Feature("days_to_month_end", "calendar", 0, col("_days_to_month_end"), Stage.SERIES, d),
        Feature("days_to_holiday", "calendar", 0, col("_days_to_holiday"), Stage.SERIES, d),
        Feature("days_since_holiday", "calendar", 0, col("_days_since_holiday"), Stage.SERIES, d),
    ]


MARKET_FEATURES: tuple[Feature, ...] = tuple(_market())
CALENDAR_FEATURES: tuple[Feature, ...] = tuple(_calendar())


def _stock_features() -> list[Feature]:
    feats = _returns() + _volatility() + _trend() + _oscillators() + _volume() + _stock_market() + _sector()
    lookbacks = {f.name: f.lookback for f in feats}
    return feats + _cross(lookbacks)


STOCK_FEATURES: tuple[Feature, ...] = tuple(_stock_features())


def default_registry() -> FeatureRegistry:
    return FeatureRegistry(
        features=STOCK_FEATURES + MARKET_FEATURES + CALENDAR_FEATURES,
        helpers=HELPERS + MARKET_HELPERS + CROSS_HELPERS,
    )
