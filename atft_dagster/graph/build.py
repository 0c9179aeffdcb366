"""The point-in-time stock graph: correlation of market-residual returns, top-k neighbours.

For a rebuild date t and the W trading days ending at t (inclusive), with exponential weights
w_s ∝ 0.5^((t - s) / half_life) normalised to sum 1:

    e_i,s  = (r_i,s - r̄_i) - β_i (m_s - m̄),   β_i = Σ w (r_i - r̄_i)(m - m̄) / Σ w (m - m̄)²
    ρ_ij   = (1 - λ) · Σ_s w_s e_i,s e_j,s / sqrt(Σ w e_i² · Σ w e_j²)        (λ: shrinkage to zero)

Missing days count as zero residual. Every stock trading at t with at least ``min_observations`` returns
in the window keeps its ``top_k`` neighbours by ρ (or |ρ| when negative correlations are allowed); the
union of those directed choices is the undirected edge set (stored once, src < dst; no self-loops). A stock
with too little history is linked to sector33 peers instead (``fallback`` = 1, ρ = 0). The whole window is
one matrix product; no target or future row is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

EDGE_COLUMNS = ("date", "src", "dst", "corr", "same_sector33", "same_sector17", "same_segment", "fallback")
EDGE_ATTRS = ("corr", "same_sector33", "same_sector17", "same_segment", "fallback")


class GraphConfig(BaseModel):
    """Every tunable of the stock graph."""

    model_config = ConfigDict(frozen=True)

    rebuild_every: int = Field(
        5, ge=1, description="Rebuild every k-th trading day of the panel (and always the last day)."
    )
    lookback: int = Field(
        500,
        ge=5,
        description="Trading days in the correlation window (ending at the rebuild date). 500 with half-life "
        "250 and top_k 7 beat 250/125/10 on both tuning markets (docs/benchmarks.md, tenth sweep).",
    )
    half_life: float | None = Field(
        250.0, gt=0, description="Exponential weighting half-life in days; None = equal weights."
    )
    shrinkage: float = Field(0.1, ge=0, le=1, description="Correlations are multiplied by (1 - shrinkage).")
    top_k: int = Field(
        7, ge=1, description="Neighbours kept per stock (each stock's choice; the union is the edge set)."
    )
    min_abs_corr: float = Field(0.0, ge=0, le=1, description="Drop kNN edges whose |corr| is below this.")
    allow_negative: bool = Field(False, description="Rank neighbours by |corr| instead of corr.")
    min_observations: int = Field(
        20, ge=2, description="Fewer returns than this in the window => sector fallback."
    )
    fallback_peers: int = Field(
        5, ge=0, description="Sector33 peers linked to a stock with too little history."
    )


@dataclass(frozen=True)
class ReturnsMatrix:
    dates: list[date]
    codes: np.ndarray  # (N,)
    returns: np.ndarray  # (T, N) daily returns, NaN where no row / first row
    present: np.ndarray  # (T, N) bool: the stock trades that day
    market: np.ndarray  # (T,) TOPIX daily return
    sector33: np.ndarray  # (T, N) object, as of each date
    sector17: np.ndarray
    segment: np.ndarray


def returns_matrix(panel: pl.DataFrame, topix: pl.DataFrame) -> ReturnsMatrix:
    """Dense (date × code) arrays from the market panel (adjusted closes only; never a target)."""
    p = panel.select("date", "code", "adj_close", "sector33_code", "sector17_code", "market_segment").sort(
        "code", "date"
    )
    p = p.with_columns((pl.col("adj_close") / pl.col("adj_close").shift(1).over("code") - 1).alias("r"))
    dates = p["date"].unique().sort()
    codes = p["code"].unique().sort()
    d_index = {d: i for i, d in enumerate(dates.to_list())}
    c_index = {c: j for j, c in enumerate(codes.to_list())}
    ti = np.fromiter((d_index[d] for d in p["date"].to_list()), dtype=np.int64, count=p.height)
    ci = np.fromiter((c_index[c] for c in p["code"].to_list()), dtype=np.int64, count=p.height)
    T, N = len(dates), len(codes)
    ret = np.full((T, N), np.nan)
    ret[ti, ci] = p["r"].to_numpy()
    present = np.zeros((T, N), bool)
    present[ti, ci] = True
    attrs = {}
    for name in ("sector33_code", "sector17_code", "market_segment"):
        a = np.full((T, N), None, dtype=object)
        a[ti, ci] = p[name].to_numpy()
        attrs[name] = a
    mk = topix.sort("date").with_columns((pl.col("close") / pl.col("close").shift(1) - 1).alias("m"))
    m_by_date = dict(zip(mk["date"].to_list(), mk["m"].to_list(), strict=True))
    market = np.array([m_by_date.get(d) if m_by_date.get(d) is not None else np.nan for d in dates.to_list()])
    return ReturnsMatrix(
        dates.to_list(),
        codes.to_numpy(),
        ret,
        present,
        market,
        attrs["sector33_code"],
        attrs["sector17_code"],
        attrs["market_segment"],
    )


def rebuild_indices(n_dates: int, every: int) -> list[int]:
    idx = list(range(0, n_dates, every))
    if n_dates and idx[-1] != n_dates - 1:
        idx.append(n_dates - 1)
    return idx


def window_correlation(
    ret: np.ndarray, market: np.ndarray, half_life: float | None, shrinkage: float
) -> tuple[np.ndarray, np.ndarray]:
    """(ρ (N×N) with zero diagonal, observations per stock) for one window of returns (W×N, NaN = missing)."""
    W = ret.shape[0]
    valid = np.isfinite(ret) & np.isfinite(market)[:, None]
    w = 0.5 ** ((W - 1 - np.arange(W)) / half_life) if half_life else np.ones(W)
    m = np.where(np.isfinite(market), market, 0.0)
    wv = w[:, None] * valid
    wsum = wv.sum(axis=0)
    safe = np.where(wsum > 0, wsum, 1.0)
    x = np.where(valid, ret, 0.0)
    xbar = (wv * x).sum(axis=0) / safe
    mbar = (wv * m[:, None]).sum(axis=0) / safe
    xc = np.where(valid, x - xbar, 0.0)
    mc = np.where(valid, m[:, None] - mbar, 0.0)
    beta = (wv * xc * mc).sum(axis=0) / np.where(
        (wv * mc * mc).sum(axis=0) > 0, (wv * mc * mc).sum(axis=0), 1.0
    )
    e = (xc - mc * beta).astype(np.float32)
    ew = e * np.sqrt(w)[:, None].astype(np.float32)
    cov = ew.T @ ew
    var = np.diag(cov).copy()
    scale = (1.0 / np.sqrt(np.where(var > 0, var, np.inf))).astype(np.float32)
    corr = cov  # normalised in place: an N x N temporary costs as much as the product at N = 4000
    corr *= scale[:, None]
    corr *= scale[None, :] * np.float32(1.0 - shrinkage)
    np.fill_diagonal(corr, 0.0)
    return corr, valid.sum(axis=0)


def _knn_pairs(corr: np.ndarray, eligible: np.ndarray, cfg: GraphConfig) -> tuple[np.ndarray, np.ndarray]:
    """Undirected (i < j) union of each eligible node's top-k eligible neighbours."""
    idx = np.flatnonzero(eligible)
    if len(idx) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    score = np.abs(corr) if cfg.allow_negative else corr.copy()
    score[:, ~eligible] = -np.inf
    np.fill_diagonal(score, -np.inf)
    k = min(cfg.top_k, len(idx) - 1)
    rows_score = score if len(idx) == len(corr) else score[idx]
    _, nb = torch.topk(torch.from_numpy(rows_score), k, dim=1)  # ~10x faster than np.argpartition here
    rows = np.repeat(idx, k)
    cols = nb.numpy().ravel()
    keep = np.abs(corr[rows, cols]) >= cfg.min_abs_corr
    if not cfg.allow_negative:
        keep &= corr[rows, cols] > 0
    a, b = rows[keep], cols[keep]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pairs = np.unique(lo * len(corr) + hi)
    return pairs // len(corr), pairs % len(corr)


def _fallback_pairs(
    needy: np.ndarray, present: np.ndarray, sector: np.ndarray, n_obs: np.ndarray, peers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each stock with too little history -> up to ``peers`` same-sector stocks trading that day,
    the ones with the most history first (ties by code order)."""
    src, dst = [], []
    if peers == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    for i in np.flatnonzero(needy):
        mates = np.flatnonzero(present & (sector == sector[i]))
        mates = mates[mates != i]
        if len(mates) == 0:
            continue
        order = np.lexsort((mates, -n_obs[mates]))
        for j in mates[order][:peers]:
            src.append(min(i, j))
            dst.append(max(i, j))
    return np.asarray(src, np.int64), np.asarray(dst, np.int64)


def graph_at(mat: ReturnsMatrix, t: int, cfg: GraphConfig) -> pl.DataFrame:
    """The edge list of rebuild date index t (window ends at t, inclusive)."""
    lo = max(0, t - cfg.lookback + 1)
    corr, n_obs = window_correlation(
        mat.returns[lo : t + 1], mat.market[lo : t + 1], cfg.half_life, cfg.shrinkage
    )
    present = mat.present[t]
    eligible = present & (n_obs >= cfg.min_observations)
    a, b = _knn_pairs(corr, eligible, cfg)
    fa, fb = _fallback_pairs(present & ~eligible, present, mat.sector33[t], n_obs, cfg.fallback_peers)
    fallback = np.concatenate([np.zeros(len(a), bool), np.ones(len(fa), bool)])
    src, dst = np.concatenate([a, fa]), np.concatenate([b, fb])
    key = src * len(mat.codes) + dst
    _, first = np.unique(key, return_index=True)  # a kNN edge wins over a fallback duplicate
    src, dst, fallback = src[first], dst[first], fallback[first]
    s33, s17, seg = mat.sector33[t], mat.sector17[t], mat.segment[t]
    return pl.DataFrame(
        {
            "date": pl.Series([mat.dates[t]] * len(src), dtype=pl.Date),
            "src": mat.codes[src].astype(str),
            "dst": mat.codes[dst].astype(str),
            "corr": np.where(fallback, 0.0, corr[src, dst]).astype(np.float32),
            "same_sector33": s33[src] == s33[dst],
            "same_sector17": s17[src] == s17[dst],
            "same_segment": seg[src] == seg[dst],
            "fallback": fallback,
        },
        schema={
            "date": pl.Date,
            "src": pl.String,
            "dst": pl.String,
            "corr": pl.Float32,
            "same_sector33": pl.Boolean,
            "same_sector17": pl.Boolean,
            "same_segment": pl.Boolean,
            "fallback": pl.Boolean,
        },
    )


def build_stock_graph(
    panel: pl.DataFrame, topix: pl.DataFrame, cfg: GraphConfig | None = None, progress: bool = False
) -> pl.DataFrame:
    """Edges for every rebuild date: (date, src, dst, corr, same_sector33, same_sector17, same_segment, fallback).
    ``progress`` shows a bar over the rebuild dates (for a terminal)."""
    cfg = cfg or GraphConfig()
    mat = returns_matrix(panel, topix)
    rebuilds = rebuild_indices(len(mat.dates), cfg.rebuild_every)
    steps = tqdm(rebuilds, desc="graph snapshots", unit="date", disable=not progress)
    parts = [graph_at(mat, t, cfg) for t in steps]
    return pl.concat(parts) if parts else pl.DataFrame(schema=dict.fromkeys(EDGE_COLUMNS))


def graph_summary(edges: pl.DataFrame, panel: pl.DataFrame) -> pl.DataFrame:
    """Per rebuild date: nodes trading, edges, mean degree, isolated nodes, same-sector share, mean |corr|."""
    nodes = panel.group_by("date").agg(pl.len().alias("nodes"))
    per = edges.group_by("date").agg(
        pl.len().alias("edges"),
        pl.col("same_sector33").mean().alias("same_sector_share"),
        pl.col("corr").filter(~pl.col("fallback")).abs().mean().alias("mean_abs_corr"),
        pl.col("fallback").sum().alias("fallback_edges"),
        pl.concat_list("src", "dst").explode().n_unique().alias("connected"),
    )
    out = per.join(nodes, on="date", how="left").with_columns(
        (2 * pl.col("edges") / pl.col("nodes")).alias("mean_degree"),
        (pl.col("nodes") - pl.col("connected")).alias("isolated"),
    )
    return out.select(
        "date",
        "nodes",
        "edges",
        "mean_degree",
        "isolated",
        "same_sector_share",
        "mean_abs_corr",
        "fallback_edges",
    ).sort("date")


class GraphCheckError(ValueError):
    pass


def graph_problems(edges: pl.DataFrame, summary: pl.DataFrame) -> list[str]:
    """Empty or degenerate graphs: no edges, a rebuild date with every node isolated, NaN weights,
    self-loops, duplicate or unordered edges."""
    problems = []
    if edges.is_empty():
        return ["the graph has no edges"]
    if edges["corr"].is_nan().any() or edges["corr"].is_null().any():
        problems.append(
            f"{int(edges['corr'].is_nan().sum() + edges['corr'].null_count())} edge(s) with NaN/null corr"
        )
    if (edges["src"] == edges["dst"]).any():
        problems.append("self-loops stored")
    if (edges["src"] > edges["dst"]).any():
        problems.append("edges not stored once with src < dst")
    if edges.select(pl.struct("date", "src", "dst").is_duplicated().any()).item():
        problems.append("duplicate edges")
    dead = summary.filter(pl.col("isolated") >= pl.col("nodes"))
    if len(dead):
        problems.append(f"{len(dead)} rebuild date(s) with every node isolated, e.g. {dead['date'][0]}")
    return problems
