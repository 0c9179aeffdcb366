"""CSV / Parquet files dropped into a landing directory, in the J-Quants v2 or the JPX-Kaggle layout.

A malformed file is moved to the quarantine folder with ``<name>.reason.txt`` beside it, and the error
names the file, the line (CSV: header is line 1) or row (Parquet: 0-based) and the column. Nothing from
a rejected file is ingested.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import polars as pl

from atft_dagster.calendar import trading_days
from atft_dagster.sectors import VALID_SECTOR33_CODES
from atft_dagster.sources.base import calendar_frame, equal_weighted_index
from atft_dagster.sources.layouts import (
    COLUMN_TYPES,
    MASTER_LAYOUTS,
    PRICE_SOURCE,
    QUOTE_LAYOUTS,
    SIGNATURES,
    Layout,
    detect_layout,
    snapshots_to_intervals,
    source_column,
    to_canonical,
    typed_columns,
)
from atft_dagster.sources.schema import (
    DailyQuotes,
    DataValidationError,
    IndexBars,
    SectorMaster,
    Violation,
    validate,
)
from atft_dagster.storage import write_text_atomic


class FileRejected(ValueError):
    """A landed file failed its checks and was quarantined."""

    def __init__(self, path: Path, reason: str, quarantined_to: Path | None = None):
        self.path, self.reason, self.quarantined_to = path, reason, quarantined_to
        where = (
            f"; moved to {quarantined_to}" if quarantined_to else "; already quarantined by another process"
        )
        super().__init__(f"rejected {path.name}: {reason}{where}")


@dataclass(frozen=True)
class LandedFile:
    path: Path
    layout: Layout
    frame: pl.DataFrame  # canonical-ish: quotes, master snapshots or index bars


SUFFIXES = (".csv", ".parquet")
DERIVED_INDEX = "derived: equal-weighted mean return of the landed stocks (no TOPIX file landed)"


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Shift-JIS as Windows writes it (CP932), common from Japanese tools."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as utf8:
        try:
            return data.decode("cp932")
        except UnicodeDecodeError:
            raise ValueError(f"text is neither UTF-8 nor Shift-JIS/CP932 ({utf8})") from None


def _read_raw(path: Path) -> pl.DataFrame:
    if path.suffix.lower() == ".csv":
        return pl.read_csv(_decode(path.read_bytes()).encode("utf-8"), infer_schema=False)
    return pl.read_parquet(path).with_columns(pl.all().cast(pl.String))


def _row_label(path: Path) -> tuple[str, int]:
    """How rows are named in messages: CSV line numbers (header = line 1) or 0-based Parquet rows."""
    return ("line", 2) if path.suffix.lower() == ".csv" else ("row", 0)


@dataclass(frozen=True)
class QuoteLimits:
    """Bounds a landed quote row must respect; a row outside them is quarantined with its line."""

    max_price: float = 1e9  # JPY per share; the highest TSE prices ever were around 1.7e8
    not_after: date | None = None  # no session after this date (the landing day, in Tokyo); None = no check


def _quote_row_checks(
    layout: Layout, canon: pl.DataFrame, typed: pl.DataFrame, limits: QuoteLimits
) -> list[Violation]:
    """Non-finite or absurd numbers, rows cut short (some prices or the adjustment factor missing), and
    sessions after ``limits.not_after``."""
    problems: list[Violation] = []
    source = PRICE_SOURCE[layout]
    for col, src in source.items():
        values = canon[col]
        bad = (values.is_not_null() & ~values.is_finite()).arg_true()
        problems += [Violation(src, i, "not a finite number", str(values[i])) for i in bad.head(20).to_list()]
        if col in ("open", "high", "low", "close"):
            big = (values.is_finite() & (values > limits.max_price)).arg_true()
            problems += [
                Violation(src, i, f"price above the bound {limits.max_price:g}", str(values[i]))
                for i in big.head(20).to_list()
            ]
    prices = ["open", "high", "low", "close"]
    partial = canon.select(pl.any_horizontal(pl.col(prices).is_null())).to_series()
    for i in partial.arg_true().head(20).to_list():
        missing = [source[c] for c in prices if canon[c][i] is None]
        problems.append(
            Violation(missing[0], i, f"row incomplete (missing {', '.join(missing)}): cut short?", "")
        )
    no_adj = typed[source["adj_factor"]].is_null().arg_true()
    problems += [
        Violation(source["adj_factor"], i, "adjustment factor missing on a traded row: cut short?", "")
        for i in no_adj.head(20).to_list()
    ]
    if limits.not_after is not None:
        late = (canon["date"] > limits.not_after).arg_true()
        problems += [
            Violation("Date", i, f"session after {limits.not_after} (in the future)", str(canon["date"][i]))
            for i in late.head(20).to_list()
        ]
    return problems


def _semantic_checks(layout: Layout, canon: pl.DataFrame) -> list[Violation]:
    problems: list[Violation] = []
    if layout in MASTER_LAYOUTS:
        bad = (~canon["sector33_code"].is_in(sorted(VALID_SECTOR33_CODES))).arg_true()
        col = "S33" if layout == Layout.JQUANTS_MASTER else "33SectorCode"
        problems += [
            Violation(col, i, "unknown TSE sector33 code", str(canon["sector33_code"][i]))
            for i in bad.head(20).to_list()
        ]
    if layout in QUOTE_LAYOUTS:
        days = canon["date"].drop_nulls()
        if len(days):
            sessions = set(trading_days(days.min(), days.max()))
            bad = (~canon["date"].is_in(sorted(sessions))).arg_true()
            problems += [
                Violation("Date", i, "not an XTKS trading day", str(canon["date"][i]))
                for i in bad.head(20).to_list()
            ]
    return problems


def read_landed_file(path: Path, limits: QuoteLimits = QuoteLimits()) -> LandedFile:
    """Parse and check one file; raise :class:`DataValidationError` naming line/row and column."""
    label, offset = _row_label(path)
    try:
        raw = _read_raw(path)
    except Exception as exc:  # unreadable: not CSV/Parquet at all
        raise DataValidationError(
            "file", [Violation(None, None, f"unreadable: {exc}", "")], path.name
        ) from None
    if raw.height == 0:
        msg = f"no data rows (columns {raw.columns})" if raw.width else "empty file"
        raise DataValidationError("file", [Violation(None, None, msg, "")], path.name)
    layout = detect_layout(raw.columns)
    if layout is None:
        expected = " | ".join(f"{k.value}: {', '.join(v)}" for k, v in SIGNATURES.items())
        msg = f"unrecognised layout; columns {raw.columns}; expected one of {expected}"
        raise DataValidationError("file", [Violation(None, None, msg, "")], path.name)
    types = COLUMN_TYPES[layout]
    missing = [c for c in types if c not in raw.columns]
    if missing:
        raise DataValidationError(
            layout.value, [Violation(c, None, "required column is missing", "") for c in missing], path.name
        )
    typed, problems = typed_columns(raw, types)
    # rows without any price are no-trade days (J-Quants and Kaggle publish them with nulls): dropped
    if layout in QUOTE_LAYOUTS:
        px = ["O", "H", "L", "C"] if layout == Layout.JQUANTS_BARS else ["Open", "High", "Low", "Close"]
        keep = ~pl.all_horizontal(pl.col(px).is_null())
        typed = typed.with_row_index("_row").filter(keep)
    else:
        typed = typed.with_row_index("_row")
    canon = to_canonical(layout, typed)
    rows = typed["_row"]
    checks = _semantic_checks(layout, canon)
    if layout in QUOTE_LAYOUTS:
        checks += _quote_row_checks(layout, canon, typed, limits)
    problems += [Violation(v.column, int(rows[v.row]), v.check, v.value) for v in checks]
    if not problems:
        model = {Layout.JQUANTS_TOPIX: IndexBars}.get(
            layout, DailyQuotes if layout in QUOTE_LAYOUTS else None
        )
        if model is not None:
            try:
                validate(canon, model)
            except DataValidationError as err:
                problems += [
                    Violation(
                        source_column(layout, v.column),
                        None if v.row is None else int(rows[v.row]),
                        v.check,
                        v.value,
                    )
                    for v in err.violations
                ]
    if problems:
        problems = [
            Violation(v.column, None if v.row is None else v.row + offset, v.check, v.value) for v in problems
        ]
        raise _located(layout.value, problems, path.name, label)
    return LandedFile(path, layout, canon)


def _located(table: str, problems: list[Violation], source: str, label: str) -> DataValidationError:
    err = DataValidationError(table, problems, source)
    head = "; ".join(v.describe(label) for v in problems[:5])
    more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
    err.args = (f"{source}: {head}{more}",)
    return err


def quarantine(path: Path, quarantine_dir: Path, reason: str) -> Path | None:
    """Move ``path`` into ``quarantine_dir`` and write the reason beside it. Returns where it went, or None
    when another process (a second sensor tick, a concurrent run) moved it first."""
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = quarantine_dir / path.name
    if target.exists():
        stamp = f"{datetime.now():%Y%m%dT%H%M%S%f}.{uuid.uuid4().hex[:8]}"
        target = quarantine_dir / f"{path.stem}.{stamp}{path.suffix}"
    try:
        shutil.move(str(path), target)
    except FileNotFoundError:
        return None
    write_text_atomic(reason + "\n", target.with_name(target.name + ".reason.txt"))
    return target


@dataclass
class LandingFileSource:
    """Reads every well-formed file in ``landing_dir``; quarantines the others and raises."""

    landing_dir: Path
    quarantine_dir: Path | None = None
    name: str = "files"
    limits: QuoteLimits = QuoteLimits()
    index_origin: str = "TOPIX (landed files)"  # set by topix(): where the market index came from

    def __post_init__(self) -> None:
        self.landing_dir = Path(self.landing_dir)
        self.quarantine_dir = (
            Path(self.quarantine_dir) if self.quarantine_dir else self.landing_dir / "_quarantine"
        )

    def files(self) -> list[Path]:
        if not self.landing_dir.exists():
            return []
        return sorted(p for p in self.landing_dir.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)

    def check(self, path: Path) -> LandedFile:
        """Read one file; on failure quarantine it and raise :class:`FileRejected`."""
        try:
            return read_landed_file(path, self.limits)
        except DataValidationError as err:
            reason = str(err)
            moved = quarantine(path, self.quarantine_dir, reason)
            raise FileRejected(path, reason, moved) from None

    def _load(self, layouts: tuple[Layout, ...]) -> list[LandedFile]:
        out = []
        for path in self.files():
            landed = self.check(path)
            if landed.layout in layouts:
                out.append(landed)
        return out

    def daily_quotes(self, start: date, end: date) -> pl.DataFrame:
        parts = []
        for f in self._load(QUOTE_LAYOUTS):
            frame = f.frame
            if f.layout == Layout.KAGGLE_PRICES:
                # Kaggle records the factor on the last row before the ex-date; J-Quants on the ex-date.
                frame = frame.sort("code", "date").with_columns(
                    pl.col("adj_factor").shift(1).over("code").fill_null(1.0)
                )
            parts.append(frame.with_columns(pl.lit(f.path.name).alias("_file")))
        if not parts:
            raise FileNotFoundError(f"no daily-quote files in {self.landing_dir}")
        q = pl.concat(parts).filter(pl.col("date").is_between(start, end)).sort("date", "code")
        dup = q.filter(pl.struct("date", "code").is_duplicated())
        if len(dup):
            first = dup.row(0, named=True)
            files = sorted(set(dup["_file"].to_list()))
            raise ValueError(
                f"duplicate (date, code) across landed files {files}: e.g. {first['date']} {first['code']}"
            )
        return validate(q.drop("_file"), DailyQuotes, str(self.landing_dir))

    def sector_master(self, as_of: date) -> pl.DataFrame:
        snaps = [f.frame for f in self._load(MASTER_LAYOUTS)]
        if not snaps:
            raise FileNotFoundError(
                f"no equity-master files (J-Quants or stock_list.csv) in {self.landing_dir}"
            )
        snap = pl.concat(snaps).filter(pl.col("snapshot") <= as_of)
        return validate(snapshots_to_intervals(snap), SectorMaster, str(self.landing_dir))

    def topix(self, start: date, end: date) -> pl.DataFrame:
        """Landed TOPIX bars; without a TOPIX file, an index derived from the landed quotes (every landed
        session up to ``end``, so a range's levels do not depend on where it starts), and
        ``index_origin`` says so."""
        parts = [f.frame for f in self._load((Layout.JQUANTS_TOPIX,))]
        if not parts:
            self.index_origin = DERIVED_INDEX
            derived = equal_weighted_index(self.daily_quotes(date.min, end))
            return validate(derived.filter(pl.col("date") >= start), IndexBars, str(self.landing_dir))
        self.index_origin = "TOPIX (landed files)"
        t = (
            pl.concat(parts)
            .unique("date", keep="last")
            .filter(pl.col("date").is_between(start, end))
            .sort("date")
        )
        return validate(t, IndexBars, str(self.landing_dir))

    def calendar(self, start: date, end: date) -> pl.DataFrame:
        return calendar_frame(start, end, trading_days(start, end))
