"""Per-date IC and RankIC on the device, for the validation metric of every epoch. Same definitions as
``evaluation.metrics.daily_ic`` (Pearson; Spearman with ties sharing their mean rank; a date with fewer than
``min_stocks`` finite pairs gives NaN), computed for all dates at once in float64."""

from __future__ import annotations

import torch

from atft_dagster.model.loss import masked_mean, pad_by_date


def average_rank(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(D, n): 0-based ranks among each row's valid entries, tied values sharing their mean rank."""
    D, n = x.shape
    key = torch.where(valid, x, torch.full_like(x, torch.inf))
    s, order = key.sort(dim=1, stable=True)
    new = torch.ones_like(s, dtype=torch.bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    group = new.long().cumsum(1) - 1 + torch.arange(D, device=x.device)[:, None] * n
    pos = torch.arange(n, device=x.device, dtype=x.dtype).expand(D, n)
    mean_pos = torch.zeros(D * n, device=x.device, dtype=x.dtype).scatter_reduce(
        0, group.flatten(), pos.flatten(), "mean", include_self=False
    )
    return torch.empty_like(x).scatter_(1, order, mean_pos[group])


def _pearson_or_nan(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    a = (a - masked_mean(a, w)[:, None]) * w
    b = (b - masked_mean(b, w)[:, None]) * w
    den = torch.sqrt((a * a).sum(1) * (b * b).sum(1))
    return torch.where(den > 0, (a * b).sum(1) / den, torch.full_like(den, torch.nan))


def daily_ic_device(
    pred: torch.Tensor, label: torch.Tensor, counts: list[int], min_stocks: int, rank: bool = False
) -> torch.Tensor:
    """pred, label (n,) grouped by date (``counts`` rows each) -> (dates,) IC or RankIC per date."""
    p = pad_by_date(pred.double(), counts, torch.nan)
    y = pad_by_date(label.double(), counts, torch.nan)
    ok = torch.isfinite(p) & torch.isfinite(y)
    if rank:
        p, y = average_rank(p, ok), average_rank(y, ok)
    w = ok.double()
    ic = _pearson_or_nan(torch.where(ok, p, 0.0), torch.where(ok, y, 0.0), w)
    return torch.where(ok.sum(1) >= min_stocks, ic, torch.full_like(ic, torch.nan))
