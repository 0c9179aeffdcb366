"""The point-in-time stock graph (pure core)."""

from atft_dagster.graph.build import GraphConfig, build_stock_graph, graph_problems, graph_summary
from atft_dagster.graph.snapshots import GraphSnapshots

__all__ = ["GraphConfig", "GraphSnapshots", "build_stock_graph", "graph_problems", "graph_summary"]
