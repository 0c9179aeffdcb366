"""Validation of the enriched features, derived from the registry (never a hand-typed count).

pandera (polars backend) checks the schema: exactly the registry's columns with their dtypes, sector33 a
valid TSE code, (date, code) unique, no inf/NaN in a feature, targets in a sane range. Two checks pandera
cannot express per column are ours: the null rate of each feature after its warm-up, and constant columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaError, SchemaErrors

from atft_dagster.features.compute import FEATURE_DTYPE, KEY_COLUMNS, target_names
from atft_dagster.features.registry import FeatureRegistry
from atft_dagster.horizons import HORIZONS
from atft_dagster.sectors import SEGMENTS, VALID_SECTOR17_CODES, VALID_SECTOR33_CODES

MAX_NULL_RATE_AFTER_WARMUP = 0.05
TARGET_RANGE = (-0.95, 20.0)
SAMPLE = 5


@dataclass(frozen=True)
class Failure:
    check: str
    column: str | None
    count: int
    samples: list[str] = field(default_factory=list)

    def describe(self) -> str:
        col = f" column '{self.column}'" if self.column else ""
        return f"{self.check}{col}: {self.count} case(s), e.g. {self.samples[:3]}"


class FeatureValidationError(ValueError):
    def __init__(self, failures: list[Failure]):
        self.failures = failures
        lines = "; ".join(f.describe() for f in failures[:8])
        more = f" (+{len(failures) - 8} more)" if len(failures) > 8 else ""
        super().__init__(f"enriched features failed validation ({len(failures)} problem(s)): {lines}{more}")


def _finite(data: pa.PolarsData) -> pl.LazyFrame:
    return data.lazyframe.select(pl.col(data.key).is_finite() | pl.col(data.key).is_null())


def feature_schema(registry: FeatureRegistry, horizons: tuple[int, ...] = HORIZONS) -> pa.DataFrameSchema:
    cols: dict[str, pa.Column] = {
        "date": pa.Column(pl.Date),
        "code": pa.Column(pl.String),
        "sector33_code": pa.Column(pl.String, pa.Check.isin(sorted(VALID_SECTOR33_CODES))),
        "sector17_code": pa.Column(pl.String, pa.Check.isin(sorted(VALID_SECTOR17_CODES))),
        "market_segment": pa.Column(pl.String, pa.Check.isin(list(SEGMENTS)), nullable=True),
    }
    for name in registry.names:
        cols[name] = pa.Column(
            FEATURE_DTYPE, pa.Check(_finite, name="finite", error="no inf or NaN"), nullable=True
        )
    for name in target_names(horizons):
        cols[name] = pa.Column(pl.Float64, pa.Check.in_range(*TARGET_RANGE), nullable=True)
    return pa.DataFrameSchema(
        cols, strict=True, ordered=True, unique=["date", "code"], name="EnrichedFeatures"
    )


def _pandera_failures(df: pl.DataFrame, schema: pa.DataFrameSchema) -> list[Failure]:
    try:
        schema.validate(df, lazy=True)
        return []
    except (SchemaErrors, SchemaError) as err:
        fc = getattr(err, "failure_cases", None)
        if not isinstance(fc, pl.DataFrame) or fc.is_empty():
            return [Failure(str(err).splitlines()[0], None, 1)]
        out = []
        grouped = fc.group_by("check", "column", maintain_order=True).agg(
            pl.len().alias("n"), pl.col("failure_case").head(SAMPLE)
        )
        for rec in grouped.iter_rows(named=True):
            column = rec["column"] if rec["column"] not in (None, "EnrichedFeatures") else None
            check = str(rec["check"])
            if check == "column_in_dataframe":
                check, column = "column missing", None
            elif check == "column_in_schema":
                check = "column not in the registry"
            out.append(Failure(check, column, int(rec["n"]), [str(s)[:120] for s in rec["failure_case"]]))
        return out


def _count_failures(df: pl.DataFrame, registry: FeatureRegistry) -> list[Failure]:
    present = [c for c in df.columns if c not in KEY_COLUMNS and not c.startswith("target_")]
    expected = registry.names
    if len(present) == len(expected) and set(present) == set(expected):
        return []
    missing = sorted(set(expected) - set(present))
    extra = sorted(set(present) - set(expected))
    return [
        Failure(
            f"feature count {len(present)} != registry {len(expected)}",
            None,
            len(missing) + len(extra),
            [f"missing {missing[:5]}", f"extra {extra[:5]}"],
        )
    ]


def _warmup_failures(df: pl.DataFrame, registry: FeatureRegistry, max_null_rate: float) -> list[Failure]:
    names = [n for n in registry.names if n in df.columns]
    if not names or df.is_empty():
        return []
    idx = pl.int_range(pl.len()).over("code", order_by="date")
    lookback = {f.name: f.lookback for f in registry.features}
    stats = df.select(
        *[
            (
                (pl.col(n).is_null() & (idx >= lookback[n])).sum()
                / (idx >= lookback[n]).sum().clip(lower_bound=1)
            ).alias(f"null:{n}")
            for n in names
        ],
        *[(pl.col(n).drop_nulls().n_unique() <= 1).alias(f"const:{n}") for n in names],
    ).row(0, named=True)
    out = []
    for n in names:
        rate = stats[f"null:{n}"]
        if rate is not None and rate > max_null_rate:
            out.append(
                Failure(f"null rate after warm-up {rate:.1%} > {max_null_rate:.0%}", n, int(rate * df.height))
            )
        if stats[f"const:{n}"]:
            out.append(Failure("constant column", n, df.height, [str(df[n].drop_nulls().head(1).to_list())]))
    return out


def validate_features(
    df: pl.DataFrame,
    registry: FeatureRegistry,
    max_null_rate: float = MAX_NULL_RATE_AFTER_WARMUP,
    horizons: tuple[int, ...] = HORIZONS,
) -> list[Failure]:
    """Every problem found (empty list = valid)."""
    failures = _count_failures(df, registry)
    failures += _pandera_failures(df, feature_schema(registry, horizons))
    failures += _warmup_failures(df, registry, max_null_rate)
    return failures


def require_valid(
    df: pl.DataFrame, registry: FeatureRegistry, max_null_rate: float = MAX_NULL_RATE_AFTER_WARMUP
) -> None:
    failures = validate_features(df, registry, max_null_rate)
    if failures:
        raise FeatureValidationError(failures)
