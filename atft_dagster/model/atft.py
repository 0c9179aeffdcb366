"""ATFT-GAT-FAN: adaptive normalisation -> variable selection -> TFT temporal encoder -> GATv2 graph
block fused by a gate -> multi-horizon quantile heads."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATv2Conv
from torch_geometric.nn.dense.linear import Linear

from atft_dagster.model.config import TrainingConfig
from atft_dagster.model.layers import (
    FrequencyAdaptiveNorm,
    QuantileHeads,
    SliceAdaptiveNorm,
    TemporalEncoder,
    VariableSelection,
)
from atft_dagster.model.mask import PatternMask

EDGE_DIM = 5  # corr, same_sector33, same_sector17, same_segment, fallback


@dataclass
class ModelOutput:
    point: torch.Tensor  # (n, H)
    quantiles: torch.Tensor  # (n, H, Q)
    feature_weights: torch.Tensor  # (n, F): variable selection weights
    gate: torch.Tensor  # (hidden,): current graph gate sigma(alpha)


class _EdgeProjectionFunction(torch.autograd.Function):
    """y = x Wᵀ with the weight gradient taken as (xᵀ g)ᵀ: for the few edge attributes (E × 5) the CPU's
    gᵀ x is about six times slower (211 vs 34 ms per call at 50,000 edges, docs/benchmarks.md)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return x @ weight.t()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x, weight = ctx.saved_tensors
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        grad_w = (x.t() @ grad).t() if ctx.needs_input_grad[1] else None
        return grad_x, grad_w


class EdgeProjection(Linear):
    """PyG's bias-free ``Linear`` for GATv2's edge attributes (same parameter, same initialisation), with a
    faster weight gradient on the CPU; on a GPU or under autocast it is PyG's own."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda or torch.is_autocast_enabled(x.device.type) or self.bias is not None:
            return super().forward(x)
        return _EdgeProjectionFunction.apply(x, self.weight)


class GraphBlock(nn.Module):
    r"""Two GATv2Conv layers with edge attributes, fused into the temporal representation through a
    learnable gate and a residual path, so the graph branch always receives gradient. With ``raw_inputs``
    the first layer also sees each stock's last-day inputs :math:`x_L`, so a neighbour's latest return
    reaches a stock in one message instead of through the temporal encoder.

    .. math::
        u = [z;\ x_L] \text{ (or } z\text{)},\quad
        g = \mathrm{GATv2}_2(\mathrm{ELU}(\mathrm{GATv2}_1(u, E, e)), E, e),\quad
        z' = \mathrm{LN}(z + \sigma(\alpha) \odot g),\quad \sigma(\alpha_0) = \text{gate\_init}
    """

    def __init__(self, hidden: int, heads: list[int], dropout: float, gate_init: float, raw_inputs: int = 0):
        super().__init__()
        self.gate_init = gate_init
        self.conv1 = self._conv(hidden + raw_inputs, hidden, heads[0], dropout)
        self.conv2 = self._conv(hidden, hidden, heads[1], dropout)
        self.alpha = nn.Parameter(torch.empty(hidden))
        self.norm = nn.LayerNorm(hidden)
        self.reset_parameters()

    @staticmethod
    def _conv(in_dim: int, hidden: int, heads: int, dropout: float) -> GATv2Conv:
        """Heads averaged (width stays ``hidden``); the self-loops come from :func:`with_self_loops`."""
        conv = GATv2Conv(
            in_dim,
            hidden,
            heads=heads,
            concat=False,
            edge_dim=EDGE_DIM,
            dropout=dropout,
            add_self_loops=False,
        )
        with torch.random.fork_rng(devices=[]):  # the swap draws no random numbers: same init as before
            edge = EdgeProjection(EDGE_DIM, heads * hidden, bias=False, weight_initializer="glorot")
        with torch.no_grad():
            edge.weight.copy_(conv.lin_edge.weight)
        conv.lin_edge = edge
        return conv

    def reset_parameters(self) -> None:
        self.conv1.reset_parameters()
        self.conv2.reset_parameters()
        self.norm.reset_parameters()
        nn.init.constant_(self.alpha, math.log(self.gate_init / (1 - self.gate_init)))

    def gate(self) -> torch.Tensor:
        return torch.sigmoid(self.alpha)

    def forward(
        self,
        z: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor,
        raw: torch.Tensor | None = None,
    ) -> torch.Tensor:
        u = z if raw is None else torch.cat([z, raw.to(z.dtype)], dim=-1)
        edge_index, edge_attr = with_self_loops(edge_index, edge_attr, z.shape[0])
        g = F.elu(self.conv1(u, edge_index, edge_attr))
        g = self.conv2(g, edge_index, edge_attr)
        return self.norm(z + self.gate() * g)


def with_self_loops(
    edge_index: torch.Tensor, edge_attr: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The edges with every node's self-loop appended, whose attributes are the mean of the node's incoming
    edges' (0 where it has none): what GATv2Conv's ``add_self_loops`` with ``fill_value="mean"`` gives.
    Done here once for both layers and without PyG's ``remove_self_loops``, whose boolean indexing waits
    for the GPU at every call; the edges have no self-loops to remove (``PanelTensors`` drops any).

    .. math::
        e_{ii} = \frac{1}{|\{j \to i\}|} \sum_{j \to i} e_{ji}
    """
    dst = edge_index[1]
    total = edge_attr.new_zeros(n, edge_attr.shape[1]).index_add_(0, dst, edge_attr)
    count = edge_attr.new_zeros(n).index_add_(0, dst, edge_attr.new_ones(dst.shape[0]))
    loops = torch.arange(n, device=edge_index.device, dtype=edge_index.dtype)
    return (
        torch.cat([edge_index, torch.stack([loops, loops])], dim=1),
        torch.cat([edge_attr, total / count.clamp_min(1)[:, None]]),
    )


def neighbour_mean(x: torch.Tensor, edge_index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    r"""Weighted mean of each node's in-neighbours' rows, 0 where a node has no weighted neighbour.

    .. math::
        m_i = \frac{\sum_{j \to i} w_{ji}\, x_j}{\sum_{j \to i} w_{ji}}
    """
    src, dst = edge_index
    num = x.new_zeros(x.shape).index_add_(0, dst, weight.to(x.dtype)[:, None] * x[src])
    den = x.new_zeros(x.shape[0]).index_add_(0, dst, weight.to(x.dtype))
    return num / den.clamp_min(torch.finfo(x.dtype).tiny)[:, None]


class InputSkip(nn.Module):
    r"""A linear path from the last day's inputs :math:`x_L` (and, with the graph, their neighbour mean
    :math:`m_L` over edges weighted :math:`\max(\rho, 0)^p`) to every horizon, added to the point
    prediction and, as a shift, to its quantiles (wide & deep). Zero at initialisation.

    .. math::
        \hat y_h \mathrel{+}= w_h^\top [x_L;\ m_L] + b_h
    """

    def __init__(self, in_dim: int, n_horizons: int):
        super().__init__()
        self.lin = nn.Linear(in_dim, n_horizons)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.lin.weight)
        nn.init.zeros_(self.lin.bias)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.lin(u)


class ATFTGATFAN(nn.Module):
    """Input per date: x (n, L, F) normalised features, their validity mask (n, L, F), dense or as a
    :class:`PatternMask`, and the date's graph edges."""

    def __init__(self, n_features: int, cfg: TrainingConfig):
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        self.fan = FrequencyAdaptiveNorm(n_features, h, cfg.fan_top_k) if cfg.use_fan else None
        self.san = SliceAdaptiveNorm(n_features, h, cfg.san_slices) if cfg.use_san else None
        self.vsn = VariableSelection(n_features, h, cfg.dropout)
        self.encoder = TemporalEncoder(h, cfg.attn_heads, cfg.lstm_layers, cfg.dropout)
        self.graph = (
            GraphBlock(
                h, cfg.gat_heads, cfg.dropout, cfg.gate_init, n_features if cfg.graph_raw_inputs else 0
            )
            if cfg.use_graph
            else None
        )
        self.heads = QuantileHeads(h, len(cfg.horizons), len(cfg.quantiles))
        self.with_neighbour_mean = cfg.input_skip and cfg.use_graph and cfg.skip_neighbour_mean
        skip_in = n_features * (2 if self.with_neighbour_mean else 1)
        self.skip = InputSkip(skip_in, len(cfg.horizons)) if cfg.input_skip else None

    def reset_parameters(self) -> None:
        for m in (self.fan, self.san, self.vsn, self.encoder, self.graph, self.heads, self.skip):
            if m is not None:
                m.reset_parameters()

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def blocks(self) -> dict[str, nn.Module]:
        """Named blocks for per-block gradient norms."""
        out = {"input": self.vsn, "temporal": self.encoder, "heads": self.heads}
        if self.graph is not None:
            out["graph"] = self.graph
        if self.fan is not None:
            out["fan"] = self.fan
        if self.san is not None:
            out["san"] = self.san
        if self.skip is not None:
            out["skip"] = self.skip
        return out

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | PatternMask,
        edge_index: torch.Tensor | None = None,
        edge_attr: torch.Tensor | None = None,
    ) -> ModelOutput:
        last = x[:, -1]
        restore = torch.zeros(x.shape[0], self.cfg.hidden, device=x.device, dtype=x.dtype)
        if self.fan is not None:
            x, r = self.fan(x)
            restore = restore + r
        if self.san is not None:
            x, r = self.san(x)
            restore = restore + r
        h, weights = self.vsn(x, mask)
        z = self.encoder(h) + restore
        gate = torch.zeros(self.cfg.hidden, device=x.device)
        if self.graph is not None:
            if edge_index is None or edge_attr is None:
                raise ValueError("the graph block is on but no edges were given")
            z = self.graph(z, edge_index, edge_attr, last if self.cfg.graph_raw_inputs else None)
            gate = self.graph.gate().detach()
        point, quantiles = self.heads(z)
        if self.skip is not None:
            s = self.skip(self.skip_inputs(last, edge_index, edge_attr).to(point.dtype))
            point, quantiles = point + s, quantiles + s[..., None]
        return ModelOutput(point, quantiles, weights, gate)

    def skip_inputs(
        self, last: torch.Tensor, edge_index: torch.Tensor | None, edge_attr: torch.Tensor | None
    ) -> torch.Tensor:
        r"""What the input skip reads: :math:`x_L`, or :math:`[x_L;\ m_L]` with the neighbour mean."""
        if not self.with_neighbour_mean:
            return last
        weight = edge_attr[:, 0].clamp_min(0) ** self.cfg.neighbour_weight_power
        return torch.cat([last, neighbour_mean(last, edge_index, weight)], dim=-1)


class HorizonSelected(nn.Module):
    """Snapshots of one training run, each answering for the horizons whose validation RankIC peaked at its
    epoch: horizon k's point prediction and quantiles come from ``members[source[k]]``; the variable weights
    and the gate from the primary horizon's member."""

    def __init__(self, members: list[ATFTGATFAN], source: list[int]):
        super().__init__()
        if sorted(set(source)) != list(range(len(members))):
            raise ValueError(f"source {source} must use each of the {len(members)} members")
        self.members = nn.ModuleList(members)
        self.source = list(source)
        self.cfg = members[0].cfg
        self.graph = members[0].graph
        self.primary = self.cfg.horizons.index(self.cfg.primary_horizon)

    def forward(self, *inputs: torch.Tensor | None) -> ModelOutput:
        """Same inputs as :class:`ATFTGATFAN`."""
        outs = [m(*inputs) for m in self.members]
        pick = [outs[j] for j in self.source]
        point = torch.stack([o.point[:, k] for k, o in enumerate(pick)], dim=1)
        quantiles = torch.stack([o.quantiles[:, k] for k, o in enumerate(pick)], dim=1)
        first = pick[self.primary]
        return ModelOutput(point, quantiles, first.feature_weights, first.gate)
