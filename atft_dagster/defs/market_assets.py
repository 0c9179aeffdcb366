"""Market-data assets: raw daily quotes, sector master, TOPIX, trading calendar, market panel, and the
synthetic market's ground truth (oracle, hidden peer network) that no feature or model reads."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl

from atft_dagster.calendar import calendar_horizon
from atft_dagster.defs.partitions import TIMEZONE, partition_date, trading_days_partitions
from atft_dagster.defs.resources import MarketSourceResource, SyntheticMarketResource
from atft_dagster.horizons import target_horizons
from atft_dagster.panel import build_market_panel, missing_stock_days, panel_integrity, require_no_gaps
from atft_dagster.sources.base import require_days
from atft_dagster.sources.synthetic import SyntheticSource

MARKET_GROUP = "market_data"
TRUTH_GROUP = "synthetic_truth"
CALENDAR_LOOKAHEAD_DAYS = 120


def _today_tokyo() -> date:
    return datetime.now(ZoneInfo(TIMEZONE)).date()


def _range(context: dg.AssetExecutionContext) -> tuple[date, date]:
    window = context.partition_key_range
    return partition_date(window.start), partition_date(window.end)


@dg.asset(
    group_name=MARKET_GROUP,
    partitions_def=trading_days_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"polars", "parquet"},
    description="Raw (unadjusted) daily bars per XTKS trading day, canonical schema, from `market_source`.",
)
def raw_daily_quotes(context: dg.AssetExecutionContext, market_source: MarketSourceResource) -> pl.DataFrame:
    start, end = _range(context)
    source = market_source.source()
    quotes = source.daily_quotes(start, end)
    require_days(quotes, [partition_date(k) for k in context.partition_keys], f"source '{source.name}'")
    context.add_output_metadata(
        {
            "source": source.name,
            "first_date": str(start),
            "last_date": str(end),
            "codes": quotes["code"].n_unique(),
        }
    )
    return quotes


@dg.asset(
    group_name=MARKET_GROUP,
    partitions_def=trading_days_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"polars", "parquet"},
    description="TOPIX daily bars (open, high, low, close) per trading day; from landing files without a TOPIX "
    "file, an equal-weighted index of the landed stocks, labelled so in the `index` metadata.",
)
def topix_index(context: dg.AssetExecutionContext, market_source: MarketSourceResource) -> pl.DataFrame:
    start, end = _range(context)
    source = market_source.source()
    bars = source.topix(start, end)
    require_days(bars, [partition_date(k) for k in context.partition_keys], "the TOPIX series")
    context.add_output_metadata({"index": getattr(source, "index_origin", "TOPIX")})
    return bars


@dg.asset(
    group_name=MARKET_GROUP,
    kinds={"polars", "parquet"},
    description="Sector33 / sector17 membership and market segment per code with validity intervals "
    "[valid_from, valid_to), as known today (Asia/Tokyo).",
)
def sector_master(context: dg.AssetExecutionContext, market_source: MarketSourceResource) -> pl.DataFrame:
    master = market_source.source().sector_master(_today_tokyo())
    changed = master.filter(pl.col("code").is_duplicated())["code"].n_unique()
    context.add_output_metadata({"codes": master["code"].n_unique(), "codes_reclassified": changed})
    return master


@dg.asset(
    group_name=MARKET_GROUP,
    kinds={"polars", "parquet"},
    description="Every calendar day from the first partition to a look-ahead past today, flagged "
    "as XTKS trading day or not (holidays are published in advance, so the look-ahead is point-in-time).",
)
def trading_calendar(context: dg.AssetExecutionContext, market_source: MarketSourceResource) -> pl.DataFrame:
    first = partition_date(trading_days_partitions.get_first_partition_key())
    last = min(_today_tokyo() + timedelta(days=CALENDAR_LOOKAHEAD_DAYS), calendar_horizon())
    cal = market_source.source().calendar(first, last)
    context.add_output_metadata({"trading_days": int(cal["is_trading_day"].sum()), "last_date": str(last)})
    return cal


@dg.asset(
    group_name=MARKET_GROUP,
    kinds={"polars", "parquet"},
    ins={"raw_daily_quotes": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    description="All ingested days in one (date, code) panel: point-in-time split-adjusted prices, "
    "as-of sector33, market cap and turnover. Everything downstream reads this table.",
)
def market_panel(
    context: dg.AssetExecutionContext,
    raw_daily_quotes: pl.DataFrame,
    sector_master: pl.DataFrame,
    trading_calendar: pl.DataFrame,
) -> pl.DataFrame:
    require_no_gaps(raw_daily_quotes["date"], trading_calendar)
    panel = build_market_panel(raw_daily_quotes, sector_master, trading_calendar)
    no_trade = missing_stock_days(panel, trading_calendar)
    if no_trade.height:
        context.log.info(
            f"{int(no_trade['missing_days'].sum())} stock-days without a row (no-trade days) in "
            f"{no_trade.height} codes; most: {no_trade.head(3).to_dicts()}"
        )
    context.add_output_metadata(
        {
            "no_trade_stock_days": int(no_trade["missing_days"].sum()),
            "codes_with_no_trade_days": no_trade.height,
            "no_trade_days_by_code": dg.MetadataValue.md(_markdown(no_trade.head(20))),
            "first_date": str(panel["date"].min()),
            "last_date": str(panel["date"].max()),
            "trading_days": panel["date"].n_unique(),
            "codes": panel["code"].n_unique(),
            "rows_without_sector33": panel["sector33_code"].null_count(),
            "splits": int((panel["adj_factor"] != 1.0).sum()),
        }
    )
    return panel


def _markdown(df: pl.DataFrame) -> str:
    if df.is_empty():
        return "none"
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * df.width
    return head + "".join("\n| " + " | ".join(str(v) for v in row) + " |" for row in df.iter_rows())


@dg.asset_check(
    asset=market_panel, blocking=True, description="(date, code) unique and sector33 known as of each date."
)
def market_panel_integrity(market_panel: pl.DataFrame) -> dg.AssetCheckResult:
    r = panel_integrity(market_panel)
    return dg.AssetCheckResult(
        passed=r.passed,
        metadata={
            "duplicate_keys": r.duplicate_keys,
            "sector33_coverage": r.sector33_coverage,
            "min_sector33_coverage": r.min_coverage,
            "sample_rows_without_sector33": dg.MetadataValue.md(str(r.rows_without_sector33)),
        },
    )


_NO_TRUTH = "ground truth exists only for the synthetic market; market_source is "


def _synthetic(market_source: MarketSourceResource) -> SyntheticSource:
    if not isinstance(market_source, SyntheticMarketResource):
        raise TypeError(_NO_TRUTH + type(market_source).__name__)
    return market_source.source()


@dg.asset(
    group_name=TRUTH_GROUP,
    kinds={"polars", "parquet"},
    description="Synthetic market only: the true expected forward return per (date, code) and horizon. "
    "Used by evaluation as an upper bound; no feature, graph or model reads it.",
)
def market_oracle(
    context: dg.AssetExecutionContext, market_panel: pl.DataFrame, market_source: MarketSourceResource
) -> pl.DataFrame:
    oracle = market_source.oracle(market_panel["date"].min(), market_panel["date"].max())
    if oracle is None:
        raise TypeError(_NO_TRUTH + type(market_source).__name__)
    oracle = oracle.join(market_panel.select("date", "code"), on=["date", "code"], how="semi")
    horizons = target_horizons([c.replace("oracle_", "target_") for c in oracle.columns])
    context.add_output_metadata({"rows": oracle.height, "horizons": str(list(horizons))})
    return oracle


@dg.asset(
    group_name=TRUTH_GROUP,
    kinds={"polars", "parquet"},
    description="Synthetic market only: the hidden stock-to-stock peer network (graph-recovery tests).",
)
def hidden_peer_network(
    context: dg.AssetExecutionContext, market_source: MarketSourceResource
) -> pl.DataFrame:
    net = _synthetic(market_source).peer_network()
    context.add_output_metadata({"edges": net.height, "clusters": net["cluster"].n_unique()})
    return net
