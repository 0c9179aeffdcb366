r"""A two-state Markov-switching model of the daily market return, for the thirty-sixth sweep's probe.

.. math::
    r_t \mid z_t = k \sim \mu_k + \sigma_k\, t_\nu, \qquad P(z_{t+1} = j \mid z_t = i) = A_{ij}

(Student-t emissions with ``TAIL_DOF`` degrees of freedom, so that a single large return is a tail draw, not
a regime) fitted by EM (Baum-Welch, scaled forward-backward, the t's scale weights in the M-step) on the
returns up to a cut-off; the state of interest is
the one with the larger variance. ``filtered_high_vol`` gives :math:`P(z_t = high \mid r_1 \dots r_t)` on every
day with the fitted parameters: a day's value reads its own and earlier returns only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

EM_ITERATIONS = 200
EM_TOLERANCE = 1e-9  # stop when the log-likelihood per day improves by less
TAIL_DOF = 5.0  # daily equity returns' tails: 4-6 degrees of freedom are typical
# Regimes last weeks to months: a Dirichlet prior on each row of A worth this many days of the start's
# persistence (MAP-EM), so that EM does not turn the high-variance state into a one-day tail state.
PERSISTENCE_PRIOR_DAYS = 50.0
START_TRANSITION = np.array([[0.98, 0.02], [0.05, 0.95]])


@dataclass(frozen=True)
class SwitchingModel:
    mean: np.ndarray  # (2,)
    var: np.ndarray  # (2,)
    transition: np.ndarray  # (2, 2), rows sum to 1
    initial: np.ndarray  # (2,)

    @property
    def high(self) -> int:
        return int(np.argmax(self.var))


def _densities(r: np.ndarray, m: SwitchingModel) -> np.ndarray:
    nu = TAIL_DOF
    log_c = gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi * m.var)
    return np.exp(log_c - (nu + 1) / 2 * np.log1p((r[:, None] - m.mean) ** 2 / (nu * m.var)))


def _forward(r: np.ndarray, m: SwitchingModel) -> tuple[np.ndarray, np.ndarray]:
    """(filtered state probabilities (T, 2), scale factors (T,)): alpha_t = P(z_t | r_1..t)."""
    b = _densities(r, m)
    alpha, scale = np.empty_like(b), np.empty(len(r))
    prior = m.initial
    for t in range(len(r)):
        a = prior * b[t]
        scale[t] = max(a.sum(), 1e-300)
        alpha[t] = a / scale[t]
        prior = alpha[t] @ m.transition
    return alpha, scale


def fit_switching(r: np.ndarray) -> SwitchingModel:
    """EM from a start with a calm state (half the sample variance) and a turbulent one (twice it)."""
    r = r[np.isfinite(r)]
    v = float(r.var())
    m = SwitchingModel(np.full(2, r.mean()), np.array([0.5 * v, 2.0 * v]), START_TRANSITION, np.full(2, 0.5))
    last = -np.inf
    for _ in range(EM_ITERATIONS):
        alpha, scale = _forward(r, m)
        b = _densities(r, m)
        beta = np.ones_like(alpha)
        for t in range(len(r) - 2, -1, -1):
            beta[t] = (m.transition @ (b[t + 1] * beta[t + 1])) / scale[t + 1]
        gamma = alpha * beta
        gamma /= gamma.sum(1, keepdims=True)
        xi = (
            alpha[:-1, :, None] * m.transition[None] * (b[1:] * beta[1:])[:, None, :] / scale[1:, None, None]
        ).sum(0)
        w = gamma.sum(0)
        u = gamma * (TAIL_DOF + 1) / (TAIL_DOF + (r[:, None] - m.mean) ** 2 / m.var)  # the t's scale weights
        mean = (u * r[:, None]).sum(0) / u.sum(0)
        var = np.maximum((u * (r[:, None] - mean) ** 2).sum(0) / w, 1e-12 * v)
        counts = xi + PERSISTENCE_PRIOR_DAYS * START_TRANSITION
        m = SwitchingModel(mean, var, counts / counts.sum(1, keepdims=True), gamma[0])
        ll = float(np.log(scale).mean())
        if ll - last < EM_TOLERANCE:
            break
        last = ll
    return m


def filtered_high_vol(r: np.ndarray, fit_until: int) -> np.ndarray:
    """(T,): P(high-variance state | returns through t), with the model fitted on ``r[: fit_until + 1]``;
    a day without a return carries the prediction from the day before."""
    m = fit_switching(r[: fit_until + 1])
    out = np.empty(len(r))
    prior = m.initial
    b = np.nan_to_num(_densities(np.nan_to_num(r), m), nan=1.0)
    for t in range(len(r)):
        a = prior * (b[t] if np.isfinite(r[t]) else 1.0)
        a = a / max(a.sum(), 1e-300)
        out[t] = a[m.high]
        prior = a @ m.transition
    return out
