"""Training: whole-date batches, AdamW with warm-up and cosine decay, gradient clipping, optional bf16,
early stopping on the validation mean daily RankIC (primary horizon, or a weighted mean over horizons), a degeneracy guard, atomic
checkpoints with retention, and resumption of a killed run."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from atft_dagster.model.atft import ATFTGATFAN, HorizonSelected, ModelOutput
from atft_dagster.model.config import TrainingConfig
from atft_dagster.model.loss import MultiHorizonLoss, pad_by_date
from atft_dagster.training.checkpoint import BEST, LAST, epoch_path, load_checkpoint, retain, save_checkpoint
from atft_dagster.training.data import Batch, PanelDates, PanelTensors
from atft_dagster.training.ic import daily_ic_device
from atft_dagster.training.skip_init import choose_per_horizon, ridge_solutions, set_skip, zero_deep_head
from atft_dagster.training.skip_timing import TimingStatistics, timed_skip_deltas, timing_adjustment
from atft_dagster.training.split import Split, walk_forward

START = -1  # the epoch label of the ridge-started model before its first optimiser step


class DegenerateModelError(RuntimeError):
    """Predictions collapsed to a constant across stocks."""


def config_folds(data: PanelTensors | PanelDates, cfg: TrainingConfig) -> list[Split]:
    """The walk-forward folds the config asks for, over the dates with enough stocks."""
    return walk_forward(
        data.usable_dates(cfg.min_stocks_per_date),
        cfg.val_days,
        cfg.test_days,
        cfg.purge,
        cfg.embargo_days,
        cfg.n_folds,
        cfg.fold_scheme,
        cfg.selection_days,
    )


@dataclass
class EpochLog:
    epoch: int
    seconds: float
    samples_per_second: float
    lr: float
    loss: dict[str, float]
    val_rank_ic: dict[str, float]
    val_ic: dict[str, float]
    prediction_std: float
    gate: float
    grad_norms: dict[str, float]
    phase_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    best_epoch: int
    best_val_rank_ic: float
    epochs_run: int
    n_parameters: int
    seconds_per_epoch: float
    samples_per_second: float
    device: str
    best_checkpoint: str
    history: list[dict] = field(default_factory=list)
    resumed_from_epoch: int | None = None
    horizon_epochs: dict[str, int | None] | None = None  # select_per_horizon: each horizon's chosen epoch
    start_validation: dict[str, dict[str, float]] | None = None  # the ridge start's, before any step
    skip_refit: dict[str, Any] | None = None  # skip_refit_through_validation: what was refitted, on what

    def chosen_validation(self, metric: str = "val_rank_ic") -> dict[str, float]:
        """Per horizon, the validation figure of the epoch that horizon's predictions come from
        (``START``: the ridge-started model before its first step)."""
        best = self.history[self.best_epoch][metric]
        if self.horizon_epochs is None:
            return dict(best)
        out = {}
        for k, v in best.items():
            e = self.horizon_epochs[k]
            if e == START and self.start_validation is not None:
                out[k] = self.start_validation[metric][k]
            else:
                out[k] = self.history[e][metric][k] if e is not None and e >= 0 else v
        return out


def _schedule(cfg: TrainingConfig, steps_per_epoch: int) -> Callable[[int], float]:
    warm = cfg.warmup_epochs * steps_per_epoch
    total = max(cfg.epochs * steps_per_epoch, 1)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(total - warm, 1))))

    return factor


def native_cpu_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX), by its Linux ``/proc/cpuinfo`` flags;
    elsewhere (unknown) False. Without them bf16 autocast on the CPU is emulated and slower than fp32."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set(cpuinfo.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _autocast(device: torch.device, precision: str):
    """bf16 autocast on either device (a CPU runs it natively with AVX512-BF16 or AMX), else none."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _forward(model: ATFTGATFAN | HorizonSelected, batch, device: torch.device, precision: str):
    """The model on a batch; on a GPU the rows are padded to ``cuda_row_bucket`` and the padding cut off."""
    x, mask, n = batch.x, batch.mask, batch.x.shape[0]
    bucket = model.cfg.cuda_row_bucket if device.type == "cuda" else 0
    if bucket and n % bucket:
        extra = bucket - n % bucket
        x, mask = F.pad(x, (0, 0, 0, 0, 0, extra)), mask.pad(extra)
    with _autocast(device, precision):
        out = model(
            x,
            mask,
            batch.edge_index if model.graph is not None else None,
            batch.edge_attr if model.graph is not None else None,
        )
    if x.shape[0] == n:
        return out
    return ModelOutput(out.point[:n], out.quantiles[:n], out.feature_weights[:n], out.gate)


def _outputs(
    model: ATFTGATFAN | HorizonSelected,
    data: PanelTensors,
    date_indices: list[int],
    batch_dates: int,
    precision: str,
) -> Iterator[tuple[Batch, ModelOutput]]:
    """The model in eval mode over ``date_indices``, ``batch_dates`` dates at a time."""
    model.eval()
    for i in range(0, len(date_indices), batch_dates):
        batch = data.batch(date_indices[i : i + batch_dates])
        yield batch, _forward(model, batch, data.device, precision)


@torch.no_grad()
def predict(
    model: ATFTGATFAN | HorizonSelected,
    data: PanelTensors,
    date_indices: list[int],
    batch_dates: int,
    precision: str = "fp32",
    timing: TimingStatistics | None = None,
) -> pl.DataFrame:
    """Point predictions and quantiles for every stock of every date: one row per (date, code); with
    ``skip_timing_half_life`` > 0 the skip's part follows its inputs' recent payoff (training/skip_timing.py;
    ``timing``: statistics computed once for several models on the same data and dates)."""
    cfg = model.cfg
    timed = cfg.skip_timing_half_life > 0 and bool(date_indices)
    deltas = timed_skip_deltas(model, data, date_indices, timing) if timed else {}
    points, quants, labels, dates, codes = [], [], [], [], []
    for k, (batch, out) in enumerate(_outputs(model, data, date_indices, batch_dates, precision)):
        point, quant = out.point.float(), out.quantiles.float()
        if timed:
            chunk = date_indices[k * batch_dates : (k + 1) * batch_dates]
            adjust = timing_adjustment(model, batch, deltas, chunk).float()
            point, quant = point + adjust, quant + adjust[..., None]
        points.append(point)
        quants.append(quant)
        labels.append(batch.y)
        dates += [d for d, c in zip(batch.dates, batch.counts, strict=True) for _ in range(c)]
        codes += batch.codes
    if not points:
        return pl.DataFrame()
    point = torch.cat(points).cpu().numpy()
    q = torch.cat(quants).cpu().numpy()
    y = torch.cat(labels).cpu().numpy()
    cols: dict[str, Any] = {"date": pl.Series(dates, dtype=pl.Date), "code": np.concatenate(codes)}
    for j, h in enumerate(cfg.horizons):
        cols[f"pred_{h}d"] = point[:, j]
        cols[f"label_{h}d"] = y[:, j]
        for qi, level in enumerate(cfg.quantiles):
            cols[f"q{int(round(level * 100)):02d}_{h}d"] = q[:, j, qi]
    return pl.DataFrame(cols)


@torch.no_grad()
def evaluate(
    model: ATFTGATFAN, data: PanelTensors, date_indices: list[int], batch_dates: int, precision: str = "fp32"
) -> tuple[dict[str, float], dict[str, float], float]:
    """Mean daily RankIC and IC per horizon, and the mean cross-sectional std of the primary prediction,
    computed on the device (one transfer of a few numbers at the end)."""
    cfg = model.cfg
    points, labels, counts = [], [], []
    for batch, out in _outputs(model, data, date_indices, batch_dates, precision):
        points.append(out.point.float())
        labels.append(batch.y)
        counts += batch.counts
    point, y = torch.cat(points), torch.cat(labels)
    stats = []
    for j in range(len(cfg.horizons)):
        for rank in (True, False):
            daily = daily_ic_device(point[:, j], y[:, j], counts, cfg.min_stocks_per_date, rank)
            stats.append(daily.nanmean())
    primary = cfg.horizons.index(cfg.primary_horizon)
    spread = pad_by_date(point[:, primary].double(), counts, torch.nan)
    stats.append(torch.nanmean(_nanstd(spread)))
    values = torch.stack(stats).cpu().tolist()
    rank_ic = {f"{h}d": values[2 * j] for j, h in enumerate(cfg.horizons)}
    ic = {f"{h}d": values[2 * j + 1] for j, h in enumerate(cfg.horizons)}
    return rank_ic, ic, values[-1]


def _nanstd(x: torch.Tensor) -> torch.Tensor:
    """Per row, the sample standard deviation (ddof 1) of the finite entries."""
    ok = torch.isfinite(x)
    n = ok.sum(1)
    x0 = torch.where(ok, x, 0.0)
    mu = x0.sum(1) / n.clamp(min=1)
    var = (torch.where(ok, x - mu[:, None], 0.0) ** 2).sum(1) / (n - 1).clamp(min=1)
    return torch.where(n >= 2, var.sqrt(), torch.full_like(var, torch.nan))


def stopping_metric(rank_ic: dict[str, float], cfg: TrainingConfig) -> float:
    """The weighted mean of the per-horizon validation RankICs that early stopping maximises."""
    return float(sum(w * rank_ic[h] for h, w in cfg.stopping_weights().items()))


def _grad_norms(model: ATFTGATFAN) -> dict[str, torch.Tensor]:
    """Per block, the L2 norm of its gradient, as device scalars (no host sync)."""
    out = {}
    for name, block in model.blocks().items():
        grads = [p.grad.detach() for p in block.parameters() if p.grad is not None]
        norms = torch._foreach_norm(grads) if grads else []
        out[name] = torch.linalg.vector_norm(torch.stack(norms).float()) if norms else torch.zeros(())
    return out


class PhaseTimer:
    """Wall time per training phase; with ``sync`` it waits for the device at each phase boundary
    (accurate per-phase figures, slower steps), else it only reads the clock."""

    PHASES = ("batch", "forward", "backward", "optimiser")

    def __init__(self, device: torch.device, sync: bool):
        self.sync = sync and device.type == "cuda"
        self.seconds = dict.fromkeys(self.PHASES, 0.0)
        self._t = time.perf_counter()

    def mark(self, phase: str) -> None:
        if self.sync:
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.seconds[phase] += now - self._t
        self._t = now


class _PerHorizonBest:
    """Per horizon, the best validation RankIC so far, its epoch (``START`` for the ridge-started model
    before any step, None while it never scored), and the weights of every epoch still chosen (by a horizon
    or by the stopping metric), kept in memory and in each checkpoint."""

    def __init__(self, labels: list[str], pinned: frozenset[int] = frozenset()):
        self.best = dict.fromkeys(labels, -math.inf)
        self.epochs: dict[str, int | None] = dict.fromkeys(labels)
        self.states: dict[int, dict[str, torch.Tensor]] = {}
        self.pinned = pinned  # epochs whose weights are kept even while no horizon chooses them

    def restore(self, ck: dict[str, Any]) -> None:
        self.best, self.epochs = dict(ck["horizon_best"]), dict(ck["horizon_epochs"])
        self.states = dict(ck["horizon_states"])

    def last_gain(self, best_epoch: int) -> int:
        return max([best_epoch, *(e for e in self.epochs.values() if e is not None)])

    def update(
        self, epoch: int, rank_ic: dict[str, float], model: nn.Module, improved: bool, best_epoch: int
    ) -> bool:
        gained = [k for k in self.best if rank_ic[k] > self.best[k]]
        for k in gained:
            self.best[k], self.epochs[k] = rank_ic[k], epoch
        if gained or improved:
            self.states[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        keep = set(self.epochs.values()) | {best_epoch, epoch} | self.pinned
        self.states = {e: v for e, v in self.states.items() if e in keep}
        return bool(gained)

    def keep_start(self, labels: list[str], start_rank_ic: dict[str, float], best_epoch: int) -> dict:
        """``labels`` take the ridge start whatever validation chose; returns validation's own choices."""
        chosen = {k: self.epochs[k] for k in labels}
        for k in labels:
            self.best[k], self.epochs[k] = start_rank_ic[k], START
        keep = set(self.epochs.values()) | {best_epoch}
        self.states = {e: v for e, v in self.states.items() if e in keep}
        return chosen

    def payload(self) -> dict[str, Any]:
        return {
            "horizon_best": dict(self.best),
            "horizon_epochs": dict(self.epochs),
            "horizon_states": self.states,
        }


# meta that names the run, not the training: a re-executed run (new run id) resumes the same training
RUN_META = ("dagster_run_id",)


def _stable(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if meta is None else {k: v for k, v in meta.items() if k not in RUN_META}


def train(
    data: PanelTensors,
    cfg: TrainingConfig,
    split: Split,
    out_dir: Path,
    meta: dict[str, Any],
    precision: str = "fp32",
    on_epoch: Callable[[EpochLog], None] | None = None,
    progress: bool = False,
    profile_phases: bool = False,
) -> TrainResult:
    """Train one fold. ``meta`` (feature manifest hash, graph config, ...) is stored in every checkpoint;
    a ``last.pt`` written for the same config, meta (``RUN_META`` aside) and split is resumed. ``profile_phases`` makes the
    per-phase times in each epoch's log exact on a GPU (it waits for the device between phases)."""
    device = data.device
    torch.manual_seed(cfg.seed)
    model = ATFTGATFAN(data.n_features, cfg).to(device)
    loss_fn = MultiHorizonLoss(cfg)
    # fused on either device: one kernel per parameter group (on 2 CPU cores 0.7-1.0 ms a step instead of
    # 4.2-5.8 ms for torch's default, docs/benchmarks.md); same update to float rounding
    opt = torch.optim.AdamW(_param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    steps = math.ceil(len(split.train) / cfg.batch_dates)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg, steps))
    identity = {"config": cfg.model_dump(), "meta": meta, "split": split.as_dict()}
    start_epoch, best, best_epoch, history, resumed = 0, -math.inf, -1, [], None
    per_horizon = None
    if cfg.select_per_horizon:
        pinned = frozenset({START}) if cfg.start_kept_horizons() else frozenset()
        per_horizon = _PerHorizonBest([f"{h}d" for h in cfg.horizons], pinned)
    last = out_dir / LAST
    if last.exists():
        ck = load_checkpoint(last, device)
        same = ck.get("config") == identity["config"] and ck.get("split") == identity["split"]
        if same and _stable(ck.get("meta")) == _stable(meta):
            model.load_state_dict(ck["state_dict"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            start_epoch, best, best_epoch, history = (
                ck["epoch"] + 1,
                ck["best_metric"],
                ck["best_epoch"],
                ck["history"],
            )
            torch.set_rng_state(ck["torch_rng"].cpu())  # dropout masks continue as if never stopped
            if per_horizon is not None:
                per_horizon.restore(ck)
            resumed = ck["epoch"]
    start_validation = None
    if resumed is None and cfg.input_skip and cfg.skip_ridge_penalties:
        start_validation = _ridge_start(model, data, split, cfg, precision, per_horizon)
    elif resumed is not None:
        start_validation = ck.get("start_validation")
    bar = None
    if progress:
        bar = tqdm(total=cfg.epochs, initial=start_epoch, desc="epochs")
    rng = np.random.default_rng(cfg.seed)
    for _ in range(start_epoch):
        rng.permutation(len(split.train))  # same shuffles as an uninterrupted run
    n_params = model.n_parameters()
    for epoch in range(start_epoch, cfg.epochs):
        last_gain = best_epoch if per_horizon is None else per_horizon.last_gain(best_epoch)
        if epoch - last_gain > cfg.patience and best_epoch >= 0:
            break
        model.train()
        t0 = time.perf_counter()
        timer = PhaseTimer(device, profile_phases)
        order = rng.permutation(len(split.train))
        sums: dict[str, torch.Tensor] = {}
        norms: dict[str, torch.Tensor] = {}
        samples = 0
        batches = tqdm(total=steps, desc=f"epoch {epoch}", unit="batch", leave=False) if bar else None
        for b in range(steps):
            ix = [split.train[i] for i in order[b * cfg.batch_dates : (b + 1) * cfg.batch_dates]]
            batch = data.batch(ix)
            timer.mark("batch")
            out = _forward(model, batch, device, precision)
            loss, terms = loss_fn(
                out.point.float(), out.quantiles.float(), batch.y, batch.date_index, batch.counts
            )
            timer.mark("forward")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            timer.mark("backward")
            for k, v in _grad_norms(model).items():
                norms[k] = norms.get(k, 0.0) + v / steps
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            samples += batch.x.shape[0]
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v / steps
            timer.mark("optimiser")
            if batches:
                batches.update(1)
        if batches:
            batches.close()
        seconds = time.perf_counter() - t0
        t_val = time.perf_counter()
        rank_ic, ic, std = evaluate(model, data, split.val, cfg.batch_dates, precision)
        phases = {**timer.seconds, "validation": time.perf_counter() - t_val}
        gate = float(model.graph.gate().detach().mean()) if model.graph is not None else 0.0
        log = EpochLog(
            epoch,
            seconds,
            samples / seconds,
            float(sched.get_last_lr()[0]),
            {k: float(v) for k, v in sums.items()},
            rank_ic,
            ic,
            std,
            gate,
            {k: float(v) for k, v in norms.items()},
            phases,
        )
        history.append(asdict(log))
        if not std > cfg.min_prediction_std:
            raise DegenerateModelError(
                f"epoch {epoch}: cross-sectional prediction std {std:.2e} <= {cfg.min_prediction_std:.0e}: predictions collapsed to a constant"
            )
        metric = stopping_metric(rank_ic, cfg)
        payload = {
            **identity,
            "state_dict": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "epoch": epoch,
            "history": history,
            "n_features": data.n_features,
            "feature_names": data.names,
            "torch_rng": torch.get_rng_state(),
        }
        improved = metric > best
        if improved:
            best, best_epoch = metric, epoch
        if per_horizon is not None:
            gained = per_horizon.update(epoch, rank_ic, model, improved, best_epoch)
            payload.update(per_horizon.payload(), start_validation=start_validation)
            if gained or improved:
                ref = best_epoch if best_epoch in per_horizon.states else epoch  # metric NaN so far
                best_payload = {**payload, "state_dict": per_horizon.states[ref], "epoch": ref}
                save_checkpoint(
                    {**best_payload, "best_metric": best, "best_epoch": best_epoch}, out_dir / BEST
                )
        elif improved:
            save_checkpoint({**payload, "best_metric": best, "best_epoch": best_epoch}, out_dir / BEST)
        payload.update(best_metric=best, best_epoch=best_epoch)
        save_checkpoint(payload, epoch_path(out_dir, epoch))
        save_checkpoint(payload, last)
        retain(out_dir, cfg.keep_last_checkpoints)
        if on_epoch:
            on_epoch(log)
        if bar:
            bar.update(1)
            bar.set_postfix(val_rank_ic=f"{metric:.4f}", best=f"{best:.4f}")
    if bar:
        bar.close()
    if cfg.start_kept_horizons() and start_validation is not None and per_horizon is not None:
        _keep_start(per_horizon, cfg, start_validation, best_epoch, out_dir / BEST, device)
    skip_refit = None
    if cfg.skip_refit_through_validation and start_validation is not None and per_horizon is not None:
        skip_refit = _refit_ridge_start(data, cfg, split, per_horizon, start_validation, out_dir / BEST)
    secs = [h["seconds"] for h in history] or [0.0]
    sps = [h["samples_per_second"] for h in history] or [0.0]
    return TrainResult(
        best_epoch,
        best,
        len(history),
        n_params,
        float(np.mean(secs)),
        float(np.mean(sps)),
        str(device),
        str(out_dir / BEST),
        history,
        resumed,
        dict(per_horizon.epochs) if per_horizon is not None else None,
        start_validation,
        skip_refit,
    )


def _param_groups(model: ATFTGATFAN, cfg: TrainingConfig) -> list[dict[str, Any]]:
    """One group at ``lr``; the input skip's at ``lr * skip_lr_scale`` (0: it stays where it started)."""
    skip = set(model.skip.parameters()) if model.skip is not None else set()
    groups = [{"params": [p for p in model.parameters() if p not in skip], "lr": cfg.lr}]
    if skip:
        groups.append({"params": list(model.skip.parameters()), "lr": cfg.lr * cfg.skip_lr_scale})
    return groups


def _ridge_start(
    model: ATFTGATFAN,
    data: PanelTensors,
    split: Split,
    cfg: TrainingConfig,
    precision: str,
    per_horizon: _PerHorizonBest | None,
) -> dict[str, dict[str, float]]:
    """The model starts as the linear graph model: the skip at its ridge solution on the train window and
    the deep point head at zero; with several ``skip_ridge_penalties`` each horizon takes the one whose start
    scores best on validation. With ``select_per_horizon`` that start is scored on the validation window and
    competes as epoch ``START``, so a horizon that training does not improve keeps the ridge start."""
    penalties = cfg.skip_ridge_penalties
    weights, _ = ridge_solutions(model, data, split.train, penalties, cfg.batch_dates)
    if len(weights) > 1:
        weight, chosen, _ = choose_per_horizon(model, weights, data, split.val, cfg.batch_dates)
    else:
        weight, chosen = weights[penalties[0]], {f"{h}d": penalties[0] for h in cfg.horizons}
    set_skip(model, weight)
    zero_deep_head(model)
    rank_ic, ic, _ = evaluate(model, data, split.val, cfg.batch_dates, precision)
    if per_horizon is not None:
        per_horizon.update(START, rank_ic, model, improved=False, best_epoch=START)
    return {"val_rank_ic": rank_ic, "val_ic": ic, "penalty": chosen}


def _keep_start(
    per_horizon: _PerHorizonBest,
    cfg: TrainingConfig,
    start_validation: dict[str, Any],
    best_epoch: int,
    best_path: Path,
    device: torch.device,
) -> None:
    """``keep_start_from``'s horizons predict from the ridge start: the best checkpoint is rewritten with that choice and
    with what validation had chosen (``validation_epochs``), after training, so early stopping is unchanged."""
    labels = [f"{h}d" for h in cfg.start_kept_horizons()]
    chosen = per_horizon.keep_start(labels, start_validation["val_rank_ic"], best_epoch)
    if not best_path.exists():
        return
    ck = load_checkpoint(best_path, device)
    save_checkpoint({**ck, **per_horizon.payload(), "validation_epochs": chosen}, best_path)


def refit_dates(data: PanelTensors, cfg: TrainingConfig, split: Split) -> list[int]:
    """Every usable date from the first train day to the last validation day (the purge gap included: its
    labels end before the validation window's last label does)."""
    lo, hi = split.train[0], split.val[-1]
    return [t for t in data.usable_dates(cfg.min_stocks_per_date) if lo <= t <= hi]


@torch.no_grad()
def _refit_ridge_start(
    data: PanelTensors,
    cfg: TrainingConfig,
    split: Split,
    per_horizon: _PerHorizonBest,
    start_validation: dict[str, Any],
    best_path: Path,
) -> dict[str, Any] | None:
    """The horizons that kept the ridge start get its skip refitted, at the penalty each chose, on
    ``refit_dates``; the best checkpoint is rewritten with that start. No choice is revisited."""
    kept = [k for k, e in per_horizon.epochs.items() if e == START]
    if not kept or START not in per_horizon.states or not best_path.exists():
        return None
    model = ATFTGATFAN(data.n_features, cfg).to(data.device)
    model.load_state_dict(per_horizon.states[START])
    dates = refit_dates(data, cfg, split)
    penalties = sorted({start_validation["penalty"][k] for k in kept})
    weights, rows = ridge_solutions(model, data, dates, penalties, cfg.batch_dates)
    skip = model.skip.lin.weight.clone()
    for j, h in enumerate(cfg.horizons):
        if f"{h}d" in kept:
            skip[j] = weights[start_validation["penalty"][f"{h}d"]][j].to(skip.dtype)
    set_skip(model, skip)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    record = {
        "horizons": kept,
        "dates": [str(data.dates[dates[0]]), str(data.dates[dates[-1]])],
        "days": len(dates),
        "train_days": len(split.train),
        "rows": {k: rows[k] for k in kept},
    }
    ck = load_checkpoint(best_path, data.device)
    ck["horizon_states"] = {**ck["horizon_states"], START: state}
    if ck.get("epoch") == START:
        ck["state_dict"] = state
    save_checkpoint({**ck, "skip_refit": record}, best_path)
    return record


def load_model(
    path: Path, device: str | torch.device = "cpu"
) -> tuple[ATFTGATFAN | HorizonSelected, dict[str, Any]]:
    """The checkpoint's model in eval mode; with ``select_per_horizon``, each horizon from its chosen epoch."""
    ck = load_checkpoint(path, device)
    cfg = TrainingConfig.from_recorded(ck["config"])

    def build(state: dict[str, torch.Tensor]) -> ATFTGATFAN:
        model = ATFTGATFAN(ck["n_features"], cfg).to(device)
        model.load_state_dict(state)
        return model.eval()

    states = ck.get("horizon_states")
    if not (cfg.select_per_horizon and states):
        return build(ck["state_dict"]), ck
    chosen = [ck["horizon_epochs"][f"{h}d"] for h in cfg.horizons]
    chosen = [e if e in states else ck["best_epoch"] for e in chosen]  # a horizon that never scored (None)
    distinct = sorted(set(chosen))
    if len(distinct) == 1:
        return build(states[distinct[0]]), ck
    members = [build(states[e]) for e in distinct]
    return HorizonSelected(members, [distinct.index(e) for e in chosen]).eval(), ck
