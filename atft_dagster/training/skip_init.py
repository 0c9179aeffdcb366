r"""A closed-form start for the model's linear input skip: ridge regression of the per-date z-scored, clipped
labels (the Huber term's targets) on the skip's inputs over the train window, one solve per horizon.

.. math::
    w_h = \arg\min_w \tfrac1{n_h} \sum_i (y^z_{ih} - w^\top u_i)^2 + \lambda \lVert w \rVert^2
        = (U_h^\top U_h + n_h \lambda I)^{-1} U_h^\top y^z_h

The penalty is per row (``n_h λ``), so one value means the same shrinkage on 100 or 4,000 stocks.
"""

from __future__ import annotations

import torch

from atft_dagster.model.atft import ATFTGATFAN
from atft_dagster.training.data import PanelTensors


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
def fit_input_skip(
    model: ATFTGATFAN, data: PanelTensors, dates: list[int], penalty: float, batch_dates: int
) -> dict[str, int]:
    """Set ``model.skip`` to the ridge solution over ``dates`` (bias 0: inputs and labels are per-date
    centred). Returns the number of rows each horizon was fitted on."""
    if model.skip is None:
        raise ValueError("the model has no input skip (input_skip is off)")
    cfg = model.cfg
    dim = model.skip.lin.in_features
    n_h = len(cfg.horizons)
    gram = torch.zeros(n_h, dim, dim, dtype=torch.float64, device=data.device)
    cross = torch.zeros(n_h, dim, dtype=torch.float64, device=data.device)
    rows = [0] * n_h
    for i in range(0, len(dates), batch_dates):
        b = data.batch(dates[i : i + batch_dates])
        u = model.skip_inputs(b.x[:, -1], b.edge_index, b.edge_attr).double()
        yz = zscore_by_date(b.y.double(), b.counts, cfg.label_clip)
        for h in range(n_h):
            ok = torch.isfinite(yz[:, h])
            uh = u[ok]
            gram[h] += uh.T @ uh
            cross[h] += uh.T @ yz[ok, h]
            rows[h] += int(ok.sum())
    eye = torch.eye(dim, dtype=torch.float64, device=data.device)
    weight = torch.stack(
        [torch.linalg.solve(gram[h] + max(rows[h], 1) * penalty * eye, cross[h]) for h in range(n_h)]
    )
    model.skip.lin.weight.copy_(weight.to(model.skip.lin.weight.dtype))
    model.skip.lin.bias.zero_()
    return {f"{h}d": n for h, n in zip(cfg.horizons, rows, strict=True)}


@torch.no_grad()
def ridge_start(
    model: ATFTGATFAN, data: PanelTensors, dates: list[int], penalty: float, batch_dates: int
) -> None:
    """The model becomes the linear graph model: its skip at the ridge solution over ``dates``, its deep
    point head at zero (the deep path then learns the residual)."""
    fit_input_skip(model, data, dates, penalty, batch_dates)
    model.heads.point.weight.zero_()
    model.heads.point.bias.zero_()
