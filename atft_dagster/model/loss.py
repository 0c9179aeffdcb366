"""The training loss, computed per date (a cross-section) and averaged; the Sharpe term spans the batch's
dates. Every term's value is returned for logging.

All dates and horizons of a batch are handled at once: rows are scattered into a (dates, horizons, max
stocks) layout with a validity mask, so no step waits for the device (no boolean indexing, no ``.item()``)
and a step launches one kernel per operation, not one per horizon (on a GPU at 4 dates per batch the step
is bound by launches, docs/benchmarks.md). A (date, horizon) counts when it has at least ``MIN_ROWS``
finite labels; its terms are the same as those of its rows taken alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from atft_dagster.model.config import TrainingConfig

EPS = 1e-8
MIN_ROWS = 3
TERMS = ("huber", "pinball", "rank_ic", "ic", "sharpe")


def pad_by_date(values: torch.Tensor, counts: list[int], fill: float) -> torch.Tensor:
    """Rows grouped by date (``counts`` rows each, in order) -> (dates, max count, ...), padded with ``fill``."""
    n_max = max(counts)
    slot = torch.cat([torch.arange(c, device=values.device) + k * n_max for k, c in enumerate(counts)])
    out = values.new_full((len(counts) * n_max, *values.shape[1:]), fill)
    return out.index_copy(0, slot, values).view(len(counts), n_max, *values.shape[1:])


def masked_mean(x: torch.Tensor, w: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Mean of x over ``dim`` where w is 1 (0 where w is all 0)."""
    return (x * w).sum(dim) / w.sum(dim).clamp(min=1)


def masked_pearson(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per row of (..., n) inputs: Pearson correlation over the entries where w is 1."""
    a = (a - masked_mean(a, w)[..., None]) * w
    b = (b - masked_mean(b, w)[..., None]) * w
    den = torch.linalg.vector_norm(a, dim=-1) * torch.linalg.vector_norm(b, dim=-1)
    return (a * b).sum(-1) / (den + EPS)


def soft_rank(x: torch.Tensor, w: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""Differentiable ranks among the valid entries of each row of (..., n) inputs (O(n²)):
    :math:`r_i = \tfrac12 + \sum_{j \ne i,\ w_j = 1} \sigma((x_i - x_j)/\tau)` (the j = i term is σ(0) = 1/2).
    ``w`` is a 0/1 mask and gets no gradient."""
    return _SoftRank.apply(x, w, temperature)


class _SoftRank(torch.autograd.Function):
    r"""``soft_rank`` with its gradient written out. With :math:`s_{ij} = \sigma((x_i - x_j)/\tau)`,
    :math:`r = s\,w` and :math:`k_{ij} = s_{ij}(1 - s_{ij})`, which is symmetric (:math:`s_{ji} = 1 - s_{ij}`):

    .. math::
        \frac{\partial L}{\partial x_m} = \frac{1}{\tau}\big(g_m (k\,w)_m - w_m (k\,g)_m\big),\quad g = \partial L / \partial r

    Three (n, n) passes forward and two backward, where autograd took about a dozen; the soft ranks are the
    loss's only O(n²) part."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, temperature: float) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            w = w.to(x.dtype)
            z = x / temperature
            s = torch.sigmoid(z[..., :, None] - z[..., None, :])
            ctx.save_for_backward(s, w)
            ctx.temperature = temperature
            return (s @ w[..., None]).squeeze(-1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        s, w = ctx.saved_tensors
        with torch.autocast(s.device.type, enabled=False):
            k = torch.addcmul(s, s, s, value=-1)  # s (1 - s) in one pass
            kv = k @ torch.stack([w, grad.to(s.dtype)], dim=-1)  # (..., n, 2): k w and k g
            return (grad * kv[..., 0] - w * kv[..., 1]) / ctx.temperature, None, None


def hard_rank(y: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """0-based ranks of the valid entries of each row (ties in row order); invalid entries rank last."""
    key = torch.where(valid, y, torch.full_like(y, torch.inf))
    return key.argsort(dim=-1, stable=True).argsort(dim=-1).to(y.dtype)


def pinball(q: torch.Tensor, y: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """q (..., Q), y (...): per entry, the mean over levels of max(τ (y - q), (τ - 1)(y - q))."""
    err = y[..., None] - q
    return torch.maximum(levels * err, (levels - 1) * err).mean(-1)


def long_short_return(pred: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per row (a date): dollar-neutral portfolio with weights ∝ demeaned prediction (gross exposure 1)."""
    pos = (pred - masked_mean(pred, w)[..., None]) * w
    pos = pos / (pos.abs().sum(-1, keepdim=True) + EPS)
    return (pos * y).sum(-1)


class MultiHorizonLoss:
    def __init__(self, cfg: TrainingConfig):
        self.cfg = cfg
        self.weights = cfg.normalised_horizon_weights()
        self.levels = torch.tensor(cfg.quantiles)
        self._on_device: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.term_weights = {
            "huber": cfg.w_huber,
            "pinball": cfg.w_pinball,
            "rank_ic": cfg.w_rank_ic,
            "ic": cfg.w_ic,
            "sharpe": cfg.w_sharpe,
        }

    def _constants(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The quantile levels (Q,) and horizon weights (H,) on ``like``'s device and dtype, copied there once
        (a copy from host memory every step would wait for the device)."""
        key = (like.device, like.dtype)
        if key not in self._on_device:
            weights = torch.tensor(self.weights, dtype=like.dtype)
            self._on_device[key] = (self.levels.to(like.device, like.dtype), weights.to(like.device))
        return self._on_device[key]

    def __call__(
        self,
        point: torch.Tensor,
        quantiles: torch.Tensor,
        y: torch.Tensor,
        date_index: torch.Tensor,
        counts: list[int] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """point (n, H), quantiles (n, H, Q), y (n, H) raw forward returns (NaN = missing), date_index (n,)
        which date of the batch each row belongs to (rows grouped by date, in order). ``counts`` (rows per
        date) saves a device sync when given. Returns the loss and each term's detached value."""
        cfg = self.cfg
        if counts is None:
            counts = torch.bincount(date_index).tolist()
        levels, weights = self._constants(point)  # (Q,), (H,)
        p = pad_by_date(point, counts, 0.0).transpose(1, 2).contiguous()  # (D, H, n)
        q = pad_by_date(quantiles, counts, 0.0).transpose(1, 2)  # (D, H, n, Q)
        yr = pad_by_date(y, counts, float("nan")).transpose(1, 2)  # (D, H, n)
        finite = torch.isfinite(yr)
        date_ok = (finite.sum(-1) >= MIN_ROWS).to(p.dtype)  # (D, H)
        valid = finite & (date_ok[..., None] > 0)
        w = valid.to(p.dtype)
        y0 = torch.where(valid, yr, torch.zeros_like(yr))
        mu = masked_mean(y0, w)[..., None]
        sd = torch.sqrt(masked_mean((y0 - mu) ** 2, w))[..., None]
        yz = (((y0 - mu) / (sd + EPS)).clamp(-cfg.label_clip, cfg.label_clip)) * w
        per_date = {  # (D, H) each
            "huber": masked_mean(F.huber_loss(p, yz, reduction="none", delta=cfg.huber_delta), w),
            "pinball": masked_mean(pinball(q, yz, levels), w),
            "rank_ic": -masked_pearson(soft_rank(p, w, cfg.soft_rank_temperature), hard_rank(yr, valid), w),
            "ic": -masked_pearson(p, y0, w),
        }
        terms = {t: (weights * masked_mean(v, date_ok, dim=0)).sum() for t, v in per_date.items()}
        r = long_short_return(p, y0, w)  # (D, H)
        k = date_ok.sum(0)
        r_mean = masked_mean(r, date_ok, dim=0)
        var = ((r - r_mean) ** 2 * date_ok).sum(0) / (k - 1).clamp(min=1)
        r_sd = torch.sqrt(torch.where(k >= 2, var, torch.ones_like(var)))  # no inf gradient at k < 2
        sharpe = torch.where(k >= 2, -r_mean / (r_sd + EPS), torch.zeros_like(r_mean))
        terms["sharpe"] = (weights * sharpe).sum()
        total = sum(self.term_weights[t] * terms[t] for t in TERMS)
        return total, {t: v.detach() for t, v in terms.items()}
