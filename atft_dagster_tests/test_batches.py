"""Device-resident batches equal the host-built reference, feature for feature and edge for edge."""

from __future__ import annotations

import functools
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
import torch

from atft_dagster.features import compute_features, default_registry
from atft_dagster.features.normalise import NormaliserConfig, normalise
from atft_dagster.graph import build_stock_graph
from atft_dagster.market import SyntheticMarketConfig
from atft_dagster.panel import build_market_panel
from atft_dagster.sources import SyntheticSource
from atft_dagster.training import data as data_module
from atft_dagster.training.data import EDGE_ATTR_COLUMNS, PanelTensors

SEQ_LEN = 6


@pytest.fixture(scope="module", params=[0.0, 0.08], ids=["full", "gaps"])
def market(request):
    src = SyntheticSource(SyntheticMarketConfig(seed=5, n_stocks=40, n_days=140))
    d = src.history_days()
    panel = build_market_panel(
        src.daily_quotes(d[0], d[-1]), src.sector_master(d[-1]), src.calendar(d[0], d[-1])
    )
    topix = src.topix(d[0], d[-1])
    feats, _ = compute_features(
        panel, topix, src.calendar(d[0], d[-1] + timedelta(days=120)), default_registry()
    )
    # stocks missing on random days: some of a rebuild's edges must be dropped on those days
    rng = np.random.default_rng(0)
    feats = feats.filter(pl.Series(rng.random(feats.height) >= request.param))
    return feats, build_stock_graph(panel, topix)


@pytest.fixture(scope="module")
def data(market):
    feats, graph = market
    return PanelTensors(feats, default_registry(), graph, [1, 5, 10, 20], SEQ_LEN, 5.0)


def reference_batch(data: PanelTensors, date_indices: list[int]):
    """The former host-side assembly: per date, numpy row lookups and edge re-indexing."""
    xs, ms, ys, eis, eas = [], [], [], [], []
    offset = 0
    for t in date_indices:
        idx = np.flatnonzero(data.present[t])
        xs.append(data.x[t - SEQ_LEN + 1 : t + 1, idx].transpose(0, 1))
        ms.append(data.mask_rows[data.mask_id[t - SEQ_LEN + 1 : t + 1, idx]].transpose(0, 1))
        ys.append(data.y[t, idx])
        e = data.snapshots.edges_for(data.dates[t])
        src = np.array([data.code_index.get(c, -1) for c in e["src"].to_list()])
        dst = np.array([data.code_index.get(c, -1) for c in e["dst"].to_list()])
        attr = e.select([pl.col(c).cast(pl.Float32) for c in EDGE_ATTR_COLUMNS]).to_numpy()
        local = np.full(len(data.codes), -1)
        local[idx] = np.arange(len(idx))
        s = np.where(src >= 0, local[np.maximum(src, 0)], -1)
        d = np.where(dst >= 0, local[np.maximum(dst, 0)], -1)
        keep = (s >= 0) & (d >= 0)
        s, d, a = s[keep], d[keep], attr[keep]
        eis.append(np.stack([np.concatenate([s, d]), np.concatenate([d, s])]) + offset)
        eas.append(np.concatenate([a, a]))
        offset += len(idx)
    return torch.cat(xs), torch.cat(ms), torch.cat(ys), np.concatenate(eis, 1), np.concatenate(eas)


def test_both_edge_paths_are_exercised(data):
    """Full market: every edge kept (no filter); with gaps: edges to absent stocks are filtered."""
    late = list(range(60, len(data.dates)))
    full = data.counts[late].min() == len(data.codes)
    assert data._all_kept[late].all() == full
    assert (data._kept[late] > 0).all()


@pytest.mark.parametrize("dates", [[60], [61, 75, 90], [100, 64, 130, 131]])
def test_device_batch_equals_the_host_reference(data, dates):
    b = data.batch(dates)
    x, m, y, ei, ea = reference_batch(data, dates)
    assert torch.equal(b.x, x) and torch.equal(b.mask.dense(), m)
    assert torch.equal(torch.isnan(b.y), torch.isnan(y)) and torch.equal(b.y.nan_to_num(), y.nan_to_num())
    assert ei.shape[1] > 0
    np.testing.assert_array_equal(b.edge_index.numpy(), ei)
    np.testing.assert_array_equal(b.edge_attr.numpy(), ea)
    assert b.counts == [int(data.present[t].sum()) for t in dates]
    np.testing.assert_array_equal(b.date_index.numpy(), np.repeat(np.arange(len(dates)), b.counts))
    for k, t in enumerate(dates):
        np.testing.assert_array_equal(b.codes[k], data.codes[data.present[t]])


def test_the_mask_marks_exactly_the_finite_normalised_inputs(market, data):
    """An independent reference: 1 where the normalised input is finite, 0 where it is not or the stock is
    absent; and the panel has few distinct mask rows (what makes holding them worthwhile)."""
    feats, _ = market
    z = normalise(feats, default_registry(), NormaliserConfig(clip=5.0))
    want = torch.zeros(len(data.dates), len(data.codes), data.n_features)
    ti = [data.dates.index(d) for d in z["date"].to_list()]
    ci = [data.code_index[c] for c in z["code"].to_list()]
    want[ti, ci] = torch.from_numpy(np.isfinite(z.select(data.names).to_numpy()).astype(np.float32))
    assert torch.equal(data.mask_rows[data.mask_id], want)
    assert len(data.mask_rows) < data.present.sum() / 20


def test_a_panel_with_more_mask_rows_than_a_batch_compacts_them(data):
    """Unused rows appended to the panel's (as a panel with many distinct rows has): the batch keeps only
    those it uses, and its mask is unchanged."""
    dates = [61, 75]
    want = data.batch(dates).mask.dense()
    wide = data.without_labels([])
    wide.mask_rows = torch.cat([data.mask_rows, torch.ones(5000, data.n_features)])
    got = wide.batch(dates).mask
    assert len(got.rows) <= got.index.numel() < 5000
    assert torch.equal(got.dense(), want)


@pytest.mark.parametrize("t", [SEQ_LEN - 1, 70, -1])
def test_one_days_tensors_equal_the_full_historys(market, monkeypatch, t):
    """A day's prediction reads a short window; its inputs and edges are those of the full history. The
    date-level normalising window is cut to 30 days so that the short window really truncates it."""
    feats, graph = market
    monkeypatch.setattr(
        data_module, "NormaliserConfig", functools.partial(NormaliserConfig, date_feature_window=30)
    )
    data = PanelTensors(feats, default_registry(), graph, [1, 5, 10, 20], SEQ_LEN, 5.0)
    day = data.dates[t]
    short, k = PanelTensors.for_day(feats, default_registry(), graph, day, [1, 5, 10, 20], SEQ_LEN, 5.0)
    assert short.dates[k] == day and len(short.dates) == SEQ_LEN
    a, b = short.batch([k]), data.batch([t % len(data.dates)])
    assert torch.equal(a.x, b.x) and torch.equal(a.mask.dense(), b.mask.dense())
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.edge_attr, b.edge_attr)
    np.testing.assert_array_equal(a.codes[0], b.codes[0])
    with pytest.raises(ValueError, match="fewer than"):
        PanelTensors.for_day(feats, default_registry(), graph, data.dates[SEQ_LEN - 2], [1], SEQ_LEN, 5.0)


@pytest.mark.parametrize("t", [70, -1])
def test_a_days_tensors_with_history_equal_the_full_historys(market, t):
    """Skip timing asks for earlier prediction dates too: each of them, labels included, is the full
    history's, and so are the graph rebuilds in force over them."""
    feats, graph = market
    data = PanelTensors(feats, default_registry(), graph, [1, 5, 10, 20], SEQ_LEN, 5.0)
    t = t % len(data.dates)
    short, k = PanelTensors.for_day(
        feats, default_registry(), graph, data.dates[t], [1, 5, 10, 20], SEQ_LEN, 5.0, history=30
    )
    assert len(short.dates) == SEQ_LEN + 30 and k == len(short.dates) - 1
    assert short.usable_dates(1) == list(range(SEQ_LEN - 1, k + 1))
    for j in short.usable_dates(1):
        a, b = short.batch([j]), data.batch([t - (k - j)])
        assert a.dates == b.dates
        assert torch.equal(a.x, b.x) and torch.equal(a.y.nan_to_num(-9), b.y.nan_to_num(-9))
        assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.edge_attr, b.edge_attr)


def test_a_dates_last_day_is_its_batchs_last_step(market):
    feats, graph = market
    data = PanelTensors(feats, default_registry(), graph, [1, 5, 10, 20], SEQ_LEN, 5.0)
    for t in (SEQ_LEN - 1, 60, len(data.dates) - 1):
        x, y, ei, ea = data.last_day(t)
        b = data.batch([t])
        assert torch.equal(x, b.x[:, -1]) and torch.equal(y.nan_to_num(-9), b.y.nan_to_num(-9))
        assert torch.equal(ei, b.edge_index) and torch.equal(ea, b.edge_attr)
    assert data.groups[data.names.index("ret_1d")] == "returns"
