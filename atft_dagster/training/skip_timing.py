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

Gate (``skip_timing_gate``): timing applies on date :math:`t` only if it has paid so far. For every
earlier date :math:`s` (after ``skip_timing_gate_burn_in`` ended dates), an expanding ridge
:math:`\beta^{all}_s` over every label ended by :math:`s` (per-row penalty ``skip_timing_gate_penalty``)
is re-weighted in its group basis twice: by the timing above (dates weighted by the half-life) and by
the same ridge over every ended date with equal weight (static multipliers, so that both undo the
reference's shrinkage alike). The gain
:math:`g_s = \rho(U_s \beta^{timed}_s, y^z_s) - \rho(U_s \beta^{static}_s, y^z_s)` counts once the label of
:math:`s` has ended (:math:`s + h \le t`), and timing is on at :math:`t` iff the t-statistic of their
mean gain exceeds ``skip_timing_gate_min_t``: recent dates must have predicted clearly better than all. The
t-statistic is Newey-West with lag :math:`h - 1`, since the gains of dates under h days apart share label
days (lag 0, the plain t, at 1 day).
Where strengths are constant the static multipliers use more data, and the gate keeps timing off.

Timing acts at prediction time; early stopping and the ridge start's choices are made without it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import date

import numpy as np
import torch

from atft_dagster.evaluation.metrics import newey_west_t
from atft_dagster.model.atft import ATFTGATFAN, HorizonSelected
from atft_dagster.model.config import TrainingConfig
from atft_dagster.training.data import Batch, PanelTensors
from atft_dagster.training.skip_init import zscore_by_date

# A daily prediction reads this many half-lives of earlier dates (plus the longest timed horizon): the dates
# before weigh under 2^-10 of the total, so it matches the full-history prediction to about 0.1 %.
HISTORY_HALF_LIVES = 10


# The gate's backtest reads the whole history: a daily prediction asks for this many earlier dates (all).
WHOLE_HISTORY = 10**6


def timing_history(cfg: TrainingConfig) -> int:
    """Earlier prediction dates a one-day prediction needs for skip timing (0 when timing is off)."""
    if cfg.skip_timing_half_life <= 0:
        return 0
    if cfg.skip_timing_gate:
        return WHOLE_HISTORY
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


@dataclass
class TimingState:
    r"""The timing pass after its date ``last``: what continuing it by later dates needs. Dates, not a
    panel's indices, so that it resumes on another panel of the same features (a daily prediction's short
    window). Labels are not kept: each is read from the panel when it ends.

    ``pending``: dates with a label still running (per timed horizon: entered yet?); ``waiting``: per timed
    horizon, the gate's dates whose gain waits for their label, with the timed and static weights they were
    scored with; ``checks``: per date still read later, (rows, sum, sum of squares) of its skip inputs, so
    that a resume on other inputs is refused."""

    key: str
    last: date
    gram: torch.Tensor
    cross: torch.Tensor
    rows: torch.Tensor
    pending: list[tuple[date, list[bool]]]
    checks: dict[date, tuple[int, float, float]]
    gate: dict | None = None

    def to_dict(self) -> dict:
        """Plain tensors, lists and strings (loads with ``torch.load(weights_only=True)``)."""
        gate = None
        if self.gate is not None:
            gate = {**self.gate, "waiting": [[(str(s), a, b) for s, a, b in w] for w in self.gate["waiting"]]}
        return {
            "key": self.key,
            "last": str(self.last),
            "gram": self.gram,
            "cross": self.cross,
            "rows": self.rows,
            "pending": [(str(s), added) for s, added in self.pending],
            "checks": {str(s): c for s, c in self.checks.items()},
            "gate": gate,
        }

    @classmethod
    def from_dict(cls, d: dict) -> TimingState:
        gate = d["gate"]
        if gate is not None:
            waiting = [[(date.fromisoformat(s), a, b) for s, a, b in w] for w in gate["waiting"]]
            gate = {**gate, "waiting": waiting}
        return cls(
            d["key"],
            date.fromisoformat(d["last"]),
            d["gram"],
            d["cross"],
            d["rows"],
            [(date.fromisoformat(s), list(added)) for s, added in d["pending"]],
            {date.fromisoformat(s): tuple(c) for s, c in d["checks"].items()},
            gate,
        )


@dataclass
class TimingStatistics:
    r"""Per requested date, the EWMA normal equations of the timed horizons (``horizon_index``):
    ``gram`` (k, d, d) :math:`\sum a^{t-u} U_u^\top U_u`, ``cross`` (k, d) with the z-scored labels and
    ``rows`` (k,). They depend on the data and the config only, not on a model's weights, so one set serves
    every member of an ensemble."""

    horizon_index: list[int]
    per_date: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    # skip_timing_gate: per date, per timed horizon, the backtest's (mean gain, its t-statistic) so far
    # (nan before any); timing is on where the t-statistic exceeds skip_timing_gate_min_t
    gate: dict[int, list[tuple[float, float]]] | None = None
    # the pass after its last date, when that date is one a full pass steps on (to resume from)
    state: TimingState | None = None


TIMING_FIELDS = (
    "skip_timing_half_life",
    "skip_timing_horizons",
    "horizons",
    "min_stocks_per_date",
    "label_clip",
    "use_graph",
    "input_skip",
    "skip_neighbour_mean",
    "neighbour_weight_power",
    # the gate's backtest times its own reference ridge
    "skip_timing_gate",
    "skip_timing_gate_burn_in",
    "skip_timing_gate_penalty",
    "skip_timing_shrink",
    "skip_timing_basis",
)


def timing_key(cfg: TrainingConfig) -> str:
    """The config fields :func:`timing_statistics` depends on: models that agree on them share statistics."""
    return repr([getattr(cfg, f) for f in TIMING_FIELDS])


class ResumeRefused(ValueError):
    """A :class:`TimingState` that does not continue on these inputs (other config, dates or data)."""


def _checksum(u: torch.Tensor) -> tuple[int, float, float]:
    return (u.shape[0], float(u.sum()), float((u * u).sum()))


@torch.no_grad()
def timing_statistics(
    model: ATFTGATFAN | HorizonSelected,
    data: PanelTensors,
    date_indices: list[int],
    resume: TimingState | None = None,
) -> TimingStatistics:
    """One pass over the usable history up to the last requested date, reading each date's last-day inputs
    and the labels that have ended; with ``resume``, the pass continues that state on the dates after its
    ``last`` (the panel must hold them and the dates the state still reads), which gives the full pass's
    figures. Raises :class:`ResumeRefused` where the state does not fit."""
    cfg, first = model.cfg, _first(model)
    timed = [j for j, h in enumerate(cfg.horizons) if h in cfg.skip_timing_horizons]
    horizons = [cfg.horizons[j] for j in timed]
    decay = 0.5 ** (1.0 / cfg.skip_timing_half_life)
    wanted = set(date_indices)
    cache: dict[int, tuple[torch.Tensor, torch.Tensor, dict]] = {}

    def inputs(t: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Date t's skip inputs, z-scored labels of the timed horizons, and the products made of them."""
        if t not in cache:
            x_last, y, edge_index, edge_attr = data.last_day(t)
            u = first.skip_inputs(x_last, edge_index, edge_attr).double()
            cache[t] = (u, zscore_by_date(y[:, timed].double(), [u.shape[0]], cfg.label_clip), {})
        return cache[t]

    gate = _Gate(cfg, horizons, data.groups, first.with_neighbour_mean) if cfg.skip_timing_gate else None
    gram = cross = rows = None
    pending: deque[tuple[int, list[bool]]] = deque()  # dates whose labels are still running
    prev = None
    if resume is not None:
        prev, index = _resume_index(resume, data, cfg, wanted)
        gram, cross, rows = (x.to(data.device, copy=True) for x in (resume.gram, resume.cross, resume.rows))
        pending.extend((index[s], list(added)) for s, added in resume.pending)
        if gate is not None:
            gate.load(resume.gate, index, data.device)
        for s, check in resume.checks.items():
            got = _checksum(inputs(index[s])[0])
            if got[0] != check[0] or not all(
                math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
                for a, b in zip(got[1:], check[1:], strict=True)
            ):
                raise ResumeRefused(f"the skip inputs of {s} differ from the state's: the features changed")
    usable = set(data.usable_dates(cfg.min_stocks_per_date))
    after = -1 if prev is None else prev
    steps = sorted({t for t in usable if after < t <= max(wanted)} | wanted)
    out: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    for t in steps:
        u = inputs(t)[0]
        if gram is None:
            gram = u.new_zeros(len(timed), u.shape[1], u.shape[1])
            cross, rows = u.new_zeros(len(timed), u.shape[1]), u.new_zeros(len(timed))
            if gate is not None:
                gate.start(gram)
        if prev is not None:
            f = decay ** (t - prev)
            gram, cross, rows = gram * f, cross * f, rows * f
        prev = t
        pending.append((t, [False] * len(timed)))
        for s, added in pending:  # a label that has ended by t enters once, weight a^(t-s)
            for k, h in enumerate(horizons):
                if not added[k] and s + h <= t:
                    added[k] = True
                    us, ys, grams = inputs(s)
                    ok = torch.isfinite(ys[:, k])
                    key = ok.cpu().numpy().tobytes()  # horizons with the same rows share one product
                    if key not in grams:
                        grams[key] = us[ok].T @ us[ok]
                    w, c, n = decay ** (t - s), us[ok].T @ ys[ok, k], int(ok.sum())
                    gram[k] += w * grams[key]
                    cross[k] += w * c
                    rows[k] += w * n
                    if gate is not None:
                        gate.add(k, grams[key], c, n)
        while pending and all(pending[0][1]):
            pending.popleft()
        if gate is not None:
            gate.step(t, inputs, gram, cross, rows)
        if t in wanted:
            out[t] = (gram.clone(), cross.clone(), rows.clone())
            if gate is not None:
                gate.decisions[t] = gate.summary()
        live = {s for s, _ in pending} | (gate.reading() if gate is not None else set())
        for s in [s for s in cache if s not in live]:
            del cache[s]
    state = None
    if prev is not None and prev in usable:
        state = TimingState(
            timing_key(cfg),
            data.dates[prev],
            gram,
            cross,
            rows,
            [(data.dates[s], list(added)) for s, added in pending],
            {data.dates[s]: _checksum(cache[s][0]) for s in sorted(cache)},
            gate.export(data.dates) if gate is not None else None,
        )
    return TimingStatistics(timed, out, gate.decisions if gate is not None else None, state)


def _resume_index(
    state: TimingState, data: PanelTensors, cfg: TrainingConfig, wanted: set[int]
) -> tuple[int, dict[date, int]]:
    """The panel index of the state's last date and the panel's date index, after checking that the state
    continues here."""
    if state.key != timing_key(cfg):
        raise ResumeRefused("the state was made under another timing config")
    index = {d: i for i, d in enumerate(data.dates)}
    needed = [state.last, *state.checks]
    missing = [str(d) for d in needed if d not in index]
    if missing:
        raise ResumeRefused(f"the panel lacks dates the state reads: {missing[:3]}")
    last = index[state.last]
    if min(wanted) <= last:
        raise ResumeRefused(f"the state has passed {data.dates[min(wanted)]} already (it ends {state.last})")
    return last, index


class _Gate:
    """The point-in-time backtest of ``skip_timing_gate`` (module docstring, "Gate"), fed by the pass of
    :func:`timing_statistics`: expanding normal equations per timed horizon; each date's timed and static
    weights wait until its label has ended, and its gain counts from then on."""

    def __init__(self, cfg: TrainingConfig, horizons: list[int], groups: list[str], neighbours: bool):
        self.cfg, self.horizons, self.groups, self.neighbours = cfg, horizons, groups, neighbours
        self.decisions: dict[int, list[tuple[float, float]]] = {}
        self.ended = [0] * len(horizons)
        # per timed horizon: (date, timed weights, static weights) waiting for the date's label
        self.waiting: list[deque[tuple[int, torch.Tensor, torch.Tensor]]] = [deque() for _ in horizons]
        self.gains: list[list[float]] = [[] for _ in horizons]  # per timed horizon, in date order

    def start(self, like: torch.Tensor) -> None:
        self.gram, self.cross = torch.zeros_like(like), like.new_zeros(like.shape[:2])
        self.rows = like.new_zeros(like.shape[0])
        self.eye = torch.eye(like.shape[1], dtype=like.dtype, device=like.device)

    def add(self, k: int, gram: torch.Tensor, cross: torch.Tensor, rows: int) -> None:
        self.gram[k] += gram
        self.cross[k] += cross
        self.rows[k] += rows
        self.ended[k] += 1

    def step(self, t, inputs, ew_gram, ew_cross, ew_rows) -> None:
        """Count the gains whose label has ended by ``t``, then weigh ``t`` (its gain waits for its label)."""
        for k, h in enumerate(self.horizons):
            while self.waiting[k] and self.waiting[k][0][0] + h <= t:
                s, timed, static = self.waiting[k].popleft()
                us, ys, _ = inputs(s)
                ok = torch.isfinite(ys[:, k])
                if not bool(ok.any()):
                    continue
                gain = _corr(us[ok] @ timed, ys[ok, k]) - _corr(us[ok] @ static, ys[ok, k])
                self.gains[k].append(gain)
            if self.ended[k] < self.cfg.skip_timing_gate_burn_in or ew_rows[k] <= 0:
                continue
            n = self.rows[k]
            ref = torch.linalg.solve(
                self.gram[k] / n + self.cfg.skip_timing_gate_penalty * self.eye, self.cross[k] / n
            )
            timed, static = (
                ref + self._delta(g / r, c / r, ref)
                for g, c, r in ((ew_gram[k], ew_cross[k], ew_rows[k]), (self.gram[k], self.cross[k], n))
            )
            self.waiting[k].append((t, timed, static))

    def reading(self) -> set[int]:
        """The dates whose inputs a later step reads."""
        return {s for w in self.waiting for s, _, _ in w}

    def export(self, dates: list[date]) -> dict:
        return {
            "gram": self.gram,
            "cross": self.cross,
            "rows": self.rows,
            "ended": list(self.ended),
            "gains": [list(g) for g in self.gains],
            "waiting": [[(dates[s], a, b) for s, a, b in w] for w in self.waiting],
        }

    def load(self, saved: dict | None, index: dict[date, int], device: torch.device) -> None:
        if saved is None:
            raise ResumeRefused("the state was made without the gate")
        self.start(saved["gram"].to(device))
        self.gram, self.cross, self.rows = (saved[k].to(device, copy=True) for k in ("gram", "cross", "rows"))
        if "gains" not in saved:
            raise ResumeRefused("the state was kept by an earlier version (no gain series)")
        self.ended, self.gains = list(saved["ended"]), [list(g) for g in saved["gains"]]
        self.waiting = [
            deque((index[s], a.to(device), b.to(device)) for s, a, b in w) for w in saved["waiting"]
        ]

    def _delta(self, gram: torch.Tensor, cross: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        kappa = self.cfg.skip_timing_shrink
        if self.cfg.skip_timing_basis == "groups":
            return _group_delta(gram, cross, group_basis(ref[None], self.groups, self.neighbours)[0], kappa)
        return _delta(gram, cross, ref, kappa, self.eye)

    def summary(self) -> list[tuple[float, float]]:
        """Per timed horizon h: the mean gain of the ended dates and its Newey-West t-statistic with lag
        h - 1 (the gains of dates less than h apart share label days; lag 0 is the plain t), nan before
        two."""
        out = []
        for g, h in zip(self.gains, self.horizons, strict=True):
            x = np.asarray(g, dtype=np.float64)
            out.append((float(x.mean()) if len(x) else math.nan, newey_west_t(x, h - 1)))
        return out


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    return float(a @ b) / den if den > 0 else 0.0


@torch.no_grad()
def timed_skip_deltas(
    model: ATFTGATFAN | HorizonSelected,
    data: PanelTensors,
    date_indices: list[int],
    stats: TimingStatistics | None = None,
) -> dict[int, torch.Tensor]:
    """Per date of ``date_indices``: :math:`\\beta_{h,t} - \\beta_h`, (H, d) float64, zero for a horizon
    outside ``skip_timing_horizons``; ``stats`` from :func:`timing_statistics` (computed when not given)."""
    cfg, first = model.cfg, _first(model)
    stats = stats or timing_statistics(model, data, date_indices)
    beta = trained_skip_weights(model).detach().double()
    eye = torch.eye(beta.shape[1], dtype=torch.float64, device=beta.device)
    basis = group_basis(beta, data.groups, first.with_neighbour_mean)
    out = {}
    for t in date_indices:
        delta = torch.zeros_like(beta)
        for k, j in enumerate(stats.horizon_index):
            gram, cross, rows = (s[k] for s in stats.per_date[t])
            if stats.gate is not None and not stats.gate[t][k][1] > cfg.skip_timing_gate_min_t:
                continue  # the gate: timing has not paid so far
            if rows > 0:  # no ended label yet: the trained skip
                if cfg.skip_timing_basis == "groups":
                    delta[j] = _group_delta(gram / rows, cross / rows, basis[j], cfg.skip_timing_shrink)
                else:
                    delta[j] = _delta(gram / rows, cross / rows, beta[j], cfg.skip_timing_shrink, eye)
        out[t] = delta
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


def _group_multipliers(
    gram: torch.Tensor, cross: torch.Tensor, b: torch.Tensor, kappa: float
) -> torch.Tensor:
    r"""(G,): from the weighted mean normal equations :math:`\bar G, \bar c` of one horizon, in its group
    basis ``b``: multipliers :math:`m = (\bar G_B + \kappa D)^{-1}(\bar c_B + \kappa D 1)` of the sub-scores
    (:math:`\bar G_B = B^\top \bar G B`, D its diagonal); the input weights change by :math:`B(m - 1)`.

    A sub-score that is zero on every row (all its skip weights zero, as in an untrained model) has a zero
    row and column in :math:`\bar G_B`: its multiplier is 1 exactly and it is left out of the solve, which
    a GPU's solver would otherwise refuse as singular."""
    g = b.T @ gram @ b
    c = b.T @ cross
    diag = g.diagonal()
    live = diag > 0
    m = torch.ones_like(live, dtype=b.dtype)
    if not bool(live.any()):
        return m
    g, c, diag = g[live][:, live], c[live], diag[live]
    d = torch.diag(diag.clamp_min(1e-12 * float(diag.max())))
    m[live] = torch.linalg.solve(g + kappa * d, c + kappa * d.sum(1))
    return m


def _group_delta(gram: torch.Tensor, cross: torch.Tensor, b: torch.Tensor, kappa: float) -> torch.Tensor:
    """(d,): the input weights' change :math:`B(m - 1)` of :func:`_group_multipliers`."""
    return b @ (_group_multipliers(gram, cross, b, kappa) - 1)


def _delta(
    gram: torch.Tensor, cross: torch.Tensor, beta: torch.Tensor, kappa: float, eye: torch.Tensor
) -> torch.Tensor:
    """(d,): one horizon's timed weights minus its trained ones ``beta``."""
    return torch.linalg.solve(gram + kappa * eye, cross + kappa * beta) - beta


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
