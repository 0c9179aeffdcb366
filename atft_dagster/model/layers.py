"""Building blocks of ATFT-GAT-FAN. Each block states its equation and can reset its parameters."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from atft_dagster.model.mask import PatternMask


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

    def forward(self, x: torch.Tensor, mask: torch.Tensor | PatternMask) -> tuple[torch.Tensor, torch.Tensor]:
        """``mask`` dense (n, L, F) or as a :class:`PatternMask` (the same result, less work)."""
        weight, F_ = self.project.weight, self.n_features
        if isinstance(mask, PatternMask):
            mask_mean = mask.step_mean()
            mask_part = mask.project(weight[:, F_:], self.project.bias)
        else:
            mask_mean = mask.mean(dim=1)
            mask_part = F.linear(mask, weight[:, F_:], self.project.bias)
        w = torch.softmax(self.select(torch.cat([x.mean(dim=1), mask_mean], dim=-1)), dim=-1)  # (n, F)
        # project([F w * x_t; m_t]) as two products on the weight's halves: no (n, L, 2F) concatenation
        h = F.linear((F_ * w)[:, None, :] * x, weight[:, :F_]) + mask_part
        return self.out(h), w


class FrequencyAdaptiveNorm(nn.Module):
    r"""FAN (after Ye et al., NeurIPS 2024): remove the K dominant Fourier components of each input
    window and restore a predicted version of them on the output side.

    .. math::
        X = \mathrm{rFFT}_t(x),\ S = \mathrm{TopK}_{|X|}(X),\ d = \mathrm{irFFT}(S),\
        \tilde x = x - d,\quad r = \mathrm{MLP}([d_{L}; \bar d])

    The encoder sees :math:`\tilde x`; ``r`` (B, hidden) is added to its output representation. The
    transforms of a window this short are two small real matrix products (cosine and sine bases), in float32,
    which is several times faster than an FFT call per series on a CPU and equal to it to rounding.
    """

    def __init__(self, n_features: int, hidden: int, top_k: int):
        super().__init__()
        self.top_k = top_k
        self.restore = nn.Sequential(nn.Linear(2 * n_features, hidden), nn.ELU(), nn.Linear(hidden, hidden))
        self._bases: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.restore:
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def _basis(self, L: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward (2K, L) rows cos(2πkt/L) then sin(2πkt/L), k = 0..L//2; inverse (L, 2K) with the
        irFFT weights (1/L for k = 0 and the Nyquist term, else 2/L)."""
        if (L, device) not in self._bases:
            t = torch.arange(L, dtype=torch.float64)
            k = torch.arange(L // 2 + 1, dtype=torch.float64)
            ang = 2 * math.pi * k[:, None] * t[None, :] / L
            fwd = torch.cat([torch.cos(ang), torch.sin(ang)])
            c = torch.full_like(k, 2.0 / L)
            c[0] = 1.0 / L
            if L % 2 == 0:
                c[-1] = 1.0 / L
            inv = (fwd * torch.cat([c, c])[:, None]).T
            self._bases[(L, device)] = (fwd.float().to(device), inv.contiguous().float().to(device))
        return self._bases[(L, device)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L = x.shape[1]
        fwd, inv = self._basis(L, x.device)
        K = fwd.shape[0] // 2
        with torch.autocast(x.device.type, enabled=False):
            coef = torch.matmul(fwd, x.float())  # (B, 2K, F): real parts, then imaginary parts
            parts = coef.unflatten(1, (2, K))  # (B, 2, K, F)
            keep = _top_k_mask(parts.square().sum(dim=1), min(self.top_k, K))  # by power |X_k|^2
            kept = (parts * keep[:, None]).flatten(1, 2)
            dominant = torch.matmul(inv, kept).to(x.dtype)
        restore = self.restore(torch.cat([dominant[:, -1], dominant.mean(dim=1)], dim=-1))
        return x - dominant, restore


def _top_k_mask(power: torch.Tensor, k: int) -> torch.Tensor:
    """1 where an entry is among the k largest along dim 1, else 0. On a GPU k rounds of argmax (23 ms ->
    1 ms for a 64k-stock batch on an H200, docs/benchmarks.md); on a CPU k rounds of max, which keep every
    entry tied with the k-th (topk along a middle dimension took 42 ms for a 3,700-stock batch, these 25)."""
    if power.is_cuda:
        return top_k_mask_by_argmax(power, k)
    return top_k_mask_by_threshold(power, k)


def top_k_mask_by_threshold(power: torch.Tensor, k: int) -> torch.Tensor:
    """1 where an entry is at least the k-th largest along dim 1: the k largest, and any entry tied with
    the k-th (an all-zero series keeps all its zero components, which changes nothing it removes)."""
    rest = power
    for _ in range(k):
        kth = rest.amax(dim=1, keepdim=True)
        rest = rest.masked_fill(rest >= kth, -torch.inf)
    return (power >= kth).to(power.dtype)


def top_k_mask_by_argmax(power: torch.Tensor, k: int) -> torch.Tensor:
    keep = torch.zeros_like(power)
    rest = power
    for _ in range(k):
        top = rest.argmax(dim=1, keepdim=True)
        keep.scatter_(1, top, 1.0)
        rest = rest.scatter(1, top, -torch.inf)
    return keep


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
    and layer norm, then a GRN; the last step summarises the window, so only its attention row is computed.

    .. math::
        a = \mathrm{LN}(h + \mathrm{GLU}(\mathrm{LSTM}(h))),\
        b_L = \mathrm{LN}(a_L + \mathrm{GLU}(\mathrm{MHA}(a_L;\ a_{1..L}))),\ z = \mathrm{GRN}(b_L)
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

    def _last_step_attention(self, a: torch.Tensor) -> torch.Tensor:
        r"""``self.attn`` (its weights, its dropout) with a causal mask, at the last step only, written out.
        Only the last step reaches the output, and under a causal mask its query sees every step, so the
        other L − 1 queries were work without effect (an epoch on 2 CPU cores took 1.22× as long with them,
        docs/benchmarks.md). With one query per stock the key and value projections fold into it, so no
        (n, L, ·) key or value tensor is built. Per head, with :math:`q = W_q a_L + b_q`:

        .. math::
            s_t = \frac{(W_k^\top q)^\top a_t}{\sqrt d}\ (q^\top b_k \text{ is the same for every } t
            \text{ and cancels in the softmax}),\quad \pi = \mathrm{dropout}(\mathrm{softmax}(s)),\quad
            o = W_v \textstyle\sum_t \pi_t a_t + (\sum_t \pi_t)\, b_v

        Written out also because for windows this short explicit products beat the fused kernels (cuDNN's
        took 16.5 ms for a 64k-stock batch on an H200, the unfolded products 5.9 ms) and the fused kernels
        fail above 65,535 sequences."""
        n, L, H = a.shape
        heads, d = self.attn.num_heads, H // self.attn.num_heads
        w_q, w_k, w_v = self.attn.in_proj_weight.chunk(3)
        b_q, _, b_v = self.attn.in_proj_bias.chunk(3)
        q = F.linear(a[:, -1], w_q, b_q).reshape(n, heads, d)
        q_k = torch.einsum("nhd,hdk->nhk", q, w_k.reshape(heads, d, H))  # (n, heads, H)
        scores = torch.bmm(q_k, a.transpose(1, 2)) / math.sqrt(d)  # (n, heads, L)
        weights = F.dropout(scores.softmax(dim=-1), self.attn.dropout, self.training)
        mixed = torch.bmm(weights, a)  # (n, heads, H): sum_t pi_t a_t
        o = torch.einsum("nhk,hdk->nhd", mixed, w_v.reshape(heads, d, H))
        o = o + weights.sum(dim=-1, keepdim=True) * b_v.reshape(heads, d)
        return self.attn.out_proj(o.reshape(n, H))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(h)
        a = self.lstm_norm(h + F.glu(self.lstm_gate(out), dim=-1))
        att = self._last_step_attention(a)
        b = self.attn_norm(a[:, -1] + F.glu(self.attn_gate(att), dim=-1))
        return self.post(b)


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
