"""The stock_graph asset: built once from the market panel, never per batch."""

import sys

import dagster as dg
import polars as pl

from atft_dagster.defs.feature_assets import FEATURES_GROUP
from atft_dagster.defs.resources import ProjectPaths
from atft_dagster.graph import GraphConfig, build_stock_graph, graph_problems, graph_summary
from atft_dagster.storage import write_json_atomic


class StockGraphConfig(dg.Config, GraphConfig):
    """The fields and defaults of :class:`atft_dagster.graph.GraphConfig`, editable in the launchpad."""


def _summary_md(summary: pl.DataFrame, last: int = 10) -> str:
    rows = summary.tail(last).iter_rows(named=True)
    body = "\n".join(
        f"| {r['date']} | {r['nodes']} | {r['edges']} | {r['mean_degree']:.1f} | {r['isolated']} | {r['same_sector_share']:.2f} | {(r['mean_abs_corr'] or 0):.3f} | {r['fallback_edges']} |"
        for r in rows
    )
    return (
        "| rebuild date | nodes | edges | mean degree | isolated | same-sector share | mean abs corr | fallback edges |\n|---|---|---|---|---|---|---|---|\n"
        + body
    )


@dg.asset(
    group_name=FEATURES_GROUP,
    kinds={"polars", "parquet"},
    ins={"topix_index": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    description="Point-in-time stock graph: for every rebuild date (every k-th trading day and the last), each "
    "stock's top-k neighbours by exponentially weighted, shrunk correlation of market-residual returns over the "
    "window ending that day; sector33 peers for stocks with too little history. Edges stored once (src < dst) "
    "with corr, same_sector33, same_sector17, same_segment, fallback. The model uses the latest rebuild <= t.",
)
def stock_graph(
    context: dg.AssetExecutionContext,
    config: StockGraphConfig,
    market_panel: pl.DataFrame,
    topix_index: pl.DataFrame,
    paths: ProjectPaths,
) -> pl.DataFrame:
    cfg = GraphConfig(**config.model_dump())
    edges = build_stock_graph(market_panel, topix_index, cfg, progress=sys.stderr.isatty())
    write_json_atomic(
        cfg.model_dump(mode="json"), paths.layout.graph_config
    )  # recorded with every checkpoint
    summary = graph_summary(edges, market_panel)
    latest = summary.tail(1).row(0, named=True) if len(summary) else {}
    context.add_output_metadata(
        {
            "config": dg.MetadataValue.json(cfg.model_dump()),
            "rebuild_dates": summary.height,
            "edges_total": edges.height,
            "latest_rebuild_date": str(latest.get("date")),
            "latest_nodes": int(latest.get("nodes") or 0),
            "latest_edges": int(latest.get("edges") or 0),
            "mean_degree": float(summary["mean_degree"].mean() or 0),
            "mean_isolated_nodes": float(summary["isolated"].mean() or 0),
            "same_sector_share": float(summary["same_sector_share"].mean() or 0),
            "mean_abs_corr": float(summary["mean_abs_corr"].mean() or 0),
            "per_rebuild_date": dg.MetadataValue.md(_summary_md(summary)),
        }
    )
    return edges


@dg.asset_check(
    asset=stock_graph,
    blocking=True,
    additional_ins={"market_panel": dg.AssetIn()},
    description="Fails on an empty or degenerate graph: no edges, every node isolated on a rebuild date, NaN weights, self-loops, duplicates.",
)
def stock_graph_sound(stock_graph: pl.DataFrame, market_panel: pl.DataFrame) -> dg.AssetCheckResult:
    summary = graph_summary(stock_graph, market_panel)
    problems = graph_problems(stock_graph, summary)
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
            "rebuild_dates": summary.height,
        },
    )
