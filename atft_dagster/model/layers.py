"""Building blocks of ATFT-GAT-FAN. Each block states its equation and can reset its parameters."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedResidualNetwork(nn.Module):
    r"""TFT gated residual network.

    .. math::
        \eta_1 = \mathrm{ELU}(W_1 x + b_1),\quad \eta_2 = W_2 \eta_1 + b_2,\quad
        \mathrm{GRN}(x) = \mathrm{LayerNorm}(W_s x + \mathrm{GLU}(\eta_2))
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, 2 * out_dim)
        self.skip = nn.Linear(in_dim, out_dim) if in_dim != out_dim else nn.Identity()
        self.norm = nn.LayerNorm(out_dim)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in (self.fc1, self.fc2, self.skip, self.norm):
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eta = self.fc2(self.dropout(F.elu(self.fc1(x))))
        return self.norm(self.skip(x) + F.glu(eta, dim=-1))


class VariableSelection(nn.Module):
    r"""Gated variable selection over F scalar inputs with their validity mask m. The weights are chosen
    once per stock from the window's mean inputs and shared by its L time steps (L times cheaper than
    per-step selection, which dominated the step time).

    .. math::
        w = \mathrm{softmax}(\mathrm{GRN}_{sel}([\bar x; \bar m])) \in \Delta^{F},\quad
        h_t = \mathrm{GRN}_{out}(W_p [F\, w \odot x_t;\ m_t] + b_p)

    ``w`` (per stock) is returned for interpretation.
    """

    def __init__(self, n_features: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.n_features = n_features
        self.select = GatedResidualNetwork(2 * n_features, hidden, n_features, dropout)
        self.project = nn.Linear(2 * n_features, hidden)
        self.out = GatedResidualNetwork(hidden, hidden, hidden, dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.select.reset_parameters()
        self.project.reset_parameters()
        self.out.reset_parameters()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        summary = torch.cat([x.mean(dim=1), mask.mean(dim=1)], dim=-1)
        w = torch.softmax(self.select(summary), dim=-1)  # (n, F)
        h = self.project(torch.cat([self.n_features * w[:, None, :] * x, mask], dim=-1))
        return self.out(h), w


class FrequencyAdaptiveNorm(nn.Module):
    r"""FAN (after Ye et al., NeurIPS 2024): remove the K dominant Fourier components of each input
    window and restore a predicted version of them on the output side.

    .. math::
        X = \mathrm{rFFT}_t(x),\ S = \mathrm{TopK}_{|X|}(X),\ d = \mathrm{irFFT}(S),\
        \tilde x = x - d,\quad r = \mathrm{MLP}([d_{L}; \bar d])

    The encoder sees :math:`\tilde x`; ``r`` (B, hidden) is added to its output representation.
    """

    def __init__(self, n_features: int, hidden: int, top_k: int):
        super().__init__()
        self.top_k = top_k
        self.restore = nn.Sequential(nn.Linear(2 * n_features, hidden), nn.ELU(), nn.Linear(hidden, hidden))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.restore:
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L = x.shape[1]
        spec = torch.fft.rfft(x.float(), dim=1)
        k = min(self.top_k, spec.shape[1])
        idx = spec.abs().topk(k, dim=1).indices
        keep = torch.zeros_like(spec.real).scatter_(1, idx, 1.0)
        dominant = torch.fft.irfft(spec * keep, n=L, dim=1).to(x.dtype)
        restore = self.restore(torch.cat([dominant[:, -1], dominant.mean(dim=1)], dim=-1))
        return x - dominant, restore


class SliceAdaptiveNorm(nn.Module):
    r"""SAN-style slice normalisation: cut the window into S slices, standardise each slice by its own
    mean and std per feature, and predict an output-side correction from the slice statistics.

    .. math::
        \tilde x_{s} = (x_s - \mu_s) / (\sigma_s + \epsilon),\quad r = \mathrm{MLP}([\mu_{1..S}; \sigma_{1..S}])
    """

    def __init__(self, n_features: int, hidden: int, slices: int, eps: float = 1e-4):
        super().__init__()
        self.slices, self.eps = slices, eps
        self.restore = nn.Sequential(
            nn.Linear(2 * slices * n_features, hidden), nn.ELU(), nn.Linear(hidden, hidden)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.restore:
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, L, Fn = x.shape
        S = min(self.slices, L)
        pad = (-L) % S
        xp = F.pad(x, (0, 0, pad, 0), mode="replicate") if pad else x
        xs = xp.reshape(B, S, -1, Fn)
        mu, sd = xs.mean(dim=2, keepdim=True), xs.std(dim=2, keepdim=True, unbiased=False)
        normed = ((xs - mu) / (sd + self.eps)).reshape(B, -1, Fn)[:, pad:]
        stats = torch.cat([mu.reshape(B, -1), sd.reshape(B, -1)], dim=-1)
        if S < self.slices:  # short windows: pad the statistics to the configured size
            stats = F.pad(stats, (0, 2 * (self.slices - S) * Fn))
        return normed, self.restore(stats)


class TemporalEncoder(nn.Module):
    r"""TFT-style temporal block: LSTM, then causal multi-head self-attention, each with a gated residual
    and layer norm, then a position-wise GRN; the last step summarises the window.

    .. math::
        a = \mathrm{LN}(h + \mathrm{GLU}(\mathrm{LSTM}(h))),\
        b = \mathrm{LN}(a + \mathrm{GLU}(\mathrm{MHA}_{causal}(a))),\ z = \mathrm{GRN}(b)_{L}
    """

    def __init__(self, hidden: int, heads: int, layers: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(
            hidden, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )
        self.lstm_gate = nn.Linear(hidden, 2 * hidden)
        self.lstm_norm = nn.LayerNorm(hidden)
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.attn_gate = nn.Linear(hidden, 2 * hidden)
        self.attn_norm = nn.LayerNorm(hidden)
        self.post = GatedResidualNetwork(hidden, hidden, hidden, dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in (self.lstm, self.lstm_gate, self.lstm_norm, self.attn_gate, self.attn_norm, self.post):
            m.reset_parameters()
        self.attn._reset_parameters()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        L = h.shape[1]
        out, _ = self.lstm(h)
        a = self.lstm_norm(h + F.glu(self.lstm_gate(out), dim=-1))
        causal = torch.triu(torch.ones(L, L, dtype=torch.bool, device=h.device), diagonal=1)
        att, _ = self.attn(a, a, a, attn_mask=causal, need_weights=False)
        b = self.attn_norm(a + F.glu(self.attn_gate(att), dim=-1))
        return self.post(b[:, -1])


class QuantileHeads(nn.Module):
    r"""Per horizon: a point prediction and monotone quantiles.

    .. math::
        \hat y = w_p^\top z,\quad q_1 = w_1^\top z,\ q_{j+1} = q_j + \mathrm{softplus}(w_{j+1}^\top z)
    """

    def __init__(self, hidden: int, n_horizons: int, n_quantiles: int):
        super().__init__()
        self.n_horizons, self.n_quantiles = n_horizons, n_quantiles
        self.point = nn.Linear(hidden, n_horizons)
        self.quant = nn.Linear(hidden, n_horizons * n_quantiles)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.point.reset_parameters()
        self.quant.reset_parameters()

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.quant(z).reshape(-1, self.n_horizons, self.n_quantiles)
        q = torch.cat([raw[..., :1], F.softplus(raw[..., 1:])], dim=-1).cumsum(dim=-1)
        return self.point(z), q
