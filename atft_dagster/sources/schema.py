"""The canonical market-data schema every source yields, validated with pandera (polars backend).

See docs/data_schema.md for the column meanings.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaError, SchemaErrors

from atft_dagster.sectors import SEGMENTS, VALID_SECTOR17_CODES, VALID_SECTOR33_CODES

CODE_PATTERN = r"^[0-9][0-9A-Z]{2}[0-9A-Z][0-9]?$"  # local code; a 5th digit for non-common stock
QUOTE_COLUMNS = (
    "date",
    "code",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "turnover",
    "adj_factor",
    "shares_outstanding",
)
QUOTE_KEY = ("date", "code")


class DailyQuotes(pa.DataFrameModel):
    """Raw (unadjusted) daily bars. ``adj_factor`` follows J-Quants: 1/ratio on a split's ex-date."""

    date: pl.Date
    code: pl.String = pa.Field(str_matches=CODE_PATTERN)
    open: pl.Float64 = pa.Field(gt=0)
    high: pl.Float64 = pa.Field(gt=0)
    low: pl.Float64 = pa.Field(gt=0)
    close: pl.Float64 = pa.Field(gt=0)
    volume: pl.Float64 = pa.Field(ge=0, nullable=True)  # empty where a source has closes only
    turnover: pl.Float64 = pa.Field(ge=0, nullable=True)
    adj_factor: pl.Float64 = pa.Field(gt=0)
    shares_outstanding: pl.Float64 = pa.Field(gt=0, nullable=True)

    class Config:
        strict = True
        ordered = True
        unique = list(QUOTE_KEY)

    @pa.dataframe_check(error="high >= low, high >= max(open, close) and low <= min(open, close)")
    def ohlc_consistent(cls, data: pa.PolarsData) -> pl.LazyFrame:
        c = pl.col
        return data.lazyframe.select(
            (c("high") >= c("low"))
            & (c("high") >= pl.max_horizontal("open", "close"))
            & (c("low") <= pl.min_horizontal("open", "close"))
        )


class SectorMaster(pa.DataFrameModel):
    """Sector membership per code with validity interval [valid_from, valid_to); valid_to null = open."""

    code: pl.String = pa.Field(str_matches=CODE_PATTERN)
    name: pl.String = pa.Field(nullable=True)
    sector33_code: pl.String = pa.Field(isin=sorted(VALID_SECTOR33_CODES))
    sector33_name: pl.String
    sector17_code: pl.String = pa.Field(isin=sorted(VALID_SECTOR17_CODES))
    sector17_name: pl.String
    market_segment: pl.String = pa.Field(isin=list(SEGMENTS))
    valid_from: pl.Date
    valid_to: pl.Date = pa.Field(nullable=True)

    class Config:
        strict = True
        ordered = True
        unique = ["code", "valid_from"]

    @pa.dataframe_check(error="valid_to must be after valid_from")
    def interval_ordered(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("valid_to").is_null() | (pl.col("valid_to") > pl.col("valid_from"))
        )


class IndexBars(pa.DataFrameModel):
    date: pl.Date = pa.Field(unique=True)
    open: pl.Float64 = pa.Field(gt=0, nullable=True)
    high: pl.Float64 = pa.Field(gt=0, nullable=True)
    low: pl.Float64 = pa.Field(gt=0, nullable=True)
    close: pl.Float64 = pa.Field(gt=0)

    class Config:
        strict = True
        ordered = True


class TradingCalendar(pa.DataFrameModel):
    date: pl.Date = pa.Field(unique=True)
    is_trading_day: pl.Boolean

    class Config:
        strict = True
        ordered = True


@dataclass(frozen=True)
class Violation:
    """One failed check: the column (or None for a row-level check), the 0-based row, the check."""

    column: str | None
    row: int | None
    check: str
    value: str

    def describe(self, row_label: str = "row") -> str:
        where = f"{row_label} {self.row}" if self.row is not None else "table"
        col = f"column '{self.column}'" if self.column else "row check"
        return f"{where}, {col}: {self.check} (value: {self.value})"


class DataValidationError(ValueError):
    """Raised when a table violates its schema; ``violations`` lists what failed where."""

    def __init__(self, table: str, violations: list[Violation], source: str | None = None):
        self.table = table
        self.violations = violations
        self.source = source
        head = "; ".join(v.describe() for v in violations[:5])
        more = f" (+{len(violations) - 5} more)" if len(violations) > 5 else ""
        where = f" in {source}" if source else ""
        super().__init__(f"{table}{where} failed validation: {head}{more}")


def _violations(err: SchemaErrors | SchemaError, table: str) -> list[Violation]:
    fc = err.failure_cases if isinstance(err, SchemaErrors) else getattr(err, "failure_cases", None)
    if fc is None or not isinstance(fc, pl.DataFrame) or fc.is_empty():
        return [Violation(None, None, str(err).splitlines()[0], "")]
    out = []
    for rec in fc.iter_rows(named=True):
        column, check, value = rec.get("column"), str(rec.get("check")), str(rec.get("failure_case"))
        if check == "column_in_dataframe":
            column, check = value, "required column is missing"
        elif column in (None, "None", "", table):  # a table-level check names the schema
            column = None
        index = rec.get("index")
        out.append(
            Violation(
                column=None if column is None else str(column),
                row=None if index is None else int(index),
                check=check,
                value=value if len(value) <= 160 else value[:157] + "...",
            )
        )
    out.sort(key=lambda v: (v.row is None, v.row if v.row is not None else 0))
    return out


def validate(df: pl.DataFrame, model: type[pa.DataFrameModel], source: str | None = None) -> pl.DataFrame:
    """Validate eagerly and lazily (all failures collected); raise :class:`DataValidationError`."""
    try:
        return model.validate(df, lazy=True)
    except (SchemaErrors, SchemaError) as err:
        raise DataValidationError(model.__name__, _violations(err, model.__name__), source) from None


def empty_quotes() -> pl.DataFrame:
    schema = {c: pl.Float64 for c in QUOTE_COLUMNS}
    schema.update({"date": pl.Date, "code": pl.String})
    return pl.DataFrame(schema=schema)
