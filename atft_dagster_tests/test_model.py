"""ATFT-GAT-FAN: config reaches the model, gradients reach every block, the graph is really used."""

from __future__ import annotations

from datetime import timedelta

import pytest
import torch
from torch.overrides import TorchFunctionMode

from atft_dagster.features import compute_features, default_registry
from atft_dagster.graph import build_stock_graph
from atft_dagster.market import SyntheticMarketConfig
from atft_dagster.model import ATFTGATFAN, MultiHorizonLoss, TrainingConfig
from atft_dagster.panel import build_market_panel
from atft_dagster.sources import SyntheticSource
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.train import _forward, _grad_norms

TINY = dict(hidden=16, seq_len=8, attn_heads=2, dropout=0.0)


@pytest.fixture(scope="module")
def tensors():
    src = SyntheticSource(SyntheticMarketConfig(seed=4, n_stocks=50, n_days=160))
    d = src.history_days()
    panel = build_market_panel(
        src.daily_quotes(d[0], d[-1]), src.sector_master(d[-1]), src.calendar(d[0], d[-1])
    )
    topix = src.topix(d[0], d[-1])
    reg = default_registry()
    feats, _ = compute_features(panel, topix, src.calendar(d[0], d[-1] + timedelta(days=120)), reg)
    cfg = TrainingConfig(**TINY)
    return PanelTensors(
        feats, reg, build_stock_graph(panel, topix), cfg.horizons, cfg.seq_len, cfg.input_clip
    ), reg


def _model(data, **kw) -> ATFTGATFAN:
    torch.manual_seed(0)
    return ATFTGATFAN(data.n_features, TrainingConfig(**{**TINY, **kw}))


def test_config_values_change_the_built_model(tensors):
    data, _ = tensors
    small, big = _model(data, hidden=16), _model(data, hidden=32)
    assert big.n_parameters() > small.n_parameters()
    assert _model(data, use_graph=False).graph is None and _model(data).graph is not None
    assert _model(data, use_fan=False).fan is None and _model(data, use_san=True).san is not None
    assert _model(data, quantiles=[0.2, 0.5, 0.8]).heads.n_quantiles == 3
    assert _model(data, horizons=[1, 5], horizon_weights=[1, 1], primary_horizon=1).heads.n_horizons == 2
    assert _model(data, gat_heads=[2, 1]).graph.conv1.heads == 2
    with pytest.raises(ValueError):
        TrainingConfig(hidden=30, attn_heads=4)
    with pytest.raises(ValueError):
        TrainingConfig(primary_horizon=3)


def test_forward_shapes_and_monotone_quantiles(tensors):
    data, _ = tensors
    b = data.batch([40, 41])
    out = _model(data)(b.x, b.mask, b.edge_index, b.edge_attr)
    n = b.x.shape[0]
    assert out.point.shape == (n, 4) and out.quantiles.shape == (n, 4, 5)
    assert (out.quantiles.diff(dim=-1) >= 0).all()
    assert out.feature_weights.shape == (n, data.n_features)
    torch.testing.assert_close(out.feature_weights.sum(-1), torch.ones(n))
    assert torch.allclose(out.gate, torch.full_like(out.gate, 0.5))


def test_a_batch_holds_whole_dates(tensors):
    data, _ = tensors
    ix = [50, 51, 52]
    b = data.batch(ix)
    for k, t in enumerate(ix):
        assert int((b.date_index == k).sum()) == int(data.present[t].sum())
    n0 = int(data.present[50].sum())
    assert b.edge_index.shape[1] > 0
    # edges never cross dates
    assert ((b.edge_index < n0).all(dim=0) | (b.edge_index >= n0).all(dim=0)).all()


def test_loss_weights_change_the_loss(tensors):
    data, _ = tensors
    b = data.batch([60, 61, 62])
    out = _model(data)(b.x, b.mask, b.edge_index, b.edge_attr)
    base, terms = MultiHorizonLoss(TrainingConfig(**TINY))(out.point, out.quantiles, b.y, b.date_index)
    assert set(terms) == {"huber", "pinball", "rank_ic", "ic", "sharpe"} and all(
        v != 0 for v in terms.values()
    )
    for field in ("w_huber", "w_pinball", "w_rank_ic", "w_ic", "w_sharpe"):
        other, _ = MultiHorizonLoss(TrainingConfig(**TINY, **{field: 3.0}))(
            out.point, out.quantiles, b.y, b.date_index
        )
        assert not torch.isclose(other, base), field
    reweighted, _ = MultiHorizonLoss(TrainingConfig(**TINY, horizon_weights=[0, 0, 0, 1]))(
        out.point, out.quantiles, b.y, b.date_index
    )
    assert not torch.isclose(reweighted, base)


def _block_grads(model, data, ix):
    b = data.batch(ix)
    out = model(
        b.x,
        b.mask,
        b.edge_index if model.graph is not None else None,
        b.edge_attr if model.graph is not None else None,
    )
    loss, _ = MultiHorizonLoss(model.cfg)(out.point, out.quantiles, b.y, b.date_index)
    model.zero_grad()
    loss.backward()
    return {
        name: sum(float(p.grad.norm() ** 2) for p in blk.parameters() if p.grad is not None) ** 0.5
        for name, blk in model.blocks().items()
    }


@pytest.mark.parametrize(
    "norm", [{"use_fan": True}, {"use_fan": False, "use_san": True}, {"use_fan": True, "use_san": True}]
)
def test_adaptive_normalisation_does_not_shrink_gradients(tensors, norm):
    data, _ = tensors
    g = _block_grads(_model(data, **norm), data, [70, 71, 72])
    ratio = g["input"] / g["heads"]
    assert 1e-3 < ratio < 1e3, g  # the replaced system lost a factor 1e10 here


def test_graph_branch_receives_gradient(tensors):
    data, _ = tensors
    g = _block_grads(_model(data), data, [80, 81])
    assert g["graph"] > 1e-6 * g["heads"], g  # the replaced system: < 1e-10, and no edges at all


def test_predictions_use_the_neighbours(tensors):
    data, _ = tensors
    b = data.batch([90])
    src, dst = b.edge_index
    i, j = int(src[0]), int(dst[0])
    x2 = b.x.clone()
    x2[j] += 1.0  # change a neighbour only
    for use_graph, changes in ((True, True), (False, False)):
        m = _model(data, use_graph=use_graph).eval()
        ei = b.edge_index if use_graph else None
        ea = b.edge_attr if use_graph else None
        p1 = m(b.x, b.mask, ei, ea).point[i]
        p2 = m(x2, b.mask, ei, ea).point[i]
        assert (not torch.allclose(p1, p2)) == changes


def test_raw_graph_inputs_reach_a_stock_from_its_neighbours_last_day(tensors):
    data, _ = tensors
    b = data.batch([90])
    m = _model(data, graph_raw_inputs=True).eval()
    assert m.graph.conv1.in_channels == 16 + data.n_features
    assert _model(data, graph_raw_inputs=False).graph.conv1.in_channels == 16
    src, dst = b.edge_index
    i, j = int(dst[0]), int(src[0])
    x = b.x.clone().requires_grad_(True)
    m(x, b.mask, b.edge_index, b.edge_attr).point[i].sum().backward()
    # the neighbour's last day reaches stock i; with the encoder frozen out (no raw path) only through z_j
    assert x.grad[j, -1].abs().sum() > 0
    raw_only = torch.autograd.grad(
        m.graph(torch.zeros(b.x.shape[0], 16), b.edge_index, b.edge_attr, x[:, -1])[i, 0], x
    )[0]
    assert raw_only[j, -1].abs().sum() > 0 and raw_only[:, :-1].abs().sum() == 0


def test_graph_block_refuses_missing_edges(tensors):
    data, _ = tensors
    b = data.batch([90])
    with pytest.raises(ValueError, match="no edges"):
        _model(data)(b.x, b.mask)


def test_reset_parameters_restores_the_gate(tensors):
    data, _ = tensors
    m = _model(data)
    with torch.no_grad():
        m.graph.alpha.fill_(3.0)
    m.reset_parameters()
    assert torch.allclose(m.graph.gate(), torch.full((16,), 0.5))


def test_neighbour_mean_is_the_weighted_mean_of_in_neighbours():
    from atft_dagster.model.atft import neighbour_mean

    x = torch.tensor([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0], [7.0, 70.0]])
    edge_index = torch.tensor([[1, 2, 0, 3], [0, 0, 1, 1]])  # 1->0, 2->0, 0->1, 3->1; node 2, 3: none
    weight = torch.tensor([1.0, 3.0, 2.0, 0.0])
    m = neighbour_mean(x, edge_index, weight)
    assert torch.allclose(m[0], (1 * x[1] + 3 * x[2]) / 4)
    assert torch.allclose(m[1], x[0])  # a zero-weight edge adds nothing
    assert torch.equal(m[2:], torch.zeros(2, 2))  # no weighted neighbour: 0, not NaN


def test_input_skip_adds_a_linear_path_that_reads_the_neighbours_last_day(tensors):
    data, _ = tensors
    b = data.batch([90])
    off = _model(data, input_skip=False, skip_timing_half_life=0.0)
    assert off.skip is None
    on = _model(data, input_skip=True).eval()
    assert on.skip.lin.in_features == 2 * data.n_features  # [x_L; m_L]
    assert _model(data, input_skip=True, skip_neighbour_mean=False).skip.lin.in_features == data.n_features
    assert _model(data, input_skip=True, use_graph=False).skip.lin.in_features == data.n_features
    # zero at initialisation: the same outputs as without it (same seed, the skip draws no random numbers)
    base = _model(data, input_skip=False, skip_timing_half_life=0.0).eval()(
        b.x, b.mask, b.edge_index, b.edge_attr
    )
    out = on(b.x, b.mask, b.edge_index, b.edge_attr)
    assert torch.allclose(out.point, base.point) and torch.allclose(out.quantiles, base.quantiles)
    # set, it shifts the point prediction and every quantile by w^T [x_L; m_L] + b
    with torch.no_grad():
        on.skip.lin.weight.normal_()
        on.skip.lin.bias.fill_(0.5)
    out2 = on(b.x, b.mask, b.edge_index, b.edge_attr)
    shift = out2.point - out.point
    assert torch.allclose(
        out2.quantiles - out.quantiles, shift[..., None].expand_as(out.quantiles), atol=1e-5
    )
    assert shift.abs().min() > 0
    # through the neighbour mean, a neighbour's last day reaches stock i by the skip alone
    src, dst = b.edge_index
    k = int(torch.nonzero(b.edge_attr[:, 0] > 0)[0])
    i, j = int(dst[k]), int(src[k])
    x = b.x.clone().requires_grad_(True)
    last = x[:, -1]
    weight = b.edge_attr[:, 0].clamp_min(0) ** on.cfg.neighbour_weight_power
    from atft_dagster.model.atft import neighbour_mean

    u = torch.cat([last, neighbour_mean(last, b.edge_index, weight)], dim=-1)
    (grad,) = torch.autograd.grad(on.skip(u)[i, 0], x)
    assert grad[j, -1].abs().sum() > 0 and grad[:, :-1].abs().sum() == 0
    # the power is used: another power, another neighbour mean
    on_p0 = _model(data, input_skip=True, neighbour_weight_power=0.0).eval()
    on_p0.load_state_dict(on.state_dict())
    assert not torch.allclose(on_p0(b.x, b.mask, b.edge_index, b.edge_attr).point, out2.point)


class _DeviceWaits(TorchFunctionMode):
    """Records the calls that make the host wait for a GPU: reading a value back, or an op whose output size
    depends on the data (boolean indexing included)."""

    WAITS = {"item", "tolist", "__bool__", "__int__", "__float__", "numpy", "cpu", "nonzero", "argwhere"}
    WAITS |= {"masked_select", "unique", "unique_consecutive"}

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        index = args[1] if name in ("__getitem__", "__setitem__") and len(args) > 1 else None
        parts = index if isinstance(index, tuple) else (index,)
        if name in self.WAITS or any(torch.is_tensor(p) and p.dtype == torch.bool for p in parts):
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def test_a_training_step_never_waits_for_the_device(tensors):
    """Batch, forward, loss, backward, gradient norms and clipping issue no call that would sync a GPU (the
    optimiser is fused there). PyG's own self-loops did, at every layer; the spy sees that."""
    data, _ = tensors
    cfg = TrainingConfig(**TINY)
    torch.manual_seed(0)
    model, loss_fn = ATFTGATFAN(data.n_features, cfg), MultiHorizonLoss(cfg)
    dates = data.usable_dates(cfg.min_stocks_per_date)[: cfg.batch_dates]
    with _DeviceWaits() as spy:
        batch = data.batch(dates)
        out = _forward(model, batch, torch.device("cpu"), "fp32")
        loss, _ = loss_fn(out.point, out.quantiles, batch.y, batch.date_index, batch.counts)
        loss.backward()
        norms = _grad_norms(model)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    assert spy.calls == []
    assert batch.edge_index.shape[1] > 0 and all(bool(torch.isfinite(v)) for v in norms.values())
    conv = model.graph.conv2
    conv.add_self_loops = True
    with _DeviceWaits() as spy:
        conv(out.point.new_zeros(batch.x.shape[0], cfg.hidden), batch.edge_index, batch.edge_attr)
    assert "__getitem__" in spy.calls  # remove_self_loops' boolean mask
