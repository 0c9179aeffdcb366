"""Compute every registry feature and the forward-return targets from the market panel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from atft_dagster.features.definitions import CALENDAR_CAP, ROW, default_registry
from atft_dagster.features.registry import (
    CALENDAR_GROUP,
    MARKET_GROUP,
    MARKET_HELPER_PREFIX,
    TARGET_PREFIX,
    FeatureRegistry,
    Scope,
    Stage,
)
from atft_dagster.horizons import HORIZONS

KEY_COLUMNS = ("date", "code", "sector33_code", "sector17_code", "market_segment")
FEATURE_DTYPE = pl.Float32


class FeatureInputError(ValueError):
    pass


def target_names(horizons: tuple[int, ...] = HORIZONS) -> list[str]:
    return [f"{TARGET_PREFIX}{h}d" for h in horizons] + [f"{TARGET_PREFIX}{h}d_excess" for h in horizons]


def market_frame(topix: pl.DataFrame, registry: FeatureRegistry) -> pl.DataFrame:
    """Market-level features on the TOPIX series (one row per date)."""
    t = topix.sort("date").with_columns(
        [h.expr.alias(h.name) for h in registry.helpers if h.name.startswith(MARKET_HELPER_PREFIX)]
    )
    feats = [f for f in registry.features if f.group == MARKET_GROUP]
    t = t.with_columns([_feature_expr(f) for f in feats])
    return t.select("date", "_mkt_r1", *[f.name for f in feats])


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
    feats = [f for f in registry.features if f.group == CALENDAR_GROUP]
    return s.with_columns([_feature_expr(f) for f in feats]).select("date", *[f.name for f in feats])


@dataclass(frozen=True)
class FeatureStats:
    rows: int
    rows_without_sector: int
    codes: int
    first_date: str
    last_date: str


PANEL_INPUTS = (
    "date",
    "code",
    "adj_open",
    "adj_high",
    "adj_low",
    "adj_close",
    "adj_volume",
    "close",
    "volume",
    "turnover",
    "sector33_code",
    "sector17_code",
    "market_segment",
)


def compute_features(
    panel: pl.DataFrame,
    topix: pl.DataFrame,
    calendar: pl.DataFrame,
    registry: FeatureRegistry | None = None,
    horizons: tuple[int, ...] = HORIZONS,
    progress: bool = False,
) -> tuple[pl.DataFrame, FeatureStats]:
    """One row per (date, code) with a known sector33, sorted by (code, date): keys, every registry feature
    (Float32) and the targets. Features at t read rows up to t only; targets read t+h and are kept apart
    by name. Memory: targets are built on the narrow panel, each stage is cast to Float32 as it is made,
    helpers are dropped after the last per-code stage, and the wide result is never re-sorted."""
    reg = registry or default_registry()
    mkt = market_frame(topix, reg)
    missing = panel.select("date").unique().join(mkt.select("date"), on="date", how="anti")
    if len(missing):
        raise FeatureInputError(
            f"TOPIX is missing {len(missing)} panel date(s), e.g. {missing['date'].sort().head(3).to_list()}"
        )
    total = panel.height
    df = _targets(panel.select(PANEL_INPUTS).sort("code", "date"), topix, calendar, horizons)
    df = df.with_columns(pl.int_range(pl.len()).over("code").alias(ROW))
    df = df.join(mkt, on="date", how="left", maintain_order="left")
    df = df.join(calendar_frame(calendar, reg), on="date", how="left", maintain_order="left")
    stock = [f for f in reg.features if f.scope == Scope.STOCK]
    per_code = (Stage.BASE, Stage.SERIES, Stage.SERIES2)
    bar = tqdm(total=len(per_code) + 1, desc="features", unit="stage", disable=not progress)
    for stage in per_code:
        exprs = [
            hp.expr.alias(hp.name)
            for hp in reg.helpers
            if hp.stage == stage and not hp.name.startswith(MARKET_HELPER_PREFIX)
        ]
        exprs += [_feature_expr(f) for f in stock if f.stage == stage]
        if exprs:
            df = _with(df, exprs)
        bar.update(1)
    # helpers and raw prices are not needed any more: free them before the per-date stages
    keep = set(KEY_COLUMNS) | set(reg.names) | set(target_names(horizons))
    df = df.drop([c for c in df.columns if c not in keep and c not in _per_date_reads(reg)])
    df = _per_date_stages(
        df, [f for f in stock if f.stage >= Stage.SECTOR], [h for h in reg.helpers if h.stage >= Stage.SECTOR]
    )
    bar.update(1)
    bar.close()
    if df["sector33_code"].null_count():  # a filter copies every column: only when needed
        df = df.filter(pl.col("sector33_code").is_not_null())
    out = df.select(*KEY_COLUMNS, *reg.names, *target_names(horizons))
    stats = FeatureStats(
        rows=out.height,
        rows_without_sector=total - out.height,
        codes=out["code"].n_unique(),
        first_date=str(out["date"].min()),
        last_date=str(out["date"].max()),
    )
    return out, stats


EXPRESSIONS_PER_PASS = 12  # bounds the temporaries alive at once (peak memory), see docs/benchmarks.md


def _with(df: pl.DataFrame, exprs: list[pl.Expr]) -> pl.DataFrame:
    """with_columns through the lazy engine, whose common-subexpression elimination evaluates a shared
    window (a rolling max used twice, a group median) once; in passes of a bounded number of expressions."""
    for i in range(0, len(exprs), EXPRESSIONS_PER_PASS):
        # select only the new columns (the wide frame is not copied), then attach them
        df = df.hstack(df.lazy().select(exprs[i : i + EXPRESSIONS_PER_PASS]).collect())
    return df


def _feature_expr(f) -> pl.Expr:
    # NaN only arises from 0/0 or the log of a non-positive ratio: both mean "undefined", i.e. missing
    return f.expr.fill_nan(None).cast(FEATURE_DTYPE).alias(f.name)


def _per_date_reads(reg: FeatureRegistry) -> set[str]:
    exprs = [f.expr for f in reg.features if f.stage >= Stage.SECTOR] + [
        h.expr for h in reg.helpers if h.stage >= Stage.SECTOR
    ]
    return {c for e in exprs for c in e.meta.root_names()}


def _per_date_stages(df: pl.DataFrame, feats: list, helpers: list) -> pl.DataFrame:
    """Sector and cross-sectional stages work per date: run them on a narrow frame sorted by date (only
    the columns they read), then put the results back in the wide frame's row order."""
    if not feats:
        return df
    produced = {f.name for f in feats} | {h.name for h in helpers}
    reads = {c for e in [*feats, *helpers] for c in e.expr.meta.root_names()} - produced
    narrow = df.select(sorted(reads | {"date"})).with_row_index("_row").sort("date", "_row")
    order = narrow["_row"].arg_sort()  # puts date-sorted rows back in the wide frame's order
    for stage in (Stage.SECTOR, Stage.CROSS):
        hs = [h.expr.alias(h.name) for h in helpers if h.stage == stage]
        if hs:
            narrow = _with(narrow, hs)
        names = [f.name for f in feats if f.stage == stage]
        if names:
            narrow = _with(narrow, [_feature_expr(f) for f in feats if f.stage == stage])
            df = df.hstack(narrow.select(names)[order])  # each stage goes back on its own: lower peak
            narrow = narrow.drop(names)
    return df


def _targets(
    df: pl.DataFrame, topix: pl.DataFrame, calendar: pl.DataFrame, horizons: tuple[int, ...]
) -> pl.DataFrame:
    """target_hd = AdjClose(s_h)/AdjClose(t) - 1 where s_h is the h-th XTKS session after t (from the
    calendar, not the stock's own rows): null when the stock has no price on s_h (halted, delisted, or s_h
    not yet observed), so a halt never stretches a target over more sessions. ``..._excess`` subtracts
    TOPIX over the same two sessions. Computed on a dense (session, code) price grid: a gather per horizon
    instead of a join per horizon."""
    sessions = calendar.filter("is_trading_day")["date"].sort().to_numpy()
    dates = df["date"].to_numpy()
    si = np.searchsorted(sessions, dates)
    if (si >= len(sessions)).any() or (sessions[np.minimum(si, len(sessions) - 1)] != dates).any():
        raise FeatureInputError("the panel has dates that are not XTKS sessions of the calendar")
    ci = df["code"].rank("dense").to_numpy().astype(np.int64) - 1
    close = df["adj_close"].to_numpy().astype(np.float64)
    grid = np.full((len(sessions) + max(horizons), ci.max() + 1), np.nan)
    grid[si, ci] = close
    mkt = np.full(len(sessions) + max(horizons), np.nan)
    t_dates = topix["date"].to_numpy()
    ti = np.searchsorted(sessions, t_dates)
    on = (ti < len(sessions)) & (sessions[np.minimum(ti, len(sessions) - 1)] == t_dates)
    mkt[ti[on]] = topix["close"].to_numpy()[on]
    cols = []
    for hz in horizons:
        target = grid[si + hz, ci] / close - 1.0
        excess = target - (mkt[si + hz] / mkt[si] - 1.0)
        cols += [
            pl.Series(f"{TARGET_PREFIX}{hz}d", target).fill_nan(None),
            pl.Series(f"{TARGET_PREFIX}{hz}d_excess", excess).fill_nan(None),
        ]
    return df.hstack(cols)
