"""The canonical layouts of market-data tables: which layout a table is in (J-Quants v2 or JPX-Kaggle),
each layout's column types, and the mapping to the canonical schema. Used by the J-Quants client and
by landing files alike."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

import polars as pl

from atft_dagster.sectors import SECTOR17, SECTOR33, segment_of_market_code
from atft_dagster.sources.schema import QUOTE_COLUMNS, Violation

FIRST_INTERVAL_START = date(1900, 1, 1)


class Layout(StrEnum):
    JQUANTS_BARS = "jquants_daily_bars"
    JQUANTS_MASTER = "jquants_equity_master"
    JQUANTS_TOPIX = "jquants_topix"
    KAGGLE_PRICES = "kaggle_stock_prices"
    KAGGLE_LIST = "kaggle_stock_list"


# layout -> columns that identify it (all must be present)
SIGNATURES: dict[Layout, tuple[str, ...]] = {
    Layout.KAGGLE_PRICES: (
        "Date",
        "SecuritiesCode",
        "Open",
        "High",
        "Low",
        "Close",
        "Volume",
        "AdjustmentFactor",
    ),
    Layout.KAGGLE_LIST: ("SecuritiesCode", "33SectorCode", "17SectorCode"),
    Layout.JQUANTS_BARS: ("Date", "Code", "O", "H", "L", "C", "Vo", "Va", "AdjFactor"),
    Layout.JQUANTS_MASTER: ("Date", "Code", "S17", "S33", "Mkt"),
    Layout.JQUANTS_TOPIX: ("Date", "O", "H", "L", "C"),
}
# columns a layout needs, beyond its signature, and their types
FLOAT, DATE, TEXT = "float", "date", "text"
COLUMN_TYPES: dict[Layout, dict[str, str]] = {
    Layout.JQUANTS_BARS: {
        "Date": DATE,
        "Code": TEXT,
        "O": FLOAT,
        "H": FLOAT,
        "L": FLOAT,
        "C": FLOAT,
        "Vo": FLOAT,
        "Va": FLOAT,
        "AdjFactor": FLOAT,
    },
    Layout.KAGGLE_PRICES: {
        "Date": DATE,
        "SecuritiesCode": TEXT,
        "Open": FLOAT,
        "High": FLOAT,
        "Low": FLOAT,
        "Close": FLOAT,
        "Volume": FLOAT,
        "AdjustmentFactor": FLOAT,
    },
    Layout.JQUANTS_MASTER: {"Date": DATE, "Code": TEXT, "S17": TEXT, "S33": TEXT, "Mkt": TEXT},
    Layout.KAGGLE_LIST: {
        "SecuritiesCode": TEXT,
        "EffectiveDate": DATE,
        "33SectorCode": TEXT,
        "17SectorCode": TEXT,
        "NewMarketSegment": TEXT,
    },
    Layout.JQUANTS_TOPIX: {"Date": DATE, "O": FLOAT, "H": FLOAT, "L": FLOAT, "C": FLOAT},
}
QUOTE_LAYOUTS = (Layout.JQUANTS_BARS, Layout.KAGGLE_PRICES)
# canonical quote column -> the column that carries it in each quote layout
PRICE_SOURCE = {
    Layout.JQUANTS_BARS: {
        "open": "O",
        "high": "H",
        "low": "L",
        "close": "C",
        "volume": "Vo",
        "turnover": "Va",
        "adj_factor": "AdjFactor",
    },
    Layout.KAGGLE_PRICES: {
        "open": "Open",
        "high": "High",
        "low": "Low",
        "close": "Close",
        "volume": "Volume",
        "adj_factor": "AdjustmentFactor",
    },
}
MASTER_LAYOUTS = (Layout.JQUANTS_MASTER, Layout.KAGGLE_LIST)
KAGGLE_SEGMENTS = {"Prime Market": "Prime", "Standard Market": "Standard", "Growth Market": "Growth"}


# columns that mark a layout even when others are missing (then the missing ones are reported)
MARKERS: dict[Layout, tuple[str, ...]] = {
    Layout.KAGGLE_LIST: ("SecuritiesCode", "33SectorCode"),
    Layout.KAGGLE_PRICES: ("SecuritiesCode", "Close"),
    Layout.JQUANTS_MASTER: ("Code", "S33"),
    Layout.JQUANTS_BARS: ("Code", "C"),
}


def detect_layout(columns: list[str]) -> Layout | None:
    cols = set(columns)
    for layout, marker in MARKERS.items():  # ordered: most specific first
        if set(marker) <= cols:
            return layout
    if set(SIGNATURES[Layout.JQUANTS_TOPIX]) <= cols and not cols & {"Code", "SecuritiesCode"}:
        return Layout.JQUANTS_TOPIX
    return None


def _parse_date(col: pl.Expr) -> pl.Expr:
    s = col.str.strip_chars().str.slice(0, 10)
    return pl.coalesce(s.str.to_date("%Y-%m-%d", strict=False), s.str.to_date("%Y%m%d", strict=False))


def typed_columns(raw: pl.DataFrame, types: dict[str, str]) -> tuple[pl.DataFrame, list[Violation]]:
    """Cast text columns to their types; every value that does not parse is a violation."""
    exprs, problems = [], []
    for col, kind in types.items():
        if kind == FLOAT:
            exprs.append(pl.col(col).str.strip_chars().cast(pl.Float64, strict=False).alias(col))
        elif kind == DATE:
            exprs.append(_parse_date(pl.col(col)).alias(col))
        else:
            exprs.append(pl.col(col).str.strip_chars().alias(col))
    typed = raw.with_columns(exprs)
    for col, kind in types.items():
        if kind == TEXT:
            continue
        given = raw[col].str.strip_chars().fill_null("") != ""
        bad = (given & typed[col].is_null()).arg_true()
        for i in bad.head(20).to_list():
            problems.append(Violation(col, i, f"cannot parse as {kind}", str(raw[col][i])))
    return typed, problems


def _norm_code(col: pl.Expr) -> pl.Expr:
    """J-Quants codes have 5 characters: the 4-character local code and a fifth that is 0 for common
    stock. Common stock keeps its local code (the JPX/Kaggle one: 72030 -> 7203); any other 5-character
    code (a preferred share, 25935) is kept whole, so it never merges with its common stock (25930).
    Kaggle codes are integers: zero-padded to 4."""
    s = col.str.strip_chars()
    five = s.str.len_chars() == 5
    return (
        pl.when(five & s.str.ends_with("0"))
        .then(s.str.slice(0, 4))
        .when(five)
        .then(s)
        .otherwise(s.str.zfill(4))
    )


def to_canonical(layout: Layout, df: pl.DataFrame) -> pl.DataFrame:
    if layout in QUOTE_LAYOUTS:
        names = {src: canon for canon, src in PRICE_SOURCE[layout].items()}
        code = "Code" if layout == Layout.JQUANTS_BARS else "SecuritiesCode"
        out = df.select(
            pl.col("Date").alias("date"),
            _norm_code(pl.col(code)).alias("code"),
            *[pl.col(k).alias(v) for k, v in names.items()],
        )
        if "turnover" not in out.columns:
            out = out.with_columns(pl.lit(None, pl.Float64).alias("turnover"))
        out = out.with_columns(
            pl.col("adj_factor").fill_null(1.0), pl.lit(None, pl.Float64).alias("shares_outstanding")
        )
        return out.select(QUOTE_COLUMNS)
    if layout == Layout.JQUANTS_TOPIX:
        return df.select(
            pl.col("Date").alias("date"),
            pl.col("O").alias("open"),
            pl.col("H").alias("high"),
            pl.col("L").alias("low"),
            pl.col("C").alias("close"),
        )
    if layout == Layout.JQUANTS_MASTER:
        name = "CoNameEn" if "CoNameEn" in df.columns else ("CoName" if "CoName" in df.columns else None)
        return df.select(
            pl.col("Date").alias("snapshot"),
            _norm_code(pl.col("Code")).alias("code"),
            (pl.col(name) if name else pl.lit(None, pl.String)).alias("name"),
            pl.col("S33").str.zfill(4).alias("sector33_code"),
            pl.col("Mkt")
            .map_elements(segment_of_market_code, return_dtype=pl.String)
            .alias("market_segment"),
        )
    # Kaggle stock_list: "-" marks funds and other non-operating codes
    s33 = pl.col("33SectorCode")
    return df.select(
        pl.col("EffectiveDate").alias("snapshot"),
        _norm_code(pl.col("SecuritiesCode")).alias("code"),
        (pl.col("Name") if "Name" in df.columns else pl.lit(None, pl.String)).alias("name"),
        pl.when(s33 == "-").then(pl.lit("9999")).otherwise(s33.str.zfill(4)).alias("sector33_code"),
        pl.col("NewMarketSegment").replace_strict(KAGGLE_SEGMENTS, default="Other").alias("market_segment"),
    )


def source_column(layout: Layout, canonical: str | None) -> str | None:
    """Name a failing canonical column as the file names it."""
    if canonical is None:
        return None
    if layout in PRICE_SOURCE:
        code = "Code" if layout == Layout.JQUANTS_BARS else "SecuritiesCode"
        return {**PRICE_SOURCE[layout], "date": "Date", "code": code}.get(canonical, canonical)
    if layout == Layout.JQUANTS_TOPIX:
        return {"open": "O", "high": "H", "low": "L", "close": "C", "date": "Date"}.get(canonical, canonical)
    return canonical


def snapshots_to_intervals(snapshots: pl.DataFrame) -> pl.DataFrame:
    """Collapse dated master snapshots into [valid_from, valid_to) intervals per code. The first interval
    of a code is taken to hold back to its listing (the files cannot tell earlier history)."""
    attrs = ["name", "sector33_code", "market_segment"]
    s = snapshots.sort("code", "snapshot").unique(["code", "snapshot"], keep="last", maintain_order=True)
    changed = pl.any_horizontal([pl.col(a).ne_missing(pl.col(a).shift(1).over("code")) for a in attrs])
    s = s.filter(changed | (pl.col("code") != pl.col("code").shift(1)).fill_null(True))
    first = (pl.col("code") != pl.col("code").shift(1)).fill_null(True)  # the very first row has no previous
    s = s.with_columns(
        pl.when(first).then(pl.lit(FIRST_INTERVAL_START)).otherwise(pl.col("snapshot")).alias("valid_from"),
        pl.col("snapshot").shift(-1).over("code").alias("valid_to"),
    )
    return s.select(
        "code",
        "name",
        "sector33_code",
        pl.col("sector33_code").replace_strict({k: v[0] for k, v in SECTOR33.items()}).alias("sector33_name"),
        pl.col("sector33_code").replace_strict({k: v[1] for k, v in SECTOR33.items()}).alias("sector17_code"),
        pl.col("sector33_code")
        .replace_strict({k: SECTOR17[v[1]] for k, v in SECTOR33.items()})
        .alias("sector17_name"),
        "market_segment",
        "valid_from",
        "valid_to",
    )
