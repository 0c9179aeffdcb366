"""The training loss, computed per date (a cross-section) and averaged; the Sharpe term spans the batch's
dates. Every term's value is returned for logging."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from atft_dagster.model.config import TrainingConfig

EPS = 1e-8
TERMS = ("huber", "pinball", "rank_ic", "ic", "sharpe")


def zscore(y: torch.Tensor, clip: float) -> torch.Tensor:
    """Cross-sectional z-score of one date's labels, clipped."""
    return ((y - y.mean()) / (y.std(unbiased=False) + EPS)).clamp(-clip, clip)


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / (a.norm() * b.norm() + EPS)


def soft_rank(x: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""Differentiable ranks: :math:`r_i = \tfrac12 + \sum_{j \ne i} \sigma((x_i - x_j)/\tau)` (O(n²))."""
    diff = (x[:, None] - x[None, :]) / temperature
    return torch.sigmoid(diff).sum(dim=1)  # the j = i term adds sigma(0) = 1/2: ranks start at 1


def hard_rank(x: torch.Tensor) -> torch.Tensor:
    return x.argsort().argsort().to(x.dtype)


def pinball(q: torch.Tensor, y: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """q (n, Q), y (n,): mean of max(τ (y - q), (τ - 1)(y - q))."""
    err = y[:, None] - q
    return torch.maximum(levels * err, (levels - 1) * err).mean()


def long_short_return(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Dollar-neutral portfolio with weights ∝ demeaned prediction (gross exposure 1)."""
    w = pred - pred.mean()
    w = w / (w.abs().sum() + EPS)
    return (w * y).sum()


class MultiHorizonLoss:
    def __init__(self, cfg: TrainingConfig):
        self.cfg = cfg
        self.weights = cfg.normalised_horizon_weights()
        self.levels = torch.tensor(cfg.quantiles)

    def __call__(
        self, point: torch.Tensor, quantiles: torch.Tensor, y: torch.Tensor, date_index: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """point (n, H), quantiles (n, H, Q), y (n, H) raw forward returns (NaN = missing),
        date_index (n,) which date of the batch each row belongs to."""
        cfg = self.cfg
        levels = self.levels.to(point.device, point.dtype)
        terms = {t: point.new_zeros(()) for t in TERMS}
        n_dates = int(date_index.max().item()) + 1
        for h, wh in enumerate(self.weights):
            ls_returns = []
            per_date = {t: [] for t in ("huber", "pinball", "rank_ic", "ic")}
            for d in range(n_dates):
                rows = (date_index == d) & torch.isfinite(y[:, h])
                if rows.sum() < 3:
                    continue
                p, yr = point[rows, h], y[rows, h]
                yz = zscore(yr, cfg.label_clip)
                per_date["huber"].append(F.huber_loss(p, yz, delta=cfg.huber_delta))
                per_date["pinball"].append(pinball(quantiles[rows, h], yz, levels))
                per_date["rank_ic"].append(-pearson(soft_rank(p, cfg.soft_rank_temperature), hard_rank(yr)))
                per_date["ic"].append(-pearson(p, yr))
                ls_returns.append(long_short_return(p, yr))
            for t, vals in per_date.items():
                if vals:
                    terms[t] = terms[t] + wh * torch.stack(vals).mean()
            if len(ls_returns) >= 2:
                r = torch.stack(ls_returns)
                terms["sharpe"] = terms["sharpe"] + wh * (-r.mean() / (r.std() + EPS))
        weight = {
            "huber": cfg.w_huber,
            "pinball": cfg.w_pinball,
            "rank_ic": cfg.w_rank_ic,
            "ic": cfg.w_ic,
            "sharpe": cfg.w_sharpe,
        }
        total = sum(weight[t] * terms[t] for t in TERMS)
        return total, {t: float(v.detach()) for t, v in terms.items()}
