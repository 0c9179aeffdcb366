"""Compute every registry feature and the forward-return targets from the market panel."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from atft_dagster.features.definitions import CALENDAR_CAP, default_registry
from atft_dagster.features.registry import TARGET_PREFIX, FeatureRegistry, Scope, Stage

HORIZONS = (1, 5, 10, 20)
KEY_COLUMNS = ("date", "code", "sector33_code", "sector17_code", "market_segment")
FEATURE_DTYPE = pl.Float32


class FeatureInputError(ValueError):
    pass


def target_names(horizons: tuple[int, ...] = HORIZONS) -> list[str]:
    return [f"{TARGET_PREFIX}{h}d" for h in horizons] + [f"{TARGET_PREFIX}{h}d_excess" for h in horizons]


def market_frame(topix: pl.DataFrame, registry: FeatureRegistry) -> pl.DataFrame:
    """Market-level features on the TOPIX series (one row per date)."""
    t = topix.sort("date").with_columns(
        [h.expr.alias(h.name) for h in registry.helpers if h.name.startswith("_mkt_")]
    )
    feats = [f for f in registry.features if f.group == "market"]
    t = t.with_columns([f.expr.alias(f.name) for f in feats])
    return t.select("date", pl.col("close").alias("_mkt_close"), "_mkt_r1", *[f.name for f in feats])


def calendar_frame(calendar: pl.DataFrame, registry: FeatureRegistry) -> pl.DataFrame:
    """Calendar features per trading day. The calendar is published ahead, so looking at future
    holidays is point-in-time."""
    cal = calendar.sort("date")
    wd = pl.col("date").dt.weekday()
    holiday = ~pl.col("is_trading_day") & (wd <= 5)
    idx = pl.col("is_trading_day").cast(pl.Int32).cum_sum()
    cal = cal.with_columns(idx.alias("_sess"), holiday.alias("_hol"))
    cal = cal.with_columns(
        pl.when("_hol").then(pl.col("_sess")).backward_fill().alias("_next_hol"),
        pl.when("_hol").then(pl.col("_sess")).forward_fill().alias("_prev_hol"),
    )
    s = cal.filter("is_trading_day")
    ym = pl.col("date").dt.strftime("%Y%m")
    s = s.with_columns(
        (pl.col("_next_hol") - pl.col("_sess"))
        .fill_null(CALENDAR_CAP)
        .clip(0, CALENDAR_CAP)
        .cast(pl.Float64)
        .alias("_days_to_holiday"),
        (pl.col("_sess") - pl.col("_prev_hol"))
        .fill_null(CALENDAR_CAP)
        .clip(0, CALENDAR_CAP)
        .cast(pl.Float64)
        .alias("_days_since_holiday"),
        (ym.shift(-1) != ym).fill_null(False).cast(pl.Float64).alias("_is_month_end"),
        (ym.shift(1) != ym).fill_null(False).cast(pl.Float64).alias("_is_month_start"),
        (pl.len().over(ym) - pl.int_range(1, pl.len() + 1).over(ym))
        .cast(pl.Float64)
        .alias("_days_to_month_end"),
    )
    feats = [f for f in registry.features if f.group == "calendar"]
    return s.with_columns([f.expr.alias(f.name) for f in feats]).select("date", *[f.name for f in feats])


@dataclass(frozen=True)
class FeatureStats:
    rows: int
    rows_without_sector: int
    codes: int
    first_date: str
    last_date: str


def compute_features(
    panel: pl.DataFrame,
    topix: pl.DataFrame,
    calendar: pl.DataFrame,
    registry: FeatureRegistry | None = None,
    horizons: tuple[int, ...] = HORIZONS,
) -> tuple[pl.DataFrame, FeatureStats]:
    """One row per (date, code) with a known sector33: keys, every registry feature (Float32) and the
    targets. Features at t read rows up to t only; targets read t+h and are kept apart by name."""
    reg = registry or default_registry()
    mkt = market_frame(topix, reg)
    missing = panel.select("date").unique().join(mkt.select("date"), on="date", how="anti")
    if len(missing):
        raise FeatureInputError(
            f"TOPIX is missing {len(missing)} panel date(s), e.g. {missing['date'].sort().head(3).to_list()}"
        )
    cal = calendar_frame(calendar, reg)
    df = panel.sort("code", "date").join(mkt, on="date", how="left").join(cal, on="date", how="left")
    stock = [f for f in reg.features if f.scope == Scope.STOCK]
    for stage in Stage:
        exprs = [
            hp.expr.alias(hp.name)
            for hp in reg.helpers
            if hp.stage == stage and not hp.name.startswith("_mkt_")
        ]
        exprs += [f.expr.alias(f.name) for f in stock if f.stage == stage]
        if exprs:
            df = df.with_columns(exprs)
    df = _targets(df, topix, horizons)
    total = df.height
    df = df.filter(pl.col("sector33_code").is_not_null())
    # NaN only arises from 0/0 or log of a non-positive ratio; both mean "undefined", i.e. missing
    out = df.select(
        *KEY_COLUMNS,
        *[pl.col(n).fill_nan(None).cast(FEATURE_DTYPE) for n in reg.names],
        *target_names(horizons),
    ).sort("date", "code")
    stats = FeatureStats(
        rows=out.height,
        rows_without_sector=total - out.height,
        codes=out["code"].n_unique(),
        first_date=str(out["date"].min()),
        last_date=str(out["date"].max()),
    )
    return out, stats


def _targets(df: pl.DataFrame, topix: pl.DataFrame, horizons: tuple[int, ...]) -> pl.DataFrame:
    """target_hd = AdjClose(t+h)/AdjClose(t) - 1 over the code's next h rows; ..._excess minus TOPIX over
    the same dates. The last h rows of every code are null."""
    idx = topix.select(pl.col("date").alias("_fdate"), pl.col("close").alias("_fmkt"))
    for hz in horizons:
        fut = pl.col("adj_close").shift(-hz).over("code")
        df = df.with_columns(
            (fut / pl.col("adj_close") - 1).alias(f"{TARGET_PREFIX}{hz}d"),
            pl.col("date").shift(-hz).over("code").alias("_fdate"),
        )
        df = (
            df.join(idx, on="_fdate", how="left")
            .with_columns(
                (pl.col(f"{TARGET_PREFIX}{hz}d") - (pl.col("_fmkt") / pl.col("_mkt_close") - 1)).alias(
                    f"{TARGET_PREFIX}{hz}d_excess"
                )
            )
            .drop("_fdate", "_fmkt")
        )
    return df
