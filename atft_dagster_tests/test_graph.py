"""The stock graph: structure, correlation maths, recovery of the hidden network, point-in-time, config."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from atft_dagster.graph import GraphConfig, GraphSnapshots, build_stock_graph, graph_problems, graph_summary
from atft_dagster.graph.build import rebuild_indices, window_correlation
from atft_dagster.market import SyntheticMarketConfig
from atft_dagster.panel import build_market_panel
from atft_dagster.sources import SyntheticSource


def _inputs(cfg: SyntheticMarketConfig):
    src = SyntheticSource(cfg)
    d = src.history_days()
    panel = build_market_panel(
        src.daily_quotes(d[0], d[-1]), src.sector_master(d[-1]), src.calendar(d[0], d[-1])
    )
    return src, panel, src.topix(d[0], d[-1])


@pytest.fixture(scope="module")
def default_graph():
    src, panel, topix = _inputs(SyntheticMarketConfig())
    return src, panel, topix, build_stock_graph(panel, topix)


def test_structure(default_graph):
    _, panel, _, g = default_graph
    summary = graph_summary(g, panel)
    assert graph_problems(g, summary) == []
    assert (g["src"] < g["dst"]).all()
    days = panel["date"].unique().sort().to_list()
    expected = [days[i] for i in rebuild_indices(len(days), 5)]
    assert summary["date"].to_list() == expected and expected[-1] == days[-1]
    late = summary.filter(pl.col("date") > days[100])
    assert (late["mean_degree"] >= GraphConfig().top_k).all()
    assert (late["isolated"] == 0).all()


def test_recovers_the_hidden_network_better_than_chance_and_sectors(default_graph):
    src, panel, _, g = default_graph
    net = src.peer_network()
    hidden = set(zip(net["src"], net["dst"], strict=True))
    n = panel["code"].n_unique()
    chance = len(hidden) / (n * (n - 1) / 2)
    last = panel["date"].max()
    sectors = panel.filter(pl.col("date") == last).select("code", "sector33_code")
    pairs = sectors.join(sectors, on="sector33_code", suffix="_b").filter(pl.col("code") < pl.col("code_b"))
    sector_precision = np.mean(
        [(a, b) in hidden for a, b in zip(pairs["code"], pairs["code_b"], strict=True)]
    )
    late = g.filter((pl.col("date") > panel["date"].unique().sort()[100]) & ~pl.col("fallback"))
    precision = np.mean([(a, b) in hidden for a, b in zip(late["src"], late["dst"], strict=True)])
    # measured 0.50 against 0.024 chance and 0.11 for same-sector pairs (docs/benchmarks.md)
    assert precision > 15 * chance
    assert precision > 3 * sector_precision


def test_window_correlation_matches_residual_corrcoef():
    rng = np.random.default_rng(0)
    m = rng.standard_normal(80) * 0.01
    ret = 0.8 * m[:, None] + rng.standard_normal((80, 6)) * 0.02
    ret[:, 1] += ret[:, 0]  # a correlated pair
    corr, n = window_correlation(ret, m, half_life=None, shrinkage=0.0)
    resid = np.column_stack([np.polynomial.polynomial.polyfit(m, ret[:, i], 1) for i in range(6)])
    e = ret - (resid[0] + np.outer(m, resid[1]))
    expected = np.corrcoef(e, rowvar=False)
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(corr, expected, atol=1e-5)
    assert (n == 80).all()
    shrunk, _ = window_correlation(ret, m, half_life=None, shrinkage=0.25)
    np.testing.assert_allclose(shrunk, 0.75 * corr, atol=1e-6)


def test_point_in_time_when_later_data_changes(default_graph):
    _, panel, topix, g = default_graph
    days = panel["date"].unique().sort().to_list()
    t = days[400]
    rng = np.random.default_rng(1)
    noise = pl.Series(np.exp(rng.normal(0, 0.05, panel.height)))
    altered = panel.with_columns(
        pl.when(pl.col("date") > t)
        .then(pl.col("adj_close") * noise)
        .otherwise(pl.col("adj_close"))
        .alias("adj_close")
    )
    topix2 = topix.with_columns(
        pl.when(pl.col("date") > t).then(pl.col("close") * 1.1).otherwise(pl.col("close")).alias("close")
    )
    g2 = build_stock_graph(altered, topix2)
    assert g2.filter(pl.col("date") <= t).equals(g.filter(pl.col("date") <= t))
    assert not g2.filter(pl.col("date") > t).equals(g.filter(pl.col("date") > t))


def test_targets_are_never_read(default_graph):
    _, panel, topix, g = default_graph
    rng = np.random.default_rng(2)
    with_target = panel.with_columns(pl.Series("target_1d", rng.standard_normal(panel.height)))
    assert build_stock_graph(with_target, topix).equals(g)


def test_fallback_links_new_listings_to_sector_peers(default_graph):
    _, panel, _, g = default_graph
    first_day = panel.group_by("code").agg(pl.col("date").min().alias("first"))
    late_listers = first_day.filter(pl.col("first") > panel["date"].min())
    fb = g.filter(pl.col("fallback"))
    assert fb.height > 0 and fb["same_sector33"].all() and (fb["corr"] == 0).all()
    # on its listing day a new stock has no kNN edges, only fallback ones
    code, first = late_listers.row(0)
    day_edges = g.filter(pl.col("date") == g.filter(pl.col("date") >= first)["date"].min())
    mine = day_edges.filter((pl.col("src") == code) | (pl.col("dst") == code))
    assert mine.height > 0 and mine["fallback"].all()


@pytest.mark.parametrize(
    ("field", "value", "check"),
    [
        ("top_k", 4, lambda a, b: b.height < a.height),
        ("rebuild_every", 10, lambda a, b: b["date"].n_unique() < a["date"].n_unique()),
        ("allow_negative", True, lambda a, b: (b["corr"] < 0).any() and not (a["corr"] < 0).any()),
        ("min_abs_corr", 0.3, lambda a, b: b.filter(~pl.col("fallback"))["corr"].abs().min() >= 0.3 * 0.999),
        ("lookback", 60, lambda a, b: not a.equals(b)),
        ("half_life", None, lambda a, b: not a.equals(b)),
        ("shrinkage", 0.5, lambda a, b: b["corr"].abs().max() < a["corr"].abs().max()),
        ("fallback_peers", 0, lambda a, b: not b["fallback"].any() and a["fallback"].any()),
    ],
)
def test_every_config_value_changes_the_graph(default_graph, field, value, check):
    _, panel, topix, g = default_graph
    other = build_stock_graph(panel, topix, GraphConfig(**{field: value}))
    assert check(g, other)


def test_snapshots_use_the_latest_rebuild_not_after_t(default_graph):
    _, panel, _, g = default_graph
    snaps = GraphSnapshots(g)
    days = panel["date"].unique().sort().to_list()
    for t in (days[0], days[3], days[5], days[6], days[-1]):
        d = snaps.rebuild_date_for(t)
        assert d <= t and (snaps.edges_for(t)["date"] == d).all()
        assert all(r <= d or r > t for r in snaps.rebuild_dates)
    with pytest.raises(LookupError):
        snaps.edges_for(days[0].replace(year=days[0].year - 1))


def test_degenerate_graphs_are_flagged(default_graph):
    _, panel, _, g = default_graph
    s = graph_summary(g, panel)
    assert graph_problems(g.head(0), s) == ["the graph has no edges"]
    nan = g.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(float("nan")).otherwise(pl.col("corr")).alias("corr")
    )
    assert any("NaN" in p for p in graph_problems(nan, s))
    all_isolated = s.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.col("nodes"))
        .otherwise(pl.col("isolated"))
        .alias("isolated")
    )
    assert any("every node isolated" in p for p in graph_problems(g, all_isolated))
    loops = g.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.col("src")).otherwise(pl.col("dst")).alias("dst")
    )
    assert "self-loops stored" in graph_problems(loops, s)


def test_a_terminal_sees_a_bar_over_the_snapshots(capsys):
    from atft_dagster.graph.build import rebuild_indices

    _, panel, topix = _inputs(SyntheticMarketConfig(n_stocks=30, n_days=120))
    quiet = build_stock_graph(panel, topix)
    assert "graph snapshots" not in capsys.readouterr().err  # no terminal (a log file, CI): no bar
    assert build_stock_graph(panel, topix, progress=True).equals(quiet)  # the bar changes nothing
    n = len(rebuild_indices(panel["date"].n_unique(), GraphConfig().rebuild_every))
    err = capsys.readouterr().err
    assert "graph snapshots: 100%" in err and f"{n}/{n}" in err
