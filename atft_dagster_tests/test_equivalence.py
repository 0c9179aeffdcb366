"""The batched, sync-free computations equal their straightforward per-date definitions."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from atft_dagster.evaluation.metrics import daily_ic
from atft_dagster.model import MultiHorizonLoss, TrainingConfig
from atft_dagster.model.atft import EDGE_DIM, GraphBlock
from atft_dagster.model.layers import (
    FrequencyAdaptiveNorm,
    TemporalEncoder,
    top_k_mask_by_argmax,
    top_k_mask_by_threshold,
)
from atft_dagster.model.loss import soft_rank
from atft_dagster.training.ic import daily_ic_device

EPS = 1e-8


def reference_loss(cfg: TrainingConfig, point, quantiles, y, date_index):
    """The loss written date by date, with boolean row selection (the former implementation)."""

    def pearson(a, b):
        a, b = a - a.mean(), b - b.mean()
        return (a * b).sum() / (a.norm() * b.norm() + EPS)

    levels = torch.tensor(cfg.quantiles).to(point.dtype)  # float32 levels, as the loss stores them
    weights = cfg.normalised_horizon_weights()
    terms = dict.fromkeys(("huber", "pinball", "rank_ic", "ic", "sharpe"), 0.0)
    for h, wh in enumerate(weights):
        per: dict[str, list] = {t: [] for t in ("huber", "pinball", "rank_ic", "ic")}
        ls = []
        for d in range(int(date_index.max()) + 1):
            rows = (date_index == d) & torch.isfinite(y[:, h])
            if rows.sum() < 3:
                continue
            p, yr = point[rows, h], y[rows, h]
            yz = ((yr - yr.mean()) / (yr.std(unbiased=False) + EPS)).clamp(-cfg.label_clip, cfg.label_clip)
            per["huber"].append(F.huber_loss(p, yz, delta=cfg.huber_delta))
            err = yz[:, None] - quantiles[rows, h]
            per["pinball"].append(torch.maximum(levels * err, (levels - 1) * err).mean())
            soft = torch.sigmoid((p[:, None] - p[None, :]) / cfg.soft_rank_temperature).sum(1)
            per["rank_ic"].append(-pearson(soft, yr.argsort().argsort().to(p.dtype)))
            per["ic"].append(-pearson(p, yr))
            w = p - p.mean()
            ls.append(((w / (w.abs().sum() + EPS)) * yr).sum())
        for t, v in per.items():
            if v:
                terms[t] = terms[t] + wh * torch.stack(v).mean()
        if len(ls) >= 2:
            r = torch.stack(ls)
            terms["sharpe"] = terms["sharpe"] + wh * (-r.mean() / (r.std() + EPS))
    w = {"huber": cfg.w_huber, "pinball": cfg.w_pinball, "rank_ic": cfg.w_rank_ic, "ic": cfg.w_ic}
    return sum(w.get(t, cfg.w_sharpe) * v for t, v in terms.items())


@pytest.mark.parametrize("counts", [[50, 37, 61], [2, 40], [30], [5, 5, 5, 5], [1, 1]])
def test_batched_loss_equals_the_per_date_loss_and_its_gradient(counts):
    torch.manual_seed(sum(counts))
    n = sum(counts)
    point = torch.randn(n, 4, dtype=torch.float64, requires_grad=True)
    quantiles = torch.randn(n, 4, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randn(n, 4, dtype=torch.float64)
    y[torch.rand(n, 4) < 0.2] = float("nan")
    date_index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    cfg = TrainingConfig()
    ref = reference_loss(cfg, point, quantiles, y, date_index)
    got, terms = MultiHorizonLoss(cfg)(point, quantiles, y, date_index, counts)
    assert set(terms) == {"huber", "pinball", "rank_ic", "ic", "sharpe"}
    if not torch.is_tensor(ref):  # no date has 3 labels: nothing to learn from
        assert float(got.detach()) == 0.0
        return
    assert abs(float((got - ref).detach())) < 1e-12
    grads = torch.autograd.grad(got, [point, quantiles]), torch.autograd.grad(ref, [point, quantiles])
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
        assert torch.isfinite(a).all()
    again, _ = MultiHorizonLoss(cfg)(point, quantiles, y, date_index)  # counts found from date_index
    assert torch.equal(again, got)


def test_soft_rank_and_its_written_out_gradient_equal_autograd_of_the_definition():
    torch.manual_seed(3)
    x = torch.randn(3, 2, 40, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(3, 2, 40) > 0.2).double()
    g = torch.randn(3, 2, 40, dtype=torch.float64)
    direct = (torch.sigmoid((x[..., :, None] - x[..., None, :]) / 0.1) * w[..., None, :]).sum(-1)
    got = soft_rank(x, w, 0.1)
    assert torch.allclose(got, direct, rtol=1e-12, atol=1e-12)
    (want,), (grad,) = torch.autograd.grad(direct, x, g), torch.autograd.grad(got, x, g)
    assert torch.allclose(grad, want, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda v: soft_rank(v, w, 0.3), (x.detach().requires_grad_(),))


@pytest.mark.parametrize("rank", [False, True])
def test_device_daily_ic_equals_the_report_metric(rank):
    rng = np.random.default_rng(3)
    counts = [30, 5, 44, 12, 25]
    p = [np.round(rng.normal(size=c), 1) for c in counts]  # rounded: ties in both
    y = [np.round(rng.normal(size=c), 1) for c in counts]
    y[0][:4] = np.nan
    p[2][3] = np.nan
    p[4][:] = 1.0  # constant predictions: undefined, NaN in both
    want = daily_ic(p, y, 10, rank=rank)
    got = daily_ic_device(
        torch.tensor(np.concatenate(p)), torch.tensor(np.concatenate(y)), counts, 10, rank
    ).numpy()
    assert np.isnan(want[1]) and np.isnan(want[4])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("L", [20, 9, 2])
def test_fan_matrix_transform_equals_the_fft(L):
    torch.manual_seed(L)
    x = torch.randn(64, L, 7, dtype=torch.float32) + torch.linspace(0, 3, L)[None, :, None]
    fan = FrequencyAdaptiveNorm(7, 8, top_k=2)
    spec = torch.fft.rfft(x.double(), dim=1)
    keep = torch.zeros_like(spec.real).scatter_(1, spec.abs().topk(2, dim=1).indices, 1.0)
    dominant = torch.fft.irfft(spec * keep, n=L, dim=1)
    filtered, restore = fan(x)
    assert torch.allclose(filtered.double(), x.double() - dominant, atol=2e-5)
    want = fan.restore(torch.cat([dominant[:, -1], dominant.mean(dim=1)], dim=-1).float())
    assert torch.allclose(restore, want, atol=2e-5)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_top_k_by_argmax_equals_topk(k):
    power = torch.rand(50, 11, 9)
    want = torch.zeros_like(power).scatter_(1, power.topk(k, dim=1).indices, 1.0)
    assert torch.equal(top_k_mask_by_argmax(power, k), want)
    assert torch.equal(top_k_mask_by_threshold(power, k), want)  # no ties in uniform draws


def test_top_k_by_threshold_keeps_every_entry_tied_with_the_kth():
    power = torch.tensor([[5.0, 3.0, 3.0, 1.0], [0.0, 0.0, 0.0, 0.0], [2.0, 2.0, 9.0, 1.0]])[..., None]
    want = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])[..., None]
    assert torch.equal(top_k_mask_by_threshold(power, 2), want)
    assert torch.equal(top_k_mask_by_threshold(power, 1)[:, :, 0].sum(1), torch.tensor([1.0, 4.0, 1.0]))


def test_last_step_attention_equals_torchs_causal_multihead_attention_at_the_last_step():
    torch.manual_seed(0)
    enc = TemporalEncoder(hidden=16, heads=4, layers=1, dropout=0.0).eval()
    a = torch.randn(30, 12, 16)
    causal = torch.triu(torch.ones(12, 12, dtype=torch.bool), diagonal=1)
    want, _ = enc.attn(a, a, a, attn_mask=causal, need_weights=False)
    assert torch.allclose(enc._last_step_attention(a), want[:, -1], atol=1e-6)


def test_folded_attention_equals_the_unfolded_products_with_dropout_and_gradients():
    """Keys and values folded into the one query: the same output and gradients as projecting every step,
    with attention dropout on (same random draws)."""
    torch.manual_seed(2)
    enc = TemporalEncoder(hidden=16, heads=4, layers=1, dropout=0.3).train()
    a = torch.randn(40, 9, 16, requires_grad=True)
    g = torch.randn(40, 16)

    def unfolded(a):
        n, L, H = a.shape
        q, k, v = F.linear(a, enc.attn.in_proj_weight, enc.attn.in_proj_bias).chunk(3, dim=-1)
        q = q[:, -1].reshape(n, 4, 1, 4)
        k, v = (t.reshape(n, L, 4, 4).transpose(1, 2) for t in (k, v))
        weights = F.dropout((q @ k.transpose(-1, -2) / 2.0).softmax(dim=-1), 0.3, True)
        return enc.attn.out_proj((weights @ v).reshape(n, H))

    runs = []
    for fn in (enc._last_step_attention, unfolded):
        torch.manual_seed(7)
        enc.zero_grad()
        a.grad = None
        out = fn(a)
        out.backward(g)
        runs.append((out.detach(), a.grad.clone(), [p.grad.clone() for p in enc.attn.parameters()]))
    (ours, ours_a, ours_p), (want, want_a, want_p) = runs
    assert not torch.allclose(ours, enc.eval()._last_step_attention(a).detach(), atol=1e-3)  # dropout acted
    torch.testing.assert_close(ours, want)
    torch.testing.assert_close(ours_a, want_a)
    for x, y in zip(ours_p, want_p, strict=True):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-5)


def test_the_encoder_equals_its_full_sequence_definition_with_gradients():
    """Attending from the last step only gives the output and the gradients of computing every step."""
    torch.manual_seed(1)
    enc = TemporalEncoder(hidden=16, heads=4, layers=1, dropout=0.0)
    h = torch.randn(25, 10, 16)
    causal = torch.triu(torch.ones(10, 10, dtype=torch.bool), diagonal=1)

    def full(h):
        out, _ = enc.lstm(h)
        a = enc.lstm_norm(h + F.glu(enc.lstm_gate(out), dim=-1))
        att, _ = enc.attn(a, a, a, attn_mask=causal, need_weights=False)
        b = enc.attn_norm(a + F.glu(enc.attn_gate(att), dim=-1))
        return enc.post(b)[:, -1]

    g = torch.randn(25, 16)
    grads = []
    for fn in (enc, full):
        enc.zero_grad()
        out = fn(h)
        out.backward(g)
        grads.append((out.detach(), [p.grad.clone() for p in enc.parameters()]))
    (ours, ours_g), (want, want_g) = grads
    assert torch.allclose(ours, want, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ours_g, want_g, strict=True))


def test_edge_projection_equals_pygs_linear_with_its_gradients():
    from torch_geometric.nn.dense.linear import Linear

    from atft_dagster.model.atft import EdgeProjection

    torch.manual_seed(0)
    fast, plain = EdgeProjection(5, 32, bias=False, weight_initializer="glorot"), Linear(5, 32, bias=False)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(400, 5, requires_grad=True)
    g = torch.randn(400, 32)
    for m in (fast, plain):
        x.grad = None
        m(x).backward(g)
        m.x_grad = x.grad.clone()
    assert torch.allclose(fast(x), plain(x), atol=1e-6)
    assert torch.allclose(fast.weight.grad, plain.weight.grad, atol=1e-5)
    assert torch.allclose(fast.x_grad, plain.x_grad, atol=1e-6)


def test_the_edge_projection_swap_keeps_pygs_initialisation():
    from torch_geometric.nn import GATv2Conv

    from atft_dagster.model.atft import EDGE_DIM, GraphBlock

    torch.manual_seed(5)
    ours = GraphBlock._conv(12, 8, 2, 0.0)
    after_ours = torch.rand(1)
    torch.manual_seed(5)
    pyg = GATv2Conv(12, 8, heads=2, concat=False, edge_dim=EDGE_DIM, add_self_loops=True, fill_value="mean")
    assert torch.equal(torch.rand(1), after_ours)  # no extra random draws
    theirs = pyg.state_dict()
    assert set(ours.state_dict()) == set(theirs)
    assert all(torch.equal(v, theirs[k]) for k, v in ours.state_dict().items())


def test_the_soft_ranks_take_an_empty_batch():
    assert soft_rank(torch.zeros(0, 5), torch.ones(0, 5), 0.1).shape == (0, 5)


def test_the_graph_blocks_own_self_loops_equal_pygs_with_gradients():
    """GraphBlock appends the self-loops once (mean incoming attributes); PyG's add_self_loops per layer gives
    the same output and gradients, including for nodes without incoming edges (their loops get zeros)."""
    torch.manual_seed(5)
    block = GraphBlock(16, [4, 2], 0.0, 0.1, raw_inputs=3)
    n = 30
    z, raw = torch.randn(n, 16, requires_grad=True), torch.randn(n, 3)
    src, dst = torch.randint(0, n, (80,)), torch.randint(0, n - 5, (80,))  # the last 5 nodes: no incoming
    ei = torch.stack([src[src != dst], dst[src != dst]])
    ea = torch.rand(ei.shape[1], EDGE_DIM)
    got = block(z, ei, ea, raw)
    conv1, conv2 = copy.deepcopy(block.conv1), copy.deepcopy(block.conv2)
    for conv in (conv1, conv2):
        conv.add_self_loops, conv.fill_value = True, "mean"
    want = block.norm(z + block.gate() * conv2(F.elu(conv1(torch.cat([z, raw], -1), ei, ea)), ei, ea))
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    mine = torch.autograd.grad(got.square().sum(), [z, block.conv1.att, block.conv2.lin_edge.weight])
    pygs = torch.autograd.grad(want.square().sum(), [z, conv1.att, conv2.lin_edge.weight])
    for a, b in zip(mine, pygs, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
