"""Training: walk-forward splits with purge, checkpoints, resumption, degeneracy guard, leakage canary."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
import torch

from atft_dagster.evaluation.metrics import daily_ic, evaluate_predictions
from atft_dagster.evaluation.selection import TrainedFold, compare_on_selection
from atft_dagster.features import compute_features, default_registry
from atft_dagster.graph import build_stock_graph
from atft_dagster.market import SyntheticMarketConfig, pure_noise_market
from atft_dagster.model import ATFTGATFAN, TrainingConfig
from atft_dagster.panel import build_market_panel
from atft_dagster.sources import SyntheticSource
from atft_dagster.training.checkpoint import BEST, LAST, load_checkpoint
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ensemble import ensemble_predict, member_seeds
from atft_dagster.training.split import Split, all_test_dates, walk_forward
from atft_dagster.training.train import (
    DegenerateModelError,
    _forward,
    config_folds,
    evaluate,
    load_model,
    native_cpu_bf16,
    predict,
    stopping_metric,
    train,
)

FAST = dict(
    hidden=16,
    seq_len=8,
    attn_heads=2,
    epochs=2,
    val_days=20,
    selection_days=20,
    test_days=30,
    batch_dates=8,
    min_stocks_per_date=10,
    keep_last_checkpoints=1,
)


def _tensors(market: SyntheticMarketConfig, cfg: TrainingConfig):
    src = SyntheticSource(market)
    d = src.history_days()
    panel = build_market_panel(
        src.daily_quotes(d[0], d[-1]), src.sector_master(d[-1]), src.calendar(d[0], d[-1])
    )
    topix = src.topix(d[0], d[-1])
    reg = default_registry()
    feats, _ = compute_features(panel, topix, src.calendar(d[0], d[-1] + timedelta(days=120)), reg)
    return (
        PanelTensors(feats, reg, build_stock_graph(panel, topix), cfg.horizons, cfg.seq_len, cfg.input_clip),
        reg,
        feats,
    )


@pytest.fixture(scope="module")
def setup():
    cfg = TrainingConfig(**FAST)
    data, reg, feats = _tensors(SyntheticMarketConfig(seed=8, n_stocks=40, n_days=220), cfg)
    split = config_folds(data, cfg)[0]
    return cfg, data, reg, split, feats


def test_walk_forward_four_windows_gaps_and_folds():
    usable = list(range(10, 900))
    folds = walk_forward(usable, val_days=50, test_days=60, purge=20, embargo=5, n_folds=3, selection_days=40)
    for f in folds:
        assert max(f.train) < min(f.val) < min(f.selection) < min(f.test)
        assert len(f.val) == 50 and len(f.selection) == 40 and len(f.test) == 60
        # purge + embargo dates skipped between every pair of windows
        assert min(f.val) - max(f.train) > 25 and min(f.selection) - max(f.val) > 25
        assert min(f.test) - max(f.selection) > 25
    assert folds[1].test[-1] < folds[0].test[0]
    tests = all_test_dates(folds)
    for f in folds:  # no date is a test date of one fold and a selection date of another
        assert not tests & set(f.selection)
    assert folds[1].test[-1] < folds[0].selection[0] - 25
    rolling = walk_forward(usable, 50, 60, 20, 5, n_folds=2, scheme="rolling", selection_days=40)
    assert len(rolling[1].train) == len(rolling[0].train) and rolling[1].train[0] < rolling[0].train[0]
    assert Split.from_dict(folds[0].as_dict()) == folds[0]
    assert TrainingConfig().purge == 20 and TrainingConfig(horizons=[1, 5], horizon_weights=[1, 1]).purge == 5
    with pytest.raises(ValueError, match="not enough dates"):
        walk_forward(list(range(100)), 50, 60, 20, 5)


def test_training_writes_checkpoints_and_logs(setup, tmp_path):
    cfg, data, reg, split, _ = setup
    logs = []
    res = train(data, cfg, split, tmp_path, {"feature_manifest": reg.hash}, on_epoch=logs.append)
    assert res.epochs_run == 2 == len(logs) and res.n_parameters > 0
    assert {"huber", "pinball", "rank_ic", "ic", "sharpe"} == set(logs[0].loss)
    assert set(logs[0].val_rank_ic) == {"1d", "5d", "10d", "20d"} and logs[0].prediction_std > 0
    assert set(logs[0].grad_norms) >= {"input", "temporal", "graph", "heads"} and logs[0].gate > 0
    assert (tmp_path / BEST).exists() and (tmp_path / LAST).exists()
    assert len(list(tmp_path.glob("epoch_*.pt"))) == cfg.keep_last_checkpoints
    assert not list(tmp_path.glob("*.tmp"))
    ck = load_checkpoint(tmp_path / BEST)  # weights_only=True
    assert ck["config"] == cfg.model_dump() and ck["meta"]["feature_manifest"] == reg.hash
    assert ck["split"]["test"] == split.test and ck["feature_names"] == reg.names
    model, _ = load_model(tmp_path / BEST)
    preds = predict(model, data, split.test[:2], cfg.batch_dates)
    assert preds.height == int(data.present[split.test[:2]].sum())
    assert {"pred_1d", "q10_1d", "q90_20d", "label_5d"} <= set(preds.columns)
    assert set(logs[0].phase_seconds) == {"batch", "forward", "backward", "optimiser", "validation"}
    # the validation metric computed on the device equals the report's per-date metric on the frame
    rank_ic, ic, std = evaluate(model, data, split.val, cfg.batch_dates)
    frame = predict(model, data, split.val, cfg.batch_dates).partition_by("date", maintain_order=True)
    for h in cfg.horizons:
        p, y = [f[f"pred_{h}d"].to_numpy() for f in frame], [f[f"label_{h}d"].to_numpy() for f in frame]
        want = np.nanmean(daily_ic(p, y, cfg.min_stocks_per_date, rank=True))
        assert rank_ic[f"{h}d"] == pytest.approx(want, abs=1e-7)  # the frame holds float32
        assert ic[f"{h}d"] == pytest.approx(np.nanmean(daily_ic(p, y, cfg.min_stocks_per_date)), abs=1e-7)
    assert std == pytest.approx(np.mean([f["pred_1d"].std() for f in frame]), rel=1e-6)


def test_a_terminal_sees_epochs_with_a_batch_bar_inside(setup, tmp_path, capsys):
    cfg, data, reg, split, _ = setup
    train(data, cfg.model_copy(update={"epochs": 1}), split, tmp_path, {}, progress=True)
    err = capsys.readouterr().err
    steps = -(-len(split.train) // cfg.batch_dates)
    # the batch bar starts at 0/steps (how often it redraws, and its closing line, depend on the clock)
    assert "epochs: 100%" in err and f"epoch 0:   0%|          | 0/{steps} [" in err and "batch/s" in err
    train(data, cfg.model_copy(update={"epochs": 1}), split, tmp_path / "quiet", {})
    assert "epoch 0" not in capsys.readouterr().err  # no terminal (a log file, CI): no bars


def test_early_stopping_reads_the_weighted_horizons(setup, tmp_path):
    cfg, data, _, split, _ = setup
    ric = {"1d": 0.1, "5d": 0.3, "10d": 0.0, "20d": 0.2}
    assert stopping_metric(ric, cfg) == pytest.approx(0.15)  # default: equal weights
    one_day = cfg.model_copy(update={"early_stopping_weights": [1, 0, 0, 0]})
    assert stopping_metric(ric, one_day) == pytest.approx(0.1)
    weighted = cfg.model_copy(update={"early_stopping_weights": [1.0, 3.0, 0.0, 0.0]})
    assert stopping_metric(ric, weighted) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="early_stopping_weights"):
        TrainingConfig(**FAST, early_stopping_weights=[1.0, 1.0])
    long_only = cfg.model_copy(update={"early_stopping_weights": [0, 0, 0, 1], "epochs": 3, "patience": 3})
    res = train(data, long_only, split, tmp_path, {})
    by_epoch = [h["val_rank_ic"]["20d"] for h in res.history]
    assert res.best_epoch == int(np.argmax(by_epoch)) and res.best_val_rank_ic == pytest.approx(max(by_epoch))


def test_a_killed_run_resumes_where_it_stopped(setup, tmp_path):
    cfg, data, reg, split, _ = setup
    cfg3 = cfg.model_copy(update={"epochs": 3})
    full = train(data, cfg3, split, tmp_path / "full", {"m": 1})

    class Killed(Exception):
        pass

    def kill_after_first(log):
        if log.epoch == 0:
            raise Killed

    with pytest.raises(Killed):
        train(data, cfg3, split, tmp_path / "killed", {"m": 1}, on_epoch=kill_after_first)
    resumed = train(data, cfg3, split, tmp_path / "killed", {"m": 1})
    assert resumed.resumed_from_epoch == 0 and resumed.epochs_run == 3
    a = load_checkpoint(tmp_path / "full" / LAST)["state_dict"]
    b = load_checkpoint(tmp_path / "killed" / LAST)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    # a different config never resumes someone else's run
    other = train(data, cfg3.model_copy(update={"lr": 5e-4}), split, tmp_path / "killed", {"m": 1})
    assert other.resumed_from_epoch is None
    assert full.best_val_rank_ic == pytest.approx(resumed.best_val_rank_ic)


def test_degenerate_predictions_stop_training(setup, tmp_path):
    cfg, data, _, split, _ = setup
    with pytest.raises(DegenerateModelError, match="collapsed"):
        train(data, cfg.model_copy(update={"min_prediction_std": 1e6, "epochs": 1}), split, tmp_path, {})


def test_tensors_refuse_features_missing_from_the_registry(setup):
    cfg, _, reg, _, feats = setup
    with pytest.raises(ValueError, match="lack 1 registry inputs"):
        PanelTensors(feats.drop("rsi_14"), reg, None, cfg.horizons, cfg.seq_len, cfg.input_clip)


def test_horizons_the_features_lack_are_named(setup):
    cfg, _, reg, _, feats = setup
    with pytest.raises(
        ValueError, match=r"need \['target_20d'\].*make the features' and the model's horizons agree"
    ):
        PanelTensors(feats.drop("target_20d"), reg, None, cfg.horizons, cfg.seq_len, cfg.input_clip)


def test_pure_noise_market_gives_no_skill(tmp_path):
    """Leakage canary: on a market with equal expected returns, test RankIC must be within 3 standard errors of 0."""
    cfg = TrainingConfig(**{**FAST, "epochs": 2, "test_days": 150, "n_folds": 1})
    market = pure_noise_market(seed=9, n_stocks=40, n_days=400)
    data, reg, _ = _tensors(market, cfg)
    split = config_folds(data, cfg)[0]
    res = train(data, cfg, split, tmp_path, {})
    model, _ = load_model(tmp_path / BEST)
    assert res.best_checkpoint == str(tmp_path / BEST)
    preds = predict(model, data, split.test, cfg.batch_dates)
    from atft_dagster.evaluation.metrics import daily_ic

    parts = preds.partition_by("date")
    ics = daily_ic(
        [p["pred_1d"].to_numpy() for p in parts], [p["label_1d"].to_numpy() for p in parts], 10, rank=True
    )
    ics = ics[np.isfinite(ics)]
    se = ics.std(ddof=1) / np.sqrt(len(ics))
    assert abs(ics.mean()) < 3 * se
    rank_ic, _, _ = evaluate(model, data, split.test, cfg.batch_dates)
    assert rank_ic["1d"] == pytest.approx(ics.mean(), abs=1e-9)
    # the overlapping 5-20 day labels too, judged with the Newey-West t (lag h - 1)
    for h in cfg.horizons:
        report, _ = evaluate_predictions(preds, f"pred_{h}d", f"label_{h}d", 10, h - 1)
        assert abs(report.rank_ic_t) < 3, (h, report.rank_ic_t)


@pytest.fixture(scope="module")
def two_members(setup, tmp_path_factory):
    cfg, data, _, split, _ = setup
    root = tmp_path_factory.mktemp("members")
    paths = []
    for seed in member_seeds(cfg.seed, 2):
        # no ridge start: members that keep the (deterministic) ridge start for a horizon are identical there
        member = cfg.model_copy(update={"seed": seed, "epochs": 1, "skip_ridge_penalties": []})
        res = train(data, member, split, root / str(seed), {})
        paths.append(res.best_checkpoint)
    return paths


def test_seed_ensemble_is_the_mean_of_member_ranks(setup, two_members):
    cfg, data, _, split, _ = setup
    ens, members = ensemble_predict(two_members, data, split.selection)
    assert len(members) == 2 and ens.height == members[0].height
    assert not np.allclose(members[0]["pred_1d"].to_numpy(), members[1]["pred_1d"].to_numpy())
    day = ens["date"][0]
    pct = [
        m.filter(pl.col("date") == day).sort("code")["pred_1d"].rank("average").to_numpy()
        / m.filter(pl.col("date") == day).height
        for m in members
    ]
    got = ens.filter(pl.col("date") == day).sort("code")["pred_1d"].to_numpy()
    np.testing.assert_allclose(got, (pct[0] + pct[1]) / 2, rtol=1e-6)


def _fold(split, data, checkpoints) -> TrainedFold:
    return TrainedFold(
        0,
        tuple(checkpoints),
        data.dates[split.train[-1]],
        (data.dates[split.selection[0]], data.dates[split.selection[-1]]),
        (data.dates[split.test[0]], data.dates[split.test[-1]]),
    )


def test_promotion_cannot_see_test_window_labels(setup, two_members):
    """Changing only the test-window labels changes no score and no decision; changing the selection
    window's labels does (so the comparison really reads labels, and only those)."""
    cfg, data, _, split, _ = setup
    candidate = [_fold(split, data, [two_members[1]])]
    champion = [_fold(split, data, [two_members[0]])]

    def decide(d):
        return compare_on_selection(candidate, champion, d, 1, "rank_ic", cfg.min_stocks_per_date, 0.0)

    base = decide(data)
    assert base.folds == [0] and np.isfinite(base.candidate) and "selection-window" in base.decision
    rng = np.random.default_rng(3)

    def relabel(days: list[int]):
        d = data.without_labels([])
        noise = torch.from_numpy(rng.standard_normal(d.y[days].shape).astype(np.float32))
        d.y[days] = noise
        return d

    scrambled_test = decide(relabel(split.test))
    assert (scrambled_test.candidate, scrambled_test.champion, scrambled_test.promote) == (
        base.candidate,
        base.champion,
        base.promote,
    )
    scrambled_selection = decide(relabel(split.selection))
    assert scrambled_selection.candidate != base.candidate
    assert data.y[split.test].isfinite().any()  # the original data is untouched


def test_gpu_row_padding_leaves_the_real_rows_unchanged(setup):
    """On a GPU a batch is padded to ``cuda_row_bucket`` rows. The test runs on the CPU: a "cuda" device
    argument only switches the padding on (fp32 precision means no autocast)."""
    cfg, data, _, split, _ = setup
    torch.manual_seed(0)
    model = ATFTGATFAN(data.n_features, cfg.model_copy(update={"cuda_row_bucket": 64})).eval()
    b = data.batch(split.val[:3])
    assert b.x.shape[0] % 64, "the batch must need padding"
    with torch.no_grad():
        plain = _forward(model, b, torch.device("cpu"), "fp32")
        padded = _forward(model, b, torch.device("cuda"), "fp32")
    assert padded.point.shape == plain.point.shape == (b.x.shape[0], len(cfg.horizons))
    assert torch.allclose(padded.point, plain.point, atol=1e-5)
    assert torch.allclose(padded.quantiles, plain.quantiles, atol=1e-5)


def test_bf16_runs_the_model_in_bf16_on_a_cpu_too(setup, tmp_path):
    """precision "bf16" is autocast on a CPU as on a GPU: the products run in bf16 (outputs move by bf16
    rounding, not more), and a training run in bf16 learns like the fp32 one on the same seed."""
    cfg, data, _, split, _ = setup
    torch.manual_seed(0)
    model = ATFTGATFAN(data.n_features, cfg).eval()
    b = data.batch(split.val[:3])
    cpu = torch.device("cpu")
    with torch.no_grad():
        full = _forward(model, b, cpu, "fp32").point
        half = _forward(model, b, cpu, "bf16").point
    assert half.dtype == torch.bfloat16 and full.dtype == torch.float32
    gap = (half.float() - full).abs().max() / full.abs().max()
    assert 0 < gap < 0.05, "bf16 rounding moves the outputs, by about its 8-bit mantissa"
    one = cfg.model_copy(update={"epochs": 1, "skip_ridge_penalties": []})
    fp32 = train(data, one, split, tmp_path / "fp32", {}, precision="fp32")
    bf16 = train(data, one, split, tmp_path / "bf16", {}, precision="bf16")
    a, c = fp32.history[0]["val_rank_ic"], bf16.history[0]["val_rank_ic"]
    assert a != c
    assert all(abs(a[h] - c[h]) < 0.02 for h in a), (a, c)  # 0.002 here; the validation days are few


def test_native_cpu_bf16_reads_the_cpu_flags():
    assert native_cpu_bf16("flags\t: fpu sse2 avx512f avx512_bf16 avx512_vnni")
    assert native_cpu_bf16("flags\t: fpu amx_bf16 amx_tile")
    assert not native_cpu_bf16("flags\t: fpu sse2 avx2 avx512f avx512_vnni")


def test_each_horizon_is_predicted_by_its_best_validation_epoch(setup, tmp_path):
    cfg, data, _, split, _ = setup
    ph = cfg.model_copy(
        update={
            "select_per_horizon": True,
            "epochs": 4,
            "patience": 4,
            "lr": 3e-3,
            "skip_ridge_penalties": [],
        }
    )
    res = train(data, ph, split, tmp_path / "ph", {})
    for label, epoch in res.horizon_epochs.items():  # each horizon's chosen epoch is its validation argmax
        by_epoch = [h["val_rank_ic"][label] for h in res.history]
        assert epoch == int(np.argmax(by_epoch))
        assert res.chosen_validation()[label] == max(by_epoch)
    assert len(set(res.horizon_epochs.values())) > 1, "this market's heads peak at different epochs"
    model, ck = load_model(tmp_path / "ph" / BEST)
    assert set(ck["horizon_states"]) == set(res.horizon_epochs.values()) | {res.best_epoch}
    # horizon k's column equals the plain model of its own epoch; its validation RankIC is that epoch's
    rank_ic, _, _ = evaluate(model, data, split.val, ph.batch_dates)
    plain = ph.model_copy(update={"select_per_horizon": False})
    for k, h in enumerate(ph.horizons):
        epoch = res.horizon_epochs[f"{h}d"]
        assert rank_ic[f"{h}d"] == pytest.approx(res.history[epoch]["val_rank_ic"][f"{h}d"], abs=1e-6)
        alone = ATFTGATFAN(data.n_features, plain)
        alone.load_state_dict(ck["horizon_states"][epoch])
        b = data.batch(split.test[:2])
        want = alone.eval()(b.x, b.mask, b.edge_index, b.edge_attr).point[:, k]
        got = _forward(model, b, data.device, "fp32").point[:, k]
        torch.testing.assert_close(got, want)
    # off: one epoch for every horizon, as before
    one = train(data, ph.model_copy(update={"select_per_horizon": False}), split, tmp_path / "one", {})
    assert one.horizon_epochs is None and isinstance(load_model(tmp_path / "one" / BEST)[0], ATFTGATFAN)


def test_a_checkpoint_from_before_a_new_config_field_still_loads(setup, tmp_path):
    from atft_dagster.model.config import BEFORE_FIELD_EXISTED
    from atft_dagster.training.checkpoint import save_checkpoint

    cfg, data, _, split, _ = setup
    train(data, cfg.model_copy(update=BEFORE_FIELD_EXISTED), split, tmp_path, {})  # as an old run did
    ck = load_checkpoint(tmp_path / BEST)
    old = {k: v for k, v in ck["config"].items() if k not in BEFORE_FIELD_EXISTED}
    save_checkpoint({**ck, "config": old}, tmp_path / "old.pt")
    model, _ = load_model(tmp_path / "old.pt")
    assert model.skip is None and not model.cfg.select_per_horizon


def _numpy_ridge(data, dates, model, penalty, clip):
    """The ridge start computed independently: per date z-scored, clipped labels; one solve per horizon."""
    us, ys = [], []
    for t in dates:
        b = data.batch([t])
        u = model.skip_inputs(b.x[:, -1], b.edge_index, b.edge_attr).double().numpy()
        y = b.y.double().numpy()
        z = np.full_like(y, np.nan)
        for h in range(y.shape[1]):
            ok = np.isfinite(y[:, h])
            if ok.sum() >= 2:
                v = y[ok, h]
                z[ok, h] = np.clip((v - v.mean()) / v.std(), -clip, clip)
        us.append(u)
        ys.append(z)
    u, z = np.concatenate(us), np.concatenate(ys)
    out = []
    for h in range(z.shape[1]):
        ok = np.isfinite(z[:, h])
        a = u[ok]
        out.append(np.linalg.solve(a.T @ a + ok.sum() * penalty * np.eye(a.shape[1]), a.T @ z[ok, h]))
    return np.stack(out)


def test_the_input_skip_starts_at_the_ridge_solution_of_the_train_window(setup):
    from atft_dagster.training.skip_init import fit_input_skip

    cfg, data, _, split, _ = setup
    weights = {}
    for penalty in (0.1, 10.0):
        model = ATFTGATFAN(data.n_features, cfg.model_copy(update={"skip_ridge_penalties": [penalty]}))
        rows = fit_input_skip(model, data, split.train, penalty, cfg.batch_dates)
        assert model.skip.lin.in_features == 2 * data.n_features  # x_L and the neighbour mean
        want = _numpy_ridge(data, split.train, model, penalty, cfg.label_clip)
        np.testing.assert_allclose(
            model.skip.lin.weight.detach().double().numpy(), want, rtol=1e-4, atol=1e-7
        )
        assert model.skip.lin.bias.abs().max() == 0 and min(rows.values()) > 10 * len(split.train)
        weights[penalty] = model.skip.lin.weight.detach().norm()
    assert weights[10.0] < 0.5 * weights[0.1]  # the penalty is used


def test_a_ridge_started_model_keeps_the_start_for_horizons_training_does_not_improve(setup, tmp_path):
    from atft_dagster.training.train import START

    cfg, data, _, split, _ = setup
    # a learning rate far too high, the skip too: training wrecks the model, so the start must win on validation
    rs = cfg.model_copy(
        update={
            "skip_ridge_penalties": [1.0],
            "skip_lr_scale": 1.0,
            "select_per_horizon": True,
            "lr": 0.5,
            "skip_refit_through_validation": False,  # the start as trained (the refit has its own test)
            "keep_start_from": None,  # validation chooses every horizon (keep_start_from has its own test)
        }
    )
    res = train(data, rs, split, tmp_path / "rs", {})
    start = res.start_validation["val_rank_ic"]
    for label, epoch in res.horizon_epochs.items():  # the start competes as an epoch of its own
        by_epoch = [start[label]] + [h["val_rank_ic"][label] for h in res.history]
        assert epoch == int(np.argmax(by_epoch)) - 1
    kept = [k for k, h in enumerate(rs.horizons) if res.horizon_epochs[f"{h}d"] == START]
    assert kept, res.horizon_epochs
    # those horizons predict exactly the linear graph model: ridge skip, deep point head at zero
    model, _ = load_model(tmp_path / "rs" / BEST)
    torch.manual_seed(0)
    linear = ATFTGATFAN(data.n_features, rs)
    from atft_dagster.training.skip_init import fit_input_skip

    fit_input_skip(linear, data, split.train, 1.0, rs.batch_dates)
    b = data.batch(split.test[:2])
    got = _forward(model, b, data.device, "fp32").point
    want = linear.skip(linear.skip_inputs(b.x[:, -1], b.edge_index, b.edge_attr))
    for k in kept:
        torch.testing.assert_close(got[:, k], want[:, k], rtol=1e-5, atol=1e-6)
        assert res.chosen_validation()[f"{rs.horizons[k]}d"] == start[f"{rs.horizons[k]}d"]


def test_skip_lr_scale_zero_keeps_the_ridge_skip_while_the_deep_path_learns(setup, tmp_path):
    cfg, data, _, split, _ = setup
    base = cfg.model_copy(update={"skip_ridge_penalties": [1.0], "select_per_horizon": False, "epochs": 1})
    skips = {}
    for scale in (0.0, 1.0):
        train(data, base.model_copy(update={"skip_lr_scale": scale}), split, tmp_path / str(scale), {})
        state = load_checkpoint(tmp_path / str(scale) / LAST)["state_dict"]
        skips[scale] = state["skip.lin.weight"]
        assert state["heads.point.weight"].abs().max() > 0  # the deep point head left zero and learned
    from atft_dagster.training.skip_init import fit_input_skip

    ridge = ATFTGATFAN(data.n_features, base)
    fit_input_skip(ridge, data, split.train, 1.0, base.batch_dates)
    torch.testing.assert_close(skips[0.0], ridge.skip.lin.weight.detach())
    assert (skips[1.0] - skips[0.0]).abs().max() > 1e-4


@pytest.mark.parametrize("refit", [True, False])
def test_the_linear_graph_baseline_is_the_ridge_start_with_its_penalty_chosen_on_selection(setup, refit):
    from atft_dagster.evaluation.baselines import DailyRankIC
    from atft_dagster.training.linear_graph import linear_graph_baseline
    from atft_dagster.training.skip_init import ridge_start
    from atft_dagster.training.train import refit_dates

    cfg, data, _, split, _ = setup
    cfg = cfg.model_copy(update={"skip_refit_through_validation": refit})
    # it is fitted on the dates the model's ridge start ends on
    fit_dates = refit_dates(data, cfg, split) if refit else split.train
    frame, choices = linear_graph_baseline(data, cfg, split, [0.01, 100.0], cfg.min_stocks_per_date)
    assert frame.height == sum(int(data.counts[t]) for t in split.selection + split.test)
    sel_dates = {data.dates[t] for t in split.selection}
    assert set(frame["date"]) == sel_dates | {data.dates[t] for t in split.test}
    for c in choices:  # the chosen penalty is the one with the better selection-window RankIC
        h = c["horizon"]
        scores, preds = {}, {}
        for penalty in (0.01, 100.0):
            model = ATFTGATFAN(data.n_features, cfg)
            ridge_start(model, data, fit_dates, penalty, cfg.batch_dates)
            p = predict(model, data, split.selection, cfg.batch_dates)
            preds[penalty] = p[f"pred_{h}d"].to_numpy()
            scores[penalty] = DailyRankIC(
                p["date"].to_numpy(), p[f"label_{h}d"].to_numpy(), cfg.min_stocks_per_date
            )(preds[penalty])
        assert c["penalty"] == max(scores, key=scores.get)
        assert c["selection_rank_ic"] == pytest.approx(scores[c["penalty"]])
        chosen = frame.filter(pl.col("date").is_in(sorted(sel_dates)))[f"linear_graph_{h}d"]
        assert chosen.is_finite().all() and chosen.std() > 0
        np.testing.assert_allclose(chosen.to_numpy(), preds[c["penalty"]], rtol=1e-4, atol=1e-6)


def test_members_trained_apart_in_any_order_equal_the_sequential_run(setup, tmp_path):
    """The plan / one member / assemble split (one Dagster step per member) trains exactly what the
    sequential loop trains, whatever order the members finish in; a member refuses other data."""
    from atft_dagster.pipeline.layout import DataLayout
    from atft_dagster.pipeline.train_run import (
        PlanMismatch,
        assemble,
        plan_training,
        train_member,
        train_run,
    )
    from atft_dagster.training.data import PanelDates

    cfg, data, _, _, feats = setup
    cfg = cfg.model_copy(
        update={
            "epochs": 1,
            "n_folds": 2,
            "ensemble_seeds": 2,
            "val_days": 15,
            "selection_days": 15,
            "test_days": 15,
        }
    )
    args = ("run1", "manifest", {"top_k": 10}, "fingerprint")
    plan = plan_training(data, cfg, *args)
    assert [(t.fold, t.seed) for t in plan.tasks] == [(0, 42), (0, 43), (1, 42), (1, 43)]
    assert len({t.key for t in plan.tasks}) == 4 and len(plan.folds) == 2
    # the plan step reads only the dates and stocks per date: the same plan as from the tensors
    assert plan_training(PanelDates.of(feats, cfg.seq_len), cfg, *args) == plan

    apart = DataLayout(tmp_path / "apart")
    members = [train_member(data, plan, t, apart, "cpu", "fingerprint")[0] for t in reversed(plan.tasks)]
    model = assemble(plan, members)
    sequential = train_run(data, cfg, "run1", DataLayout(tmp_path / "seq"), *args[1:3], "cpu", "fingerprint")
    timing = {"seconds_per_epoch", "samples_per_second"}

    def untimed(m):
        return m.model_copy(update={"members": [x.model_dump(exclude=timing) for x in m.members]})

    assert untimed(model) == untimed(sequential)  # same records, checkpoints at the same relative paths
    refits = [m.skip_refit for m in model.members if m.skip_refit]  # recorded where a horizon kept the start
    assert refits and all(r["days"] > r["train_days"] for r in refits), [
        m.horizon_epochs for m in model.members
    ]
    # fold 0's members (the ones that rank new days) get a deployed checkpoint where a horizon kept the start
    for m in model.members:
        assert (m.deployed_checkpoint is not None) == (m.fold == 0 and m.skip_refit is not None)
        if m.deployed_checkpoint:
            assert apart.resolve(m.deployed_checkpoint).exists()
            assert m.deployment_refit["data_end"] == str(data.dates[-1])
    assert model.deployed_checkpoints() is not None
    off = plan_training(data, cfg.model_copy(update={"deployment_refit": False}), *args)
    assert (
        train_member(data, off, off.tasks[0], DataLayout(tmp_path / "off"), "cpu", "fingerprint")[
            0
        ].deployed_checkpoint
        is None
    )  # the config field decides
    for m in model.members:
        a = load_checkpoint(apart.resolve(m.checkpoint))["state_dict"]
        b = load_checkpoint((tmp_path / "seq") / m.checkpoint)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a)

    with pytest.raises(PlanMismatch, match="missing|not the planned"):
        assemble(plan, members[:3])
    with pytest.raises(PlanMismatch, match="not the planned"):
        assemble(plan, members + members[:1])
    with pytest.raises(PlanMismatch, match="changed since training run1 was planned"):
        train_member(data, plan, plan.tasks[0], apart, "cpu", "other data")


def test_the_ridge_start_takes_each_horizons_penalty_from_the_validation_window(setup, tmp_path):
    from atft_dagster.training.skip_init import ridge_start

    cfg, data, _, split, _ = setup
    grid = [0.001, 1.0, 1000.0]
    rs = cfg.model_copy(update={"skip_ridge_penalties": grid, "select_per_horizon": True, "epochs": 1})
    res = train(data, rs, split, tmp_path / "grid", {})
    chosen = res.start_validation["penalty"]
    # each penalty's start alone, scored on validation the way training scores an epoch
    scores, skips = {}, {}
    for p in grid:
        torch.manual_seed(0)
        model = ATFTGATFAN(data.n_features, rs)
        ridge_start(model, data, split.train, p, rs.batch_dates)
        scores[p], _, _ = evaluate(model, data, split.val, rs.batch_dates)
        skips[p] = model.skip.lin.weight.detach()
    state = load_checkpoint(tmp_path / "grid" / LAST)["state_dict"]  # the skip stays frozen (skip_lr_scale 0)
    for j, h in enumerate(rs.horizons):
        key = f"{h}d"
        assert chosen[key] == max(grid, key=lambda p: scores[p][key]), (chosen, scores)
        torch.testing.assert_close(state["skip.lin.weight"][j], skips[chosen[key]][j])
        assert res.start_validation["val_rank_ic"][key] == pytest.approx(scores[chosen[key]][key], abs=1e-9)
    # one value: that penalty for every horizon
    one = train(data, rs.model_copy(update={"skip_ridge_penalties": [1000.0]}), split, tmp_path / "one", {})
    assert set(one.start_validation["penalty"].values()) == {1000.0}
    assert len(set(chosen.values())) > 1  # on this market the grid's choice differs by horizon


def test_the_old_name_of_the_ridge_penalty_still_reads():
    assert TrainingConfig(skip_ridge_penalty=3.0).skip_ridge_penalties == [3.0]
    assert TrainingConfig.from_recorded({"skip_ridge_penalty": None}).skip_ridge_penalties == []
    assert TrainingConfig.from_recorded({}).skip_ridge_penalties == []  # predates the ridge start
    with pytest.raises(ValueError, match="old name"):
        TrainingConfig(skip_ridge_penalty=3.0, skip_ridge_penalties=[1.0])


def test_the_ridge_start_is_refitted_through_validation_for_the_horizons_that_kept_it(setup, tmp_path):
    from atft_dagster.training.skip_init import ridge_solutions
    from atft_dagster.training.train import START, refit_dates

    cfg, data, _, split, _ = setup
    grid = [0.01, 1.0, 100.0]
    # a vanishing lr: the trained epoch ranks stocks exactly like the start, so every horizon keeps the start
    base = cfg.model_copy(
        update={"skip_ridge_penalties": grid, "select_per_horizon": True, "epochs": 1, "lr": 1e-9}
    )
    on = train(data, base, split, tmp_path / "on", {})
    off = train(
        data, base.model_copy(update={"skip_refit_through_validation": False}), split, tmp_path / "off", {}
    )
    assert set(on.horizon_epochs.values()) == {START}
    assert on.start_validation == off.start_validation and off.skip_refit is None  # no choice is revisited
    dates = refit_dates(data, base, split)
    assert dates[0] == split.train[0] and dates[-1] == split.val[-1]
    assert len(dates) > len(split.train) + len(split.val)  # the purge gap's dates too
    assert max(dates) + max(base.horizons) < min(split.selection)  # no label reaches the selection window
    assert on.skip_refit["days"] == len(dates) and on.skip_refit["horizons"] == ["1d", "5d", "10d", "20d"]
    assert load_checkpoint(tmp_path / "on" / BEST)["skip_refit"] == on.skip_refit

    ck_on, ck_off = load_checkpoint(tmp_path / "on" / BEST), load_checkpoint(tmp_path / "off" / BEST)
    probe = ATFTGATFAN(data.n_features, base)
    probe.load_state_dict(ck_off["horizon_states"][START])
    refit, _ = ridge_solutions(probe, data, dates, grid, base.batch_dates)
    trained, _ = ridge_solutions(probe, data, split.train, grid, base.batch_dates)
    for j, h in enumerate(base.horizons):
        p = on.start_validation["penalty"][f"{h}d"]
        torch.testing.assert_close(ck_on["horizon_states"][START]["skip.lin.weight"][j], refit[p][j].float())
        torch.testing.assert_close(
            ck_off["horizon_states"][START]["skip.lin.weight"][j], trained[p][j].float()
        )
    # the refitted checkpoint predicts with the refitted skip; everything but the skip is the same model
    assert not torch.allclose(
        ck_on["horizon_states"][START]["skip.lin.weight"], ck_off["horizon_states"][START]["skip.lin.weight"]
    )
    for k, v in ck_off["horizon_states"][START].items():
        if not k.startswith("skip."):
            torch.testing.assert_close(ck_on["horizon_states"][START][k], v)
    a = predict(load_model(tmp_path / "on" / BEST)[0], data, split.selection, base.batch_dates)
    b = predict(load_model(tmp_path / "off" / BEST)[0], data, split.selection, base.batch_dates)
    assert not np.allclose(a["pred_1d"].to_numpy(), b["pred_1d"].to_numpy())
    # training resumed after it finished refits again from the stored train-only start: same result
    again = train(data, base, split, tmp_path / "on", {})
    assert again.resumed_from_epoch == 0 and again.skip_refit == on.skip_refit
    torch.testing.assert_close(
        load_checkpoint(tmp_path / "on" / BEST)["horizon_states"][START]["skip.lin.weight"],
        ck_on["horizon_states"][START]["skip.lin.weight"],
    )


def test_the_deployment_refit_refits_the_kept_starts_on_every_labelled_day(setup, tmp_path):
    """The champion ranks new days with each kept ridge start refitted, at its chosen penalty, on every
    date whose label has ended; a horizon that took a trained epoch and the evaluated checkpoint stay."""
    from atft_dagster.training.deploy import deployment_refit
    from atft_dagster.training.skip_init import ridge_solutions
    from atft_dagster.training.train import START

    cfg, data, _, split, _ = setup
    grid = [0.01, 1.0, 100.0]
    base = cfg.model_copy(
        update={"skip_ridge_penalties": grid, "select_per_horizon": True, "epochs": 1, "lr": 1e-9}
    )
    res = train(data, base, split, tmp_path / "m", {})
    assert set(res.horizon_epochs.values()) == {START}
    best = tmp_path / "m" / BEST
    # as if the 5-day head had taken a trained epoch: it must keep that state, unrefitted
    ck = load_checkpoint(best)
    ck["horizon_epochs"]["5d"] = 0
    ck["horizon_states"][0] = {k: v.clone() for k, v in ck["horizon_states"][START].items()}
    from atft_dagster.training.checkpoint import save_checkpoint

    save_checkpoint(ck, tmp_path / "mixed.pt")
    evaluated = load_checkpoint(tmp_path / "mixed.pt")
    record = deployment_refit(tmp_path / "mixed.pt", data, tmp_path / "deployed.pt")
    after = load_checkpoint(tmp_path / "mixed.pt")  # the evaluated checkpoint is left as it is
    assert all(
        torch.equal(after["horizon_states"][START][k], v) for k, v in ck["horizon_states"][START].items()
    )

    dates = data.usable_dates(base.min_stocks_per_date)
    assert record["horizons"] == ["1d", "10d", "20d"]
    assert record["dates"] == [str(data.dates[dates[0]]), str(data.dates[dates[-1]])]
    assert record["data_end"] == str(data.dates[-1])
    # labels after the validation window are read, each horizon's up to where its labels end
    assert record["rows"]["1d"] > res.skip_refit["rows"]["1d"]
    assert record["rows"]["20d"] < record["rows"]["10d"] < record["rows"]["1d"]
    dep = load_checkpoint(tmp_path / "deployed.pt")
    assert dep["deployment_refit"] == record
    probe = ATFTGATFAN(data.n_features, base)
    probe.load_state_dict(evaluated["horizon_states"][START])
    ref, _ = ridge_solutions(probe, data, dates, grid, base.batch_dates)
    skip, old = (
        dep["horizon_states"][START]["skip.lin.weight"],
        evaluated["horizon_states"][START]["skip.lin.weight"],
    )
    for j, h in enumerate(base.horizons):
        if h == 5:
            torch.testing.assert_close(skip[j], old[j])
            continue
        torch.testing.assert_close(skip[j], ref[res.start_validation["penalty"][f"{h}d"]][j].float())
        assert not torch.allclose(skip[j], old[j])
    for k, v in evaluated["horizon_states"][START].items():  # everything but the skip is the same model
        if not k.startswith("skip."):
            torch.testing.assert_close(dep["horizon_states"][START][k], v)
    a = predict(load_model(tmp_path / "deployed.pt")[0], data, split.test, base.batch_dates)
    b = predict(load_model(tmp_path / "mixed.pt")[0], data, split.test, base.batch_dates)
    assert not np.allclose(a["pred_1d"].to_numpy(), b["pred_1d"].to_numpy())
    np.testing.assert_allclose(a["pred_5d"].to_numpy(), b["pred_5d"].to_numpy(), rtol=1e-5, atol=1e-6)
    # no horizon kept the start: nothing to refit, nothing written
    ck["horizon_epochs"] = dict.fromkeys(ck["horizon_epochs"], 0)
    save_checkpoint(ck, tmp_path / "trained.pt")
    assert deployment_refit(tmp_path / "trained.pt", data, tmp_path / "none.pt") is None
    assert not (tmp_path / "none.pt").exists()


def test_deployed_predictions_reuse_the_evaluated_frame_only_where_nothing_was_refitted(
    setup, two_members, tmp_path, monkeypatch
):
    """The deployed rows of checkpoints that kept no ridge start are their evaluated rows: the frame the
    report already predicted is reused (not predicted again) and equals a fresh prediction; a refitted
    checkpoint ignores it."""
    import atft_dagster.pipeline.evaluate as ev

    cfg, data, _, split, _ = setup
    windows = split.selection + split.test
    ens, _ = ensemble_predict(two_members, data, windows)
    fresh = ev.deployed_predictions(two_members, data, split, tmp_path, "a")

    def predicted_again(*args, **kwargs):
        raise AssertionError("predicted again")

    monkeypatch.setattr(ev, "ensemble_predict", predicted_again)
    reused = ev.deployed_predictions(two_members, data, split, tmp_path, "b", evaluated=ens)
    monkeypatch.undo()
    fresh, reused = fresh.sort("date", "code"), reused.sort("date", "code")
    assert reused["date"].unique().sort().to_list() == [data.dates[t] for t in split.test]
    assert fresh.select("date", "code").equals(reused.select("date", "code"))
    for h in cfg.horizons:
        np.testing.assert_allclose(reused[f"b_{h}d"], fresh[f"a_{h}d"], rtol=1e-5, atol=1e-6)
    # a checkpoint that kept its ridge start is refitted through the selection window: predicted anew
    kept = cfg.model_copy(update={"select_per_horizon": True, "epochs": 1, "lr": 1e-9})
    ck = train(data, kept, split, tmp_path / "m", {}).best_checkpoint
    evaluated, _ = ensemble_predict([ck], data, windows)
    dep = ev.deployed_predictions([ck], data, split, tmp_path, "c", evaluated=evaluated).sort("date", "code")
    old = evaluated.filter(pl.col("date").is_in(dep["date"].unique().to_list())).sort("date", "code")
    assert dep.height == old.height and not np.allclose(dep["c_1d"], old["pred_1d"])


def test_a_day_before_the_refits_last_date_is_ranked_by_the_evaluated_checkpoints():
    """Point in time: the deployed checkpoints read labels up to the data's last date, so only days from
    that date on may use them (a backfilled partition gets the evaluated ones)."""
    from datetime import date

    from atft_dagster.training.deploy import members_for_day

    end = date(2026, 3, 2)
    members, why = members_for_day(["a.pt"], ["d.pt"], end, date(2026, 2, 27))
    assert members == ["a.pt"] and "before 2026-03-02" in why
    assert members_for_day(["a.pt"], ["d.pt"], end, end)[0] == ["d.pt"]
    assert members_for_day(["a.pt"], ["d.pt"], end, date(2026, 3, 3))[0] == ["d.pt"]
    assert members_for_day(["a.pt"], None, end, date(2026, 3, 3))[0] == ["a.pt"]
    assert members_for_day(["a.pt"], ["d.pt"], None, date(2026, 3, 3))[0] == ["a.pt"]


def test_a_folds_members_share_one_deployment_solve(setup, tmp_path, monkeypatch):
    """The skip's inputs hold no trained parameter, so the fold's members share the refit's ridge solve:
    the second member reads it (same weights), a different key (other penalties) solves again."""
    import atft_dagster.training.deploy as deploy
    from atft_dagster.training.checkpoint import save_checkpoint
    from atft_dagster.training.train import START

    cfg, data, _, split, _ = setup
    base = cfg.model_copy(update={"select_per_horizon": True, "epochs": 1, "lr": 1e-9})
    train(data, base, split, tmp_path / "a", {})
    shared = tmp_path / deploy.SHARED
    first = deploy.deployment_refit(tmp_path / "a" / BEST, data, tmp_path / "a.pt", shared)
    assert shared.exists()
    solved = []

    def solve_again(*args):
        solved.append(args)
        raise RuntimeError("solved again")

    monkeypatch.setattr(deploy, "ridge_solutions", solve_again)
    # another seed of the fold: its deep path differs, its skip inputs and penalties do not
    train(data, base.model_copy(update={"seed": 7}), split, tmp_path / "b", {})
    second = deploy.deployment_refit(tmp_path / "b" / BEST, data, tmp_path / "b.pt", shared)
    assert second == first and not solved
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    torch.testing.assert_close(
        a["horizon_states"][START]["skip.lin.weight"], b["horizon_states"][START]["skip.lin.weight"]
    )
    # other penalties: the kept solve does not answer, a new one is made
    ck = load_checkpoint(tmp_path / "b" / BEST)
    ck["start_validation"]["penalty"] = dict.fromkeys(ck["start_validation"]["penalty"], 123.0)
    save_checkpoint(ck, tmp_path / "other.pt")
    with pytest.raises(RuntimeError, match="solved again"):
        deploy.deployment_refit(tmp_path / "other.pt", data, tmp_path / "c.pt", shared)
    assert len(solved) == 1


def test_a_deployment_refit_through_a_date_reads_no_later_row(setup, tmp_path):
    """``through`` (the benchmark's "deployed at the test start"): only dates up to it enter the refit, and
    the solve a wider or narrower skip would share is not reused (the key holds the input width)."""
    import atft_dagster.training.deploy as deploy
    from atft_dagster.training.skip_init import ridge_solutions
    from atft_dagster.training.train import START

    cfg, data, _, split, _ = setup
    base = cfg.model_copy(update={"select_per_horizon": True, "epochs": 1, "lr": 1e-9})
    res = train(data, base, split, tmp_path / "a", {})
    last = split.selection[-1]
    shared = tmp_path / deploy.SHARED
    record = deploy.deployment_refit(tmp_path / "a" / BEST, data, tmp_path / "a.pt", shared, through=last)
    dates = [t for t in data.usable_dates(base.min_stocks_per_date) if t <= last]
    assert record["dates"] == [str(data.dates[dates[0]]), str(data.dates[dates[-1]])]
    assert record["data_end"] == str(data.dates[last]) < str(data.dates[split.test[0]])
    full = deploy.deployment_refit(tmp_path / "a" / BEST, data, tmp_path / "full.pt")
    assert record["rows"]["1d"] < full["rows"]["1d"]
    ck = load_checkpoint(tmp_path / "a" / BEST)
    probe = ATFTGATFAN(data.n_features, base)
    probe.load_state_dict(ck["horizon_states"][START])
    pen = res.start_validation["penalty"]
    ref, _ = ridge_solutions(probe, data, dates, sorted(set(pen.values())), base.batch_dates)
    skip = load_checkpoint(tmp_path / "a.pt")["horizon_states"][START]["skip.lin.weight"]
    for j, h in enumerate(base.horizons):
        torch.testing.assert_close(skip[j], ref[pen[f"{h}d"]][j].float())
    # the graph-off model's skip reads no neighbour mean: same dates and penalties, another solve
    off = base.model_copy(update={"use_graph": False})
    train(data, off, split, tmp_path / "off", {})
    deploy.deployment_refit(tmp_path / "off" / BEST, data, tmp_path / "off.pt", shared, through=last)
    width = load_checkpoint(tmp_path / "off.pt")["horizon_states"][START]["skip.lin.weight"].shape[1]
    assert width == data.n_features < skip.shape[1]


def test_keep_start_from_predicts_long_horizons_from_the_ridge_start_and_changes_nothing_else(
    setup, tmp_path
):
    """The horizons from ``keep_start_from`` on take the ridge start (refitted like any kept start) whatever
    validation chose; training, early stopping and the shorter horizons' choices are those of the run
    without it, and the checkpoint records validation's own choice."""
    from atft_dagster.training.train import START

    cfg, data, _, split, _ = setup
    free = cfg.model_copy(update={"epochs": 4, "patience": 4, "lr": 3e-3, "keep_start_from": None})
    pinned = free.model_copy(update={"keep_start_from": 5})
    a = train(data, free, split, tmp_path / "free", {})
    b = train(data, pinned, split, tmp_path / "pinned", {})
    assert any(a.horizon_epochs[k] != START for k in ("5d", "10d", "20d")), "needs a trained long epoch"
    assert [h["val_rank_ic"] for h in a.history] == [h["val_rank_ic"] for h in b.history]
    assert b.best_epoch == a.best_epoch and b.horizon_epochs["1d"] == a.horizon_epochs["1d"]
    assert all(b.horizon_epochs[k] == START for k in ("5d", "10d", "20d"))
    for k in ("5d", "10d", "20d"):
        assert b.chosen_validation()[k] == b.start_validation["val_rank_ic"][k]
    ck = load_checkpoint(tmp_path / "pinned" / BEST)
    assert ck["validation_epochs"] == {k: a.horizon_epochs[k] for k in ("5d", "10d", "20d")}
    assert set(ck["horizon_states"]) == set(b.horizon_epochs.values()) | {b.best_epoch}
    assert b.skip_refit is not None and {"5d", "10d", "20d"} <= set(b.skip_refit["horizons"])
    # predictions: 1 day as the free run's; 5-20 days as the refitted start's
    pa = predict(load_model(tmp_path / "free" / BEST)[0], data, split.selection, cfg.batch_dates)
    pb = predict(load_model(tmp_path / "pinned" / BEST)[0], data, split.selection, cfg.batch_dates)
    np.testing.assert_allclose(pb["pred_1d"], pa["pred_1d"], rtol=1e-6)
    start = ATFTGATFAN(data.n_features, pinned)
    start.load_state_dict(ck["horizon_states"][START])
    ps = predict(start.eval(), data, split.selection, cfg.batch_dates)
    for h in (5, 10, 20):
        np.testing.assert_allclose(pb[f"pred_{h}d"], ps[f"pred_{h}d"], rtol=1e-6)
    moved = [h for h in (5, 10, 20) if a.horizon_epochs[f"{h}d"] != START]
    assert not np.allclose(pb[f"pred_{moved[0]}d"], pa[f"pred_{moved[0]}d"])


def test_keep_start_from_names_the_horizons_it_pins():
    assert TrainingConfig().start_kept_horizons() == [5, 10, 20]
    assert TrainingConfig(keep_start_from=10).start_kept_horizons() == [10, 20]
    assert TrainingConfig(horizons=[1, 5], horizon_weights=[1, 1]).start_kept_horizons() == [5]
    assert TrainingConfig(keep_start_from=None).start_kept_horizons() == []
    # a checkpoint from before the field: validation chose every horizon
    assert TrainingConfig.from_recorded({}).start_kept_horizons() == []
