r"""Factor timing for the input skip: its weights follow the recent payoff of its inputs.

A skip fitted once learns the effects' average strengths; real effect strengths drift (so do the
``realistic`` preset's). With ``skip_timing_half_life`` :math:`\tau > 0`, horizon :math:`h` on date
:math:`t` is scored with

.. math::
    \beta_{h,t} = (\bar G_{h,t} + \kappa I)^{-1} (\bar c_{h,t} + \kappa \beta_h), \qquad
    \bar G_{h,t} = \frac{\sum_{u + h \le t} a^{t-u}\, U_u^\top U_u}{\sum_{u + h \le t} a^{t-u}\, n_{u,h}},
    \quad a = 2^{-1/\tau}

for each horizon of ``skip_timing_horizons`` (:math:`\bar c_{h,t}` likewise with :math:`U_u^\top y^z_{u,h}`): a ridge over the dates whose h-day label
has ended by :math:`t`, exponentially weighted, shrunk towards the trained skip :math:`\beta_h` with the
per-row penalty :math:`\kappa` (``skip_timing_shrink``). The prediction becomes
:math:`f(x) + U_t(\beta_{h,t} - \beta_h)`. Only labels that end by :math:`t` are read: point-in-time.
With ``skip_timing_basis`` "groups" (the default) the same ridge is solved in the basis of the skip's
group sub-scores :math:`U B` (column g of :math:`B` holds the weights of the inputs of feature group g, the
neighbour means in groups of their own): one multiplier per group, shrunk towards 1 with
:math:`\kappa` times each sub-score's variance, i.e. :math:`\beta_{h,t} = B m_{h,t}`. About 20 numbers
instead of 348 to estimate from a few weeks of labels.

Timing acts at prediction time; early stopping and the ridge start's choices are made without it.
"""

from __future__ import annotations

import math
from collections import deque

import torch

from atft_dagster.model.atft import ATFTGATFAN, HorizonSelected
from atft_dagster.model.config import TrainingConfig
from atft_dagster.training.data import Batch, PanelTensors
from atft_dagster.training.skip_init import zscore_by_date

# A daily prediction reads this many half-lives of earlier dates (plus the longest timed horizon): the dates
# before weigh under 2^-10 of the total, so it matches the full-history prediction to about 0.1 %.
HISTORY_HALF_LIVES = 10


def timing_history(cfg: TrainingConfig) -> int:
    """Earlier prediction dates a one-day prediction needs for skip timing (0 when timing is off)."""
    if cfg.skip_timing_half_life <= 0:
        return 0
    return math.ceil(HISTORY_HALF_LIVES * cfg.skip_timing_half_life) + max(cfg.skip_timing_horizons)


def _first(model: ATFTGATFAN | HorizonSelected) -> ATFTGATFAN:
    return model.members[0] if isinstance(model, HorizonSelected) else model


def trained_skip_weights(model: ATFTGATFAN | HorizonSelected) -> torch.Tensor:
    """(H, d): the skip weights each horizon's prediction uses (its own snapshot under per-horizon epochs)."""
    if isinstance(model, HorizonSelected):
        return torch.stack([model.members[j].skip.lin.weight[k] for k, j in enumerate(model.source)])
    if model.skip is None:
        raise ValueError("skip timing needs the input skip (input_skip is off)")
    return model.skip.lin.weight


@torch.no_grad()
def timed_skip_deltas(
    model: ATFTGATFAN | HorizonSelected, data: PanelTensors, date_indices: list[int], batch_dates: int
) -> dict[int, torch.Tensor]:
    """Per date of ``date_indices``: :math:`\\beta_{h,t} - \\beta_h`, (H, d) float64, zero for a horizon
    outside ``skip_timing_horizons``. One pass over the usable history up to the last requested date."""
    cfg, first = model.cfg, _first(model)
    beta = trained_skip_weights(model).detach().double()
    n_h, d = beta.shape
    decay, kappa = 0.5 ** (1.0 / cfg.skip_timing_half_life), cfg.skip_timing_shrink
    timed = {j for j, h in enumerate(cfg.horizons) if h in cfg.skip_timing_horizons}
    wanted = set(date_indices)
    steps = sorted({t for t in data.usable_dates(cfg.min_stocks_per_date) if t <= max(wanted)} | wanted)
    gram = beta.new_zeros(n_h, d, d)
    cross = beta.new_zeros(n_h, d)
    rows = beta.new_zeros(n_h)
    pending: deque[tuple[int, torch.Tensor, torch.Tensor, list[bool], dict]] = deque()  # labels still running
    eye = torch.eye(d, dtype=torch.float64, device=beta.device)
    basis = group_basis(beta, data.groups, first.with_neighbour_mean)
    out: dict[int, torch.Tensor] = {}
    prev = None
    for i in range(0, len(steps), batch_dates):
        chunk = steps[i : i + batch_dates]
        b = data.batch(chunk)
        u_all = first.skip_inputs(b.x[:, -1], b.edge_index, b.edge_attr).double()
        yz_all = zscore_by_date(b.y.double(), b.counts, cfg.label_clip)
        for t, u, yz in zip(chunk, torch.split(u_all, b.counts), torch.split(yz_all, b.counts), strict=True):
            if prev is not None:
                f = decay ** (t - prev)
                gram, cross, rows = gram * f, cross * f, rows * f
            prev = t
            pending.append((t, u, yz, [j not in timed for j in range(n_h)], {}))
            for s, us, ys, added, grams in pending:  # a label that has ended by t enters once, weight a^(t-s)
                for j, h in enumerate(cfg.horizons):
                    if j in timed and not added[j] and s + h <= t:
                        added[j] = True
                        ok = torch.isfinite(ys[:, j])
                        key = ok.cpu().numpy().tobytes()  # horizons with the same rows share one product
                        if key not in grams:
                            grams[key] = us[ok].T @ us[ok]
                        w = decay ** (t - s)
                        gram[j] += w * grams[key]
                        cross[j] += w * (us[ok].T @ ys[ok, j])
                        rows[j] += w * int(ok.sum())
            while pending and all(pending[0][3]):
                pending.popleft()
            if t in wanted:
                if cfg.skip_timing_basis == "groups":
                    out[t] = _group_delta(gram, cross, rows, beta, kappa, basis)
                else:
                    out[t] = _delta(gram, cross, rows, beta, kappa, eye)
    return out


def group_basis(beta: torch.Tensor, groups: list[str], with_neighbour_mean: bool) -> list[torch.Tensor]:
    """Per horizon, B (d, G): column g holds the skip's weights of the inputs in group g, zeros elsewhere,
    so that U B are the skip's group sub-scores. The neighbour means form groups of their own."""
    names = sorted(set(groups))
    gid = [names.index(g) for g in groups]
    if with_neighbour_mean:
        gid = gid + [len(names) + k for k in gid]
    member = torch.zeros(beta.shape[1], max(gid) + 1, dtype=beta.dtype, device=beta.device)
    member[torch.arange(len(gid)), torch.tensor(gid)] = 1.0
    return [member * beta[j][:, None] for j in range(beta.shape[0])]


def _group_delta(
    gram: torch.Tensor,
    cross: torch.Tensor,
    rows: torch.Tensor,
    beta: torch.Tensor,
    kappa: float,
    basis: list[torch.Tensor],
) -> torch.Tensor:
    r"""(H, d): in the group basis, multipliers :math:`m = (\bar G_B + \kappa D)^{-1}(\bar c_B + \kappa D 1)`
    of the sub-scores (:math:`\bar G_B = B^\top \bar G B`, D its diagonal), as input weights
    :math:`B(m - 1)`; 0 for a horizon with no ended label yet."""
    delta = torch.zeros_like(beta)
    for j, b in enumerate(basis):
        if rows[j] > 0:
            g = b.T @ (gram[j] / rows[j]) @ b
            c = b.T @ (cross[j] / rows[j])
            d = torch.diag(g.diagonal().clamp_min(1e-12 * float(g.diagonal().max().clamp_min(1e-300))))
            m = torch.linalg.solve(g + kappa * d, c + kappa * d.sum(1))
            delta[j] = b @ (m - 1)
    return delta


def _delta(
    gram: torch.Tensor,
    cross: torch.Tensor,
    rows: torch.Tensor,
    beta: torch.Tensor,
    kappa: float,
    eye: torch.Tensor,
) -> torch.Tensor:
    """(H, d): the timed weights minus the trained ones; 0 for a horizon with no ended label yet."""
    delta = torch.zeros_like(beta)
    for j in range(beta.shape[0]):
        if rows[j] > 0:
            timed = torch.linalg.solve(gram[j] / rows[j] + kappa * eye, cross[j] / rows[j] + kappa * beta[j])
            delta[j] = timed - beta[j]
    return delta


@torch.no_grad()
def timing_adjustment(
    model: ATFTGATFAN | HorizonSelected,
    batch: Batch,
    deltas: dict[int, torch.Tensor],
    date_indices: list[int],
) -> torch.Tensor:
    """(n, H): what timing adds to each row's point prediction, :math:`U_t(\beta_{h,t} - \beta_h)`."""
    u = _first(model).skip_inputs(batch.x[:, -1], batch.edge_index, batch.edge_attr).double()
    parts = [ut @ deltas[t].T for t, ut in zip(date_indices, torch.split(u, batch.counts), strict=True)]
    return torch.cat(parts)
