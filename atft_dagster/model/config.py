"""Every size and switch of ATFT-GAT-FAN, its loss and its training, in one typed config.

Flat on purpose: the Dagster config of the training asset inherits from it, so the launchpad, the MLflow
params and the checkpoint all show the same resolved values.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from atft_dagster.horizons import HORIZONS

# Where the defaults that cite no other row were measured on the selection window.
SWEEP8_DOC = "docs/benchmarks.md, eighth sweep"

# Fields added after checkpoints were already written, with the value that reproduces those checkpoints.
BEFORE_FIELD_EXISTED: dict[str, object] = {
    "input_skip": False,
    "select_per_horizon": False,
    "skip_ridge_penalties": [],
    "skip_lr_scale": 1.0,
    "skip_refit_through_validation": False,
    "skip_timing_half_life": 0.0,
    "skip_timing_gate": False,
    "deployment_refit": False,
    "keep_start_from": None,
}
# Renamed fields: the old name (still in recorded configs and sweep rows) -> how its value reads now.
LEGACY_FIELDS = {"skip_ridge_penalty": ("skip_ridge_penalties", lambda p: [] if p is None else [p])}


def rename_legacy(values: dict) -> dict:
    """``values`` with every old field name replaced by its new one (both at once is an error)."""
    out = dict(values)
    for old, (new, convert) in LEGACY_FIELDS.items():
        if old in out:
            if new in out:
                raise ValueError(f"{old} is the old name of {new}: give one of them")
            out[new] = convert(out.pop(old))
    return out


class TrainingConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    @classmethod
    def from_recorded(cls, recorded: dict) -> TrainingConfig:
        """The config a checkpoint or run recorded; fields it predates take the value it was built with."""
        return cls(**{**BEFORE_FIELD_EXISTED, **rename_legacy(recorded)})

    # ---- model ------------------------------------------------------------------------------
    hidden: int = Field(64, ge=4, description="Width of every hidden representation.")
    seq_len: int = Field(20, ge=2, description="L: trading days of history per sample.")
    lstm_layers: int = Field(
        1, ge=1, description=f"LSTM layers of the temporal encoder (2 lost, {SWEEP8_DOC})."
    )
    attn_heads: int = Field(
        4, ge=1, description=f"Heads of the causal temporal self-attention (halved heads lost, {SWEEP8_DOC})."
    )
    gat_heads: list[int] = Field(
        default=[4, 2],
        description=f"Heads of the two GATv2Conv layers ([2, 1] with 2 attention heads lost, {SWEEP8_DOC}; "
        "[2, 1] alone lost too, docs/benchmarks.md, ninth sweep).",
    )
    dropout: float = Field(
        0.1, ge=0, lt=1, description=f"0 ties on the selection window, 0.3 lost ({SWEEP8_DOC})."
    )
    use_graph: bool = Field(True, description="Graph block on/off (off = the no-graph baseline).")
    gate_init: float = Field(
        0.5, gt=0, lt=1, description=f"Initial value of the graph fusion gate (0.2 ties, {SWEEP8_DOC})."
    )
    graph_raw_inputs: bool = Field(
        True,
        description="The first graph layer also reads each stock's last-day inputs (not only the encoding).",
    )
    input_skip: bool = Field(
        True,
        description="A linear path from the last day's inputs to every horizon's prediction (wide & deep); "
        "with select_per_horizon, chosen on the selection window (docs/benchmarks.md, model variants).",
    )
    skip_neighbour_mean: bool = Field(
        True,
        description="With the graph and the skip on, the skip also reads the neighbours' weighted mean of the "
        "last day's inputs.",
    )
    neighbour_weight_power: float = Field(
        2.0, ge=0, description="p: an edge weighs max(corr, 0)^p in that neighbour mean (0 = plain mean)."
    )
    skip_ridge_penalties: list[float] = Field(
        default=[0.1, 0.3, 1.0, 3.0, 10.0],
        description="The input skip starts at the ridge solution on the train window, penalty per row, and the "
        "deep point head at zero (training/skip_init.py). Several values: per horizon, the one whose start "
        "scores the best validation RankIC (beat the fixed 3 on both tuning markets, docs/benchmarks.md, tenth "
        "sweep); one value: that penalty for every horizon; empty: no ridge start.",
    )
    skip_refit_through_validation: bool = Field(
        True,
        description="After training, each horizon that kept the ridge start (epoch -1) has its skip refitted "
        "at its chosen penalty on every usable date from the first train day to the last validation day "
        "(train, purge gap and validation: 461 instead of 336 days at the defaults). Every choice is made "
        "before, on the train fit; the selection and test windows are never read (docs/benchmarks.md, "
        "eleventh sweep).",
    )
    deployment_refit: bool = Field(
        True,
        description="After training, fold 0's members also get a deployed checkpoint: each horizon that kept "
        "the ridge start refitted, at the penalty it chose, on every date whose label has ended "
        "(training/deploy.py). Daily predictions for days from the data's last date on use it; earlier days "
        "and every report figure use the evaluated checkpoint. On: the tuning markets' selection windows "
        "(docs/benchmarks.md, fortieth sweep).",
    )
    skip_timing_half_life: float = Field(
        20.0,
        ge=0,
        description="Factor timing (training/skip_timing.py): > 0 scores each date with skip weights refitted "
        "on the labels ended by that date, weighted by this half-life in trading days and shrunk towards the "
        "trained skip; 0 = off, the skip's weights are fixed. 20 won at 1 day on both realistic tuning "
        "markets (docs/benchmarks.md, twelfth sweep); on by default behind skip_timing_gate, which keeps it "
        "off where strengths do not drift (seventeenth sweep).",
    )
    skip_timing_shrink: float = Field(
        1.0,
        gt=0,
        description="kappa: how hard the timed weights are pulled towards the trained ones (larger = closer "
        "to a fixed skip): in the 'groups' basis times each sub-score's variance, in 'inputs' per row. 1 had "
        "the best mean over the four tuning markets at half-life 20 (twelfth sweep).",
    )
    skip_timing_basis: str = Field(
        "groups",
        pattern="^(groups|inputs)$",
        description="What timing re-weights: 'groups' = one multiplier per feature group of the skip's "
        "sub-scores (own inputs and neighbour means apart, about 20), shrunk towards 1 with kappa relative to "
        "each sub-score's variance; 'inputs' = every skip weight (a ridge in 348 dimensions). Groups scored "
        "higher on both realistic tuning markets and lost less on the demo ones (twelfth sweep).",
    )
    skip_timing_horizons: list[int] = Field(
        default=[1],
        description="The horizons skip timing applies to (the others keep the trained skip): a 1-day label "
        "is known the next day, an h-day one h days late and overlapping its neighbours (timed 5-20 days "
        "won on one realistic tuning market and lost on the other, twelfth sweep).",
    )
    skip_timing_gate: bool = Field(
        True,
        description="With skip timing on: time a date only if timing has paid over the history so far, by a "
        "point-in-time backtest (training/skip_timing.py, 'Gate'): an expanding ridge over the ended labels, "
        "re-weighted per group by recent dates (timed) and by all dates (static), predicts each earlier "
        "date; on iff the timed version's mean gain in daily correlation with the label, over the dates "
        "whose label has ended, is clearly > 0 (skip_timing_gate_min_t). On: the tuning markets' selection "
        "windows, +0.0025 on the mean of four, none lower (docs/benchmarks.md, seventeenth sweep).",
    )
    skip_timing_gate_min_t: float = Field(
        2.0,
        description="With skip_timing_gate: timing is on where the t-statistic of the backtest's mean gain "
        "(mean over its Newey-West standard error with lag h - 1, the ended dates) exceeds this. 0 = any positive mean gain, which timed "
        "a constant-strength demo tuning market on noise (seventeenth sweep); 1 and 3 measured against 2 on "
        "the four tuning selection windows: +0.0001 and -0.0013 on their mean (eighteenth sweep).",
    )
    skip_timing_gate_burn_in: int = Field(
        60,
        ge=1,
        description="With skip_timing_gate: ended dates before the gate's backtest starts scoring (30 and 120 "
        "gave the tuning selection windows the same figures, eighteenth sweep).",
    )
    skip_timing_gate_penalty: float = Field(
        0.3,
        gt=0,
        description="With skip_timing_gate: the per-row ridge penalty of the backtest's expanding reference "
        "ridge (set a priori near the 1-day penalties the ridge start picks, 0.1-0.3; 0.1 and 1 gave the tuning "
        "selection windows the same figures, eighteenth sweep).",
    )
    skip_lr_scale: float = Field(
        0.0,
        ge=0,
        description="The input skip learns at lr times this; 0 = it stays at its ridge start and the deep path "
        "learns the residual (chosen on the selection window, docs/benchmarks.md, model variants).",
    )
    use_fan: bool = Field(
        True, description=f"Frequency adaptive normalisation of the input window (off lost, {SWEEP8_DOC})."
    )
    fan_top_k: int = Field(
        2, ge=1, description=f"FAN: dominant Fourier components removed per feature (4 lost, {SWEEP8_DOC})."
    )
    use_san: bool = Field(
        False, description=f"Slice adaptive normalisation of the input window (on lost, {SWEEP8_DOC})."
    )
    san_slices: int = Field(4, ge=1, description="SAN: slices the window is cut into.")
    quantiles: list[float] = Field(
        default=[0.1, 0.25, 0.5, 0.75, 0.9],
        description=f"Quantiles of the pinball loss ([0.5] alone lost, {SWEEP8_DOC}).",
    )
    horizons: list[int] = Field(default=list(HORIZONS))
    horizon_weights: list[float] = Field(
        default=[1.0, 0.5, 0.25, 0.25],
        description="The loss's weight per horizon, normalised to sum 1. Equal weights and a long-tilted "
        "[0.25, 0.25, 0.5, 1] lost on the demo tuning markets' selection windows (docs/benchmarks.md, "
        "twenty-third sweep).",
    )

    # ---- loss -------------------------------------------------------------------------------
    # the regression terms alone lost on the selection window; the ranking terms alone tied (eighth sweep)
    w_huber: float = Field(1.0, ge=0)
    w_pinball: float = Field(0.5, ge=0)
    w_rank_ic: float = Field(0.5, ge=0)
    w_ic: float = Field(0.5, ge=0)
    w_sharpe: float = Field(0.1, ge=0)
    huber_delta: float = Field(1.0, gt=0, description=f"0.5 ties ({SWEEP8_DOC}).")
    soft_rank_temperature: float = Field(
        0.1,
        gt=0,
        description=f"Sigmoid temperature of the soft ranks (in label z units; 0.3 ties, {SWEEP8_DOC}).",
    )
    label_clip: float = Field(
        3.0,
        gt=0,
        description=f"Labels are z-scored per date and clipped for Huber/pinball (5 lost, {SWEEP8_DOC}).",
    )

    # ---- data and split ---------------------------------------------------------------------
    input_clip: float = Field(
        5.0,
        gt=0,
        description=f"Inputs: per-date robust z-score clipped at this value (3 lost, {SWEEP8_DOC}).",
    )
    val_days: int = Field(100, ge=5, description="Validation window: early stopping and checkpoint choice.")
    selection_days: int = Field(
        100,
        ge=5,
        description="Selection window after validation: champion promotion and every comparison between models.",
    )
    test_days: int = Field(120, ge=5, description="Test window: reported only, never used for a decision.")
    purge_days: int | None = Field(None, ge=0, description="Gap between splits; None = longest horizon.")
    embargo_days: int = Field(5, ge=0, description="Extra gap after the purge.")
    n_folds: int = Field(
        1,
        ge=1,
        description="Walk-forward folds; each shifts the split back by selection + test + 2 gaps, so no test "
        "window overlaps a selection window.",
    )
    fold_scheme: str = Field("expanding", pattern="^(expanding|rolling)$")
    min_stocks_per_date: int = Field(
        20, ge=2, description="Dates with fewer stocks are skipped (and counted)."
    )

    # ---- optimisation -----------------------------------------------------------------------
    epochs: int = Field(
        12,
        ge=1,
        description="Upper bound on epochs; the cosine schedule spans them. With the current defaults every "
        "horizon's best validation epoch is 0-1 (inside the warm-up), so 12 with patience 6 gives the same model "
        "as 5 with patience 2 (docs/benchmarks.md, seventh sweep).",
    )
    batch_dates: int = Field(
        4, ge=1, description=f"Whole dates per batch (never partial cross-sections; 8 lost, {SWEEP8_DOC})."
    )
    lr: float = Field(
        3e-4,
        gt=0,
        description="Peak learning rate (3e-4 beat 1e-3 on the selection window, docs/benchmarks.md).",
    )
    weight_decay: float = Field(1e-4, ge=0, description=f"AdamW's; 1e-3 gives the same model ({SWEEP8_DOC}).")
    warmup_epochs: int = Field(
        2,
        ge=0,
        description=f"Linear warm-up before the cosine decay; 0 ties (better on one market, worse on the other, {SWEEP8_DOC}).",
    )
    grad_clip: float = Field(
        1.0, gt=0, description=f"Global gradient-norm clip; 5 gives the same model ({SWEEP8_DOC})."
    )
    patience: int = Field(6, ge=1, description="Epochs without a better validation RankIC before stopping.")
    primary_horizon: int = Field(1, description="Champion metric horizon; the report's headline.")
    early_stopping_weights: list[float] | None = Field(
        None,
        description="Weights of the per-horizon validation RankICs whose weighted mean drives early stopping and "
        "the best checkpoint (normalised to sum 1); None = equal weights over all horizons (chosen on the "
        "selection window, docs/benchmarks.md). [1, 0, 0, 0] stops on the 1-day head alone.",
    )
    select_per_horizon: bool = Field(
        True,
        description="Each horizon's predictions come from the epoch whose validation RankIC was best for that "
        "horizon (the long heads peak earlier than the 1-day head); off = one epoch for all, by the "
        "stopping metric. Early stopping waits until no horizon has improved for patience epochs.",
    )
    keep_start_from: int | None = Field(
        5,
        ge=1,
        description="Horizons of at least this many days always predict from the ridge start (epoch -1, "
        "refitted like any kept start), whatever validation says; training, early stopping and the shorter "
        "horizons' choices are unchanged. It acts where a ridge start competes (select_per_horizon, input_skip, "
        "skip_ridge_penalties). Validation's trained 5-20-day epochs ranked less like the truth than the start "
        "on both presets' tuning markets (docs/benchmarks.md, forty-fifth sweep); None = every horizon chooses "
        "on validation.",
    )
    seed: int = 42
    ensemble_seeds: int = Field(
        3,
        ge=1,
        description="Training seeds per fold (seed, seed+1, ...); the model's score is the per-date mean of "
        "the members' cross-sectional ranks. 1 ties 3 on the selection window at a third of the time, so 1 is "
        f"a fair choice where time matters ({SWEEP8_DOC}).",
    )
    cuda_row_bucket: int = Field(
        1024,
        ge=0,
        description="On a GPU, each batch is padded with empty rows (no inputs, no edges, not in the loss) up to a "
        "multiple of this, so batch shapes repeat and per-shape kernel set-up (cuDNN's LSTM plans) is paid once; "
        "0 = off. Real rows' outputs do not depend on it.",
    )
    keep_last_checkpoints: int = Field(2, ge=1, description="Retention: the best plus this many latest.")
    min_prediction_std: float = Field(
        1e-6, gt=0, description="Below this cross-sectional std the model has collapsed."
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_names(cls, data: object) -> object:
        return rename_legacy(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        if len(self.horizon_weights) != len(self.horizons):
            raise ValueError("horizon_weights must have one weight per horizon")
        w = self.early_stopping_weights
        if w is not None and (len(w) != len(self.horizons) or min(w) < 0 or sum(w) <= 0):
            raise ValueError("early_stopping_weights: one non-negative weight per horizon, not all zero")
        if self.primary_horizon not in self.horizons:
            raise ValueError("primary_horizon must be one of horizons")
        if self.hidden % self.attn_heads:
            raise ValueError("hidden must be divisible by attn_heads")
        if any(p < 0 for p in self.skip_ridge_penalties):
            raise ValueError("skip_ridge_penalties must be >= 0")
        if self.skip_timing_half_life > 0 and not self.input_skip:
            raise ValueError("skip_timing_half_life needs the input skip (input_skip); 0 turns timing off")
        if not set(self.skip_timing_horizons) <= set(self.horizons):
            raise ValueError("skip_timing_horizons must be among horizons")
        if len(self.gat_heads) != 2:
            raise ValueError("gat_heads lists the heads of the two GATv2Conv layers")
        if sorted(self.quantiles) != list(self.quantiles) or not all(0 < q < 1 for q in self.quantiles):
            raise ValueError("quantiles must be increasing, in (0, 1)")
        return self

    @property
    def purge(self) -> int:
        return max(self.horizons) if self.purge_days is None else self.purge_days

    def start_kept_horizons(self) -> list[int]:
        """The horizons that always predict from the ridge start (``keep_start_from``)."""
        if self.keep_start_from is None:
            return []
        return [h for h in self.horizons if h >= self.keep_start_from]

    def stopping_weights(self) -> dict[str, float]:
        """Horizon label ("1d") -> weight of its validation RankIC in the early-stopping metric."""
        w = self.early_stopping_weights or [1.0] * len(self.horizons)
        return {f"{h}d": x / sum(w) for h, x in zip(self.horizons, w, strict=True)}

    def normalised_horizon_weights(self) -> list[float]:
        total = sum(self.horizon_weights)
        return [w / total for w in self.horizon_weights]
