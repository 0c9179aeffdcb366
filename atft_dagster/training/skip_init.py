r"""A closed-form start for the model's linear input skip: ridge regression of the per-date z-scored, clipped
labels (the Huber term's targets) on the skip's inputs over the train window, one solve per horizon.

.. math::
    w_h = \arg\min_w \tfrac1{n_h} \sum_i (y^z_{ih} - w^\top u_i)^2 + \lambda \lVert w \rVert^2
        = (U_h^\top U_h + n_h \lambda I)^{-1} U_h^\top y^z_h

The penalty is per row (``n_h λ``): one value shrinks alike on 100 or 4,000 stocks. More data wants less
shrinkage, though (bench/bench_learning_curve.py), so by default λ is chosen per horizon from a grid, by the
start's RankIC on the validation window (``choose_per_horizon``).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from atft_dagster.model.atft import ATFTGATFAN
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ic import daily_ic_device


def zscore_by_date(y: torch.Tensor, counts: list[int], clip: float) -> torch.Tensor:
    """(n, H) raw labels, rows grouped by date -> per date and horizon z-scored over the finite entries,
    clipped at ``clip``; NaN stays NaN (a date with fewer than 2 finite labels becomes all NaN)."""
    out = []
    for part in torch.split(y, counts):
        ok = torch.isfinite(part)
        n = ok.sum(0)
        mu = torch.where(ok, part, 0.0).sum(0) / n.clamp(min=1)
        var = torch.where(ok, (part - mu) ** 2, 0.0).sum(0) / n.clamp(min=1)
        z = ((part - mu) / var.sqrt().clamp_min(1e-12)).clamp(-clip, clip)
        out.append(torch.where(ok & (n >= 2), z, torch.nan))
    return torch.cat(out)


@torch.no_grad()
def skip_batches(
    model: ATFTGATFAN, data: PanelTensors, dates: list[int], batch_dates: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[int]]]:
    """Per batch of ``dates``: the skip's inputs u (n, d) in float64, the raw labels (n, H), rows per date."""
    if model.skip is None:
        raise ValueError("the model has no input skip (input_skip is off)")
    for i in range(0, len(dates), batch_dates):
        b = data.batch(dates[i : i + batch_dates])
        yield model.skip_inputs(b.x[:, -1], b.edge_index, b.edge_attr).double(), b.y.double(), b.counts


@torch.no_grad()
def ridge_solutions(
    model: ATFTGATFAN, data: PanelTensors, dates: list[int], penalties: list[float], batch_dates: int
) -> tuple[dict[float, torch.Tensor], dict[str, int]]:
    """({penalty: (H, d) ridge weights, one row per horizon}, rows each horizon was fitted on); the normal
    equations are accumulated once for every penalty."""
    cfg = model.cfg
    n_h = len(cfg.horizons)
    gram = cross = None
    rows = [0] * n_h
    for u, y, counts in skip_batches(model, data, dates, batch_dates):
        yz = zscore_by_date(y, counts, cfg.label_clip)
        if gram is None:
            gram = u.new_zeros(n_h, u.shape[1], u.shape[1])
            cross = u.new_zeros(n_h, u.shape[1])
        for h in range(n_h):
            ok = torch.isfinite(yz[:, h])
            uh = u[ok]
            gram[h] += uh.T @ uh
            cross[h] += uh.T @ yz[ok, h]
            rows[h] += int(ok.sum())
    eye = torch.eye(gram.shape[1], dtype=torch.float64, device=gram.device)
    weights = {
        p: torch.stack(
            [torch.linalg.solve(gram[h] + max(rows[h], 1) * p * eye, cross[h]) for h in range(n_h)]
        )
        for p in dict.fromkeys(penalties)
    }
    return weights, {f"{h}d": n for h, n in zip(cfg.horizons, rows, strict=True)}


@torch.no_grad()
def set_skip(model: ATFTGATFAN, weight: torch.Tensor) -> None:
    """The skip's weights (H, d), bias 0 (inputs and labels are per-date centred)."""
    model.skip.lin.weight.copy_(weight.to(model.skip.lin.weight.dtype))
    model.skip.lin.bias.zero_()


@torch.no_grad()
def fit_input_skip(
    model: ATFTGATFAN, data: PanelTensors, dates: list[int], penalty: float, batch_dates: int
) -> dict[str, int]:
    """Set ``model.skip`` to the ridge solution over ``dates``. Returns the number of rows each horizon was
    fitted on."""
    weights, rows = ridge_solutions(model, data, dates, [penalty], batch_dates)
    set_skip(model, weights[penalty])
    return rows


@torch.no_grad()
def choose_per_horizon(
    model: ATFTGATFAN,
    weights: dict[float, torch.Tensor],
    data: PanelTensors,
    dates: list[int],
    batch_dates: int,
) -> tuple[torch.Tensor, dict[str, float], dict[str, dict[float, float]]]:
    """Per horizon, the penalty whose ridge weights score the best mean daily RankIC over ``dates`` (the
    validation window): (the (H, d) weights of the choices, the chosen penalty per horizon, every score)."""
    cfg = model.cfg
    parts = list(skip_batches(model, data, dates, batch_dates))
    u, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    counts = [c for p in parts for c in p[2]]
    scores: dict[str, dict[float, float]] = {}
    rows, chosen = [], {}
    for j, h in enumerate(cfg.horizons):
        key = f"{h}d"
        scores[key] = {
            p: float(daily_ic_device(u @ w[j], y[:, j], counts, cfg.min_stocks_per_date, True).nanmean())
            for p, w in weights.items()
        }
        finite = {p: v for p, v in scores[key].items() if v == v} or {p: 0.0 for p in weights}
        chosen[key] = best = max(finite, key=finite.get)
        rows.append(weights[best][j])
    return torch.stack(rows), chosen, scores


@torch.no_grad()
def ridge_start(
    model: ATFTGATFAN, data: PanelTensors, dates: list[int], penalty: float, batch_dates: int
) -> None:
    """The model becomes the linear graph model: its skip at the ridge solution over ``dates``, its deep
    point head at zero (the deep path then learns the residual)."""
    fit_input_skip(model, data, dates, penalty, batch_dates)
    zero_deep_head(model)


@torch.no_grad()
def zero_deep_head(model: ATFTGATFAN) -> None:
    model.heads.point.weight.zero_()
    model.heads.point.bias.zero_()
