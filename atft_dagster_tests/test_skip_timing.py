"""Factor timing of the input skip (training/skip_timing.py): the formula, point-in-time, and the knobs."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from atft_dagster.model import ATFTGATFAN, TrainingConfig
from atft_dagster.training.skip_init import fit_input_skip
from atft_dagster.training.skip_timing import timed_skip_deltas
from atft_dagster.training.train import predict

from .test_training import setup  # noqa: F401  (module fixture: a 40-stock market and its split)


def _ridge_started(cfg, data, split, **timing):
    """A model at the ridge start; timing as given, ungated unless ``skip_timing_gate`` is given."""
    model = ATFTGATFAN(data.n_features, cfg.model_copy(update={"skip_timing_gate": False, **timing}))
    torch.manual_seed(0)
    fit_input_skip(model, data, split.train, 1.0, cfg.batch_dates)
    return model


def _numpy_timed(data, model, t, half_life, kappa, clip, min_stocks):
    """The timed weights at date t computed independently: every usable date u with u + h <= t, weight
    a^(t-u), per-date z-scored clipped labels, one ridge per horizon shrunk to the trained skip."""
    beta = model.skip.lin.weight.detach().double().numpy()
    a = 0.5 ** (1 / half_life)
    n_h = len(model.cfg.horizons)
    g, c, n = [0.0] * n_h, [0.0] * n_h, [0.0] * n_h
    for u in data.usable_dates(min_stocks):
        b = data.batch([u])
        x = model.skip_inputs(b.x[:, -1], b.edge_index, b.edge_attr).double().numpy()
        for j, h in enumerate(model.cfg.horizons):
            y = b.y[:, j].double().numpy()
            ok = np.isfinite(y)
            if u + h > t or ok.sum() < 2:
                continue
            z = np.clip((y[ok] - y[ok].mean()) / y[ok].std(), -clip, clip)
            w = a ** (t - u)
            g[j], c[j], n[j] = g[j] + w * x[ok].T @ x[ok], c[j] + w * x[ok].T @ z, n[j] + w * ok.sum()
    eye = np.eye(beta.shape[1])
    return np.stack(
        [np.linalg.solve(g[j] / n[j] + kappa * eye, c[j] / n[j] + kappa * beta[j]) for j in range(n_h)]
    )


def test_timed_predictions_add_the_recent_ridge_shrunk_to_the_trained_skip(setup):  # noqa: F811
    cfg, data, _, split, _ = setup
    timing = {
        "skip_timing_half_life": 10.0,
        "skip_timing_shrink": 0.5,
        "skip_timing_horizons": cfg.horizons,
        "skip_timing_basis": "inputs",
    }
    model = _ridge_started(cfg, data, split, **timing)
    plain = copy.deepcopy(model)
    plain.cfg = cfg  # the same weights, timing off
    t = split.selection[5]
    want = _numpy_timed(data, model, t, 10.0, 0.5, cfg.label_clip, cfg.min_stocks_per_date)
    got = timed_skip_deltas(model, data, [t])[t].numpy()
    beta = model.skip.lin.weight.detach().double().numpy()
    np.testing.assert_allclose(got, want - beta, rtol=1e-6, atol=1e-9)

    on = predict(model, data, split.selection, cfg.batch_dates)
    off = predict(plain, data, split.selection, cfg.batch_dates)
    b = data.batch([t])
    u = model.skip_inputs(b.x[:, -1], b.edge_index, b.edge_attr).double().numpy()
    rows = (on["date"] == data.dates[t]).to_numpy()
    for j, h in enumerate(cfg.horizons):
        added = on[f"pred_{h}d"].to_numpy()[rows] - off[f"pred_{h}d"].to_numpy()[rows]
        np.testing.assert_allclose(added, u @ (want[j] - beta[j]), rtol=1e-3, atol=1e-5)
        q = on[f"q50_{h}d"].to_numpy()[rows] - off[f"q50_{h}d"].to_numpy()[rows]
        np.testing.assert_allclose(q, added, rtol=1e-3, atol=1e-5)  # the quantiles move with the point
    assert np.abs(on["pred_1d"].to_numpy() - off["pred_1d"].to_numpy()).max() > 1e-3


def test_the_group_basis_scales_each_groups_weights_by_its_timed_multiplier(setup):  # noqa: F811
    cfg, data, _, split, _ = setup
    timing = {"skip_timing_half_life": 10.0, "skip_timing_shrink": 0.3, "skip_timing_horizons": cfg.horizons}
    model = _ridge_started(cfg, data, split, **timing)
    assert model.cfg.skip_timing_basis == "groups"
    t = split.selection[3]
    beta = model.skip.lin.weight.detach().double().numpy()
    names = sorted(set(data.groups))
    gid = np.array([names.index(g) for g in data.groups] * 2) + np.repeat([0, len(names)], len(data.groups))
    # the reference: the numpy ridge of the inputs basis, solved on the sub-scores x B instead
    a = 0.5 ** (1 / 10.0)
    got = timed_skip_deltas(model, data, [t])[t].numpy()
    for j, h in enumerate(cfg.horizons):
        b = np.zeros((beta.shape[1], 2 * len(names)))
        b[np.arange(beta.shape[1]), gid] = beta[j]
        g, c, n = 0.0, 0.0, 0.0
        for u in data.usable_dates(cfg.min_stocks_per_date):
            if u + h > t:
                continue
            bt = data.batch([u])
            y = bt.y[:, j].double().numpy()
            ok = np.isfinite(y)
            s_u = model.skip_inputs(bt.x[:, -1], bt.edge_index, bt.edge_attr).double().numpy()[ok] @ b
            z = np.clip((y[ok] - y[ok].mean()) / y[ok].std(), -cfg.label_clip, cfg.label_clip)
            g, c, n = (
                g + a ** (t - u) * s_u.T @ s_u,
                c + a ** (t - u) * s_u.T @ z,
                n + a ** (t - u) * ok.sum(),
            )
        d = np.diag(np.maximum(np.diag(g / n), 1e-12 * np.diag(g / n).max()))
        m = np.linalg.solve(g / n + 0.3 * d, c / n + 0.3 * d.sum(1))
        np.testing.assert_allclose(got[j], b @ (m - 1), rtol=1e-6, atol=1e-9)
        assert np.ptp(m) > 0.05  # the groups move apart: more than one common scale


def test_a_group_whose_skip_weights_are_all_zero_keeps_multiplier_one_and_is_not_solved(monkeypatch):
    """An untrained model's skip is all zeros: on a GPU the old solve got a singular (subnormal-diagonal)
    system and raised; a zero sub-score must be left out of the solve, and an all-zero skip needs none."""
    from atft_dagster.training import skip_timing

    solve = torch.linalg.solve

    def strict_solve(a, b):  # what a GPU solver accepts: a diagonal of normal numbers
        assert bool((a.diagonal().abs() > torch.finfo(a.dtype).tiny).all()), "near-singular system"
        return solve(a, b)

    monkeypatch.setattr(torch.linalg, "solve", strict_solve)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 6, generator=gen, dtype=torch.float64)
    gram, cross = x.T @ x / 50, x.T @ torch.randn(50, generator=gen, dtype=torch.float64) / 50
    member = torch.tensor([0, 0, 1, 1, 2, 2])
    beta = torch.tensor([0.5, -0.2, 0.0, 0.0, 0.3, 0.1], dtype=torch.float64)
    b = torch.zeros(6, 3, dtype=torch.float64)
    b[torch.arange(6), member] = beta  # group 1's weights are all zero
    got = skip_timing._group_delta(gram, cross, b, 1.0)
    live = [0, 2]  # the reference: the system of the live groups alone
    g, c = (b.T @ gram @ b)[live][:, live], (b.T @ cross)[live]
    m = solve(g + torch.diag(g.diagonal()), c + g.diagonal())
    torch.testing.assert_close(got, b[:, live] @ (m - 1))
    assert got[2:4].abs().max() == 0 and got.abs().max() > 0
    assert skip_timing._group_delta(gram, cross, torch.zeros(6, 3, dtype=torch.float64), 1.0).abs().max() == 0


def test_timing_reads_no_label_that_has_not_ended(setup):  # noqa: F811
    cfg, data, _, split, _ = setup
    model = _ridge_started(cfg, data, split, skip_timing_half_life=10.0, skip_timing_horizons=cfg.horizons)
    t = split.selection[-1]
    before = predict(model, data, [t], cfg.batch_dates)
    leaked = copy.copy(data)  # the same panel, every label that ends after t replaced by noise
    y = data.y.clone()
    steps = torch.arange(y.shape[0])[:, None]
    for j, h in enumerate(cfg.horizons):
        late = (steps + h > t).expand(-1, y.shape[1])
        y[:, :, j] = torch.where(late, torch.randn_like(y[:, :, j]), y[:, :, j])
    leaked.y = y
    after = predict(model, leaked, [t], cfg.batch_dates)
    for h in cfg.horizons:
        np.testing.assert_array_equal(before[f"pred_{h}d"].to_numpy(), after[f"pred_{h}d"].to_numpy())
    # ...while a label that has ended does move it
    y2 = data.y.clone()
    y2[t - 1, :, 0] = torch.randn_like(y2[t - 1, :, 0])
    leaked.y = y2
    moved = predict(model, leaked, [t], cfg.batch_dates)
    assert not np.allclose(before["pred_1d"].to_numpy(), moved["pred_1d"].to_numpy())


def test_the_half_life_and_the_shrinkage_change_the_predictions(setup):  # noqa: F811
    cfg, data, _, split, _ = setup
    dates = split.selection[:4]

    def delta(**timing):
        model = _ridge_started(cfg, data, split, **timing)
        d = timed_skip_deltas(model, data, dates)
        return torch.stack([d[t] for t in dates])

    base = delta(skip_timing_half_life=10.0, skip_timing_shrink=1.0)
    assert not torch.allclose(base, delta(skip_timing_half_life=40.0, skip_timing_shrink=1.0))
    stiff = delta(skip_timing_half_life=10.0, skip_timing_shrink=1e6)
    assert stiff.abs().max() < 1e-3 * base.abs().max()  # a huge penalty keeps the trained skip
    assert base[:, 0].abs().max() > 0 and base[:, 1:].abs().max() == 0  # default: the 1-day horizon only
    every = delta(skip_timing_half_life=10.0, skip_timing_shrink=1.0, skip_timing_horizons=cfg.horizons)
    torch.testing.assert_close(every[:, 0], base[:, 0], rtol=1e-9, atol=1e-12)  # horizons are independent
    assert every[:, 1:].abs().amax(dim=-1).min() > 0


def test_timing_needs_the_input_skip():
    with pytest.raises(ValueError, match="input skip"):
        TrainingConfig(input_skip=False, skip_timing_half_life=20.0)
    with pytest.raises(ValueError, match="among horizons"):
        TrainingConfig(skip_timing_horizons=[3])
    assert TrainingConfig.from_recorded({})  # old records read timing as off
    assert TrainingConfig.from_recorded({}).skip_timing_half_life == 0
    # timing became a gated default later: a record that set timing by hand reads as it ran, ungated
    assert not TrainingConfig.from_recorded(
        {"input_skip": True, "skip_timing_half_life": 20.0}
    ).skip_timing_gate
    assert TrainingConfig().skip_timing_gate and TrainingConfig().skip_timing_half_life == 20


def _fixture_graph():
    from atft_dagster.graph import build_stock_graph
    from atft_dagster.market import SyntheticMarketConfig
    from atft_dagster.panel import build_market_panel
    from atft_dagster.sources import SyntheticSource

    src = SyntheticSource(SyntheticMarketConfig(seed=8, n_stocks=40, n_days=220))  # the fixture's market
    d = src.history_days()
    panel = build_market_panel(
        src.daily_quotes(d[0], d[-1]), src.sector_master(d[-1]), src.calendar(d[0], d[-1])
    )
    return build_stock_graph(panel, src.topix(d[0], d[-1]))


def test_a_daily_prediction_times_the_skip_like_the_full_history(setup, tmp_path):  # noqa: F811
    from atft_dagster.training.daily import predict_day
    from atft_dagster.training.ensemble import ensemble_predict
    from atft_dagster.training.skip_timing import timing_history
    from atft_dagster.training.train import load_model, train

    cfg, data, reg, split, feats = setup
    graph = _fixture_graph()
    timed = cfg.model_copy(
        update={
            "epochs": 1,
            "skip_timing_half_life": 4.0,
            "skip_timing_gate": False,
            "skip_ridge_penalties": [1.0],
        }
    )
    best = train(data, timed, split, tmp_path, {}).best_checkpoint
    assert timing_history(timed) == 40 + 1  # the default times the 1-day horizon only
    t = split.test[-1]
    want = ensemble_predict([best], data, [t])[0].sort("code")  # member ranks, as predict_day gives
    got = predict_day([str(best)], feats, reg, graph, data.dates[t]).sort("code")
    for h in cfg.horizons:
        np.testing.assert_allclose(got[f"pred_{h}d"], want[f"pred_{h}d"], rtol=1e-3, atol=1e-4)
    plain = load_model(best)[0]
    plain.cfg = cfg  # the same model, timing off: its ranking differs
    untimed = predict(plain, data, [t], cfg.batch_dates).sort("code")
    timed_raw = predict(load_model(best)[0], data, [t], cfg.batch_dates).sort("code")
    assert np.abs(timed_raw["pred_1d"].to_numpy() - untimed["pred_1d"].to_numpy()).max() > 1e-2
    # training never reads timing: the same model trained with it off, timed at prediction, is the same
    off = train(data, timed.model_copy(update={"skip_timing_half_life": 0.0}), split, tmp_path / "off", {})
    pair = [off.best_checkpoint] * 2  # the second member reuses the first one's statistics
    preloaded = {str(off.best_checkpoint): load_model(off.best_checkpoint)[0]}
    late, members = ensemble_predict(
        [str(p) for p in pair], data, [t], timing={"skip_timing_half_life": 4.0}, loaded=preloaded
    )
    for h in cfg.horizons:
        np.testing.assert_array_equal(late.sort("code")[f"pred_{h}d"], want[f"pred_{h}d"])
        np.testing.assert_array_equal(members[1][f"pred_{h}d"], members[0][f"pred_{h}d"])
    # the override was for that call only: the caller's loaded model still predicts untimed
    assert preloaded[str(off.best_checkpoint)].cfg.skip_timing_half_life == 0.0
    with pytest.raises(ValueError, match="skip_timing_"):
        ensemble_predict([off.best_checkpoint], data, [t], timing={"hidden": 8})


def test_members_share_the_timing_statistics_of_another_model_with_the_same_config(setup):  # noqa: F811
    from atft_dagster.training.skip_timing import timing_key, timing_statistics

    cfg, data, _, split, _ = setup
    a = _ridge_started(cfg, data, split, skip_timing_half_life=10.0)
    b = ATFTGATFAN(data.n_features, a.cfg)  # other weights, the same timing config
    fit_input_skip(b, data, split.train[:30], 10.0, cfg.batch_dates)
    assert timing_key(a.cfg) == timing_key(b.cfg)
    assert not torch.allclose(a.skip.lin.weight, b.skip.lin.weight)
    shared = timing_statistics(b, data, split.selection)
    alone = predict(a, data, split.selection, cfg.batch_dates)
    with_shared = predict(a, data, split.selection, cfg.batch_dates, "fp32", shared)
    for h in cfg.horizons:
        np.testing.assert_array_equal(alone[f"pred_{h}d"].to_numpy(), with_shared[f"pred_{h}d"].to_numpy())
    assert timing_key(a.cfg) != timing_key(a.cfg.model_copy(update={"skip_timing_half_life": 11.0}))


def _reweighted(ref, basis, gram, cross, kappa):
    """``ref`` in its group basis, with group multipliers from (gram, cross) shrunk towards 1."""
    gb, cb = basis.T @ gram @ basis, basis.T @ cross
    d = np.diag(np.diag(gb))
    return ref + basis @ (np.linalg.solve(gb + kappa * d, cb + kappa * d.sum(1)) - 1)


def _numpy_gate_gains(data, model, t, cfg, j=0):
    """The gate's gains up to date t (horizon ``j``), {s: gain}, computed independently: for each usable date
    s past the burn-in, an expanding ridge over the labels ended by s, re-weighted by group multipliers fitted
    on the ended dates with EWMA weights (timed) and with equal weights (static), predicts s. The gate at t
    averages the gains of the dates whose label has ended by t."""
    from atft_dagster.training.skip_timing import group_basis

    a, kappa, h = 0.5 ** (1 / cfg.skip_timing_half_life), cfg.skip_timing_shrink, cfg.horizons[j]
    days = np.array([u for u in data.usable_dates(cfg.min_stocks_per_date) if u <= t])
    xs, ys = [], []
    for u in days:
        b = data.batch([int(u)])
        x = model.skip_inputs(b.x[:, -1], b.edge_index, b.edge_attr).double().numpy()
        y = b.y[:, j].double().numpy()
        ok = np.isfinite(y)
        xs.append(x[ok])
        ys.append(np.clip((y[ok] - y[ok].mean()) / y[ok].std(), -cfg.label_clip, cfg.label_clip))
    grams = np.stack([x.T @ x for x in xs])
    crosses = np.stack([x.T @ y for x, y in zip(xs, ys, strict=True)])
    rows = np.array([len(y) for y in ys], dtype=float)
    gains = {}
    for i, s in enumerate(days):
        ended = days + h <= s
        if ended.sum() < cfg.skip_timing_gate_burn_in:
            continue
        g, c, n = grams[ended].sum(0), crosses[ended].sum(0), rows[ended].sum()
        ref = np.linalg.solve(g / n + cfg.skip_timing_gate_penalty * np.eye(g.shape[0]), c / n)
        w = np.where(ended, a ** (s - days), 0.0)
        ge = np.tensordot(w, grams, 1) / (w @ rows)
        ce = (w @ crosses) / (w @ rows)
        basis = group_basis(torch.from_numpy(ref)[None], data.groups, model.with_neighbour_mean)[0].numpy()
        timed = xs[i] @ _reweighted(ref, basis, ge, ce, kappa)
        static = xs[i] @ _reweighted(ref, basis, g / n, c / n, kappa)
        gains[int(s)] = np.corrcoef(timed, ys[i])[0, 1] - np.corrcoef(static, ys[i])[0, 1]
    return gains


GATE = {
    "skip_timing_half_life": 10.0,
    "skip_timing_gate": True,
    "skip_timing_gate_burn_in": 20,
    "skip_timing_gate_min_t": 1.0,
}


def test_the_gate_is_a_point_in_time_backtest_of_timing(setup):  # noqa: F811
    from atft_dagster.training.skip_timing import timing_statistics

    cfg, data, _, split, _ = setup
    model = _ridge_started(cfg, data, split, **GATE)
    dates = [t for t in data.usable_dates(cfg.min_stocks_per_date) if t <= split.selection[-1]]
    stats = timing_statistics(model, data, dates)
    gains = _numpy_gate_gains(data, model, max(dates), model.cfg)
    for t in dates:
        ended = [g for s, g in gains.items() if s + cfg.horizons[0] <= t]
        if not ended:  # the burn-in: timing off
            assert np.isnan(stats.gate[t][0][0])
            continue
        mean, t_stat = stats.gate[t][0]
        np.testing.assert_allclose(mean, np.mean(ended), rtol=1e-6, atol=1e-9)
        if len(ended) > 1:
            want_t = np.mean(ended) / (np.std(ended, ddof=1) / np.sqrt(len(ended)))
            np.testing.assert_allclose(t_stat, want_t, rtol=1e-6, atol=1e-9)
    assert np.isfinite(stats.gate[split.selection[-1]][0][1])
    on = [t for t in dates if stats.gate[t][0][1] > GATE["skip_timing_gate_min_t"]]
    assert 0 < len(on) < len(dates)  # this market's backtest changes its mind: both branches are met
    # timing is applied exactly where the mean gain is > 0, and nothing is timed elsewhere
    gated = timed_skip_deltas(model, data, dates, stats)
    ungated = timed_skip_deltas(model, data, dates, dataclasses.replace(stats, gate=None))
    for t in dates:
        want = ungated[t] if t in on else torch.zeros_like(ungated[t])
        torch.testing.assert_close(gated[t], want, rtol=1e-9, atol=1e-12)
    assert max(float(ungated[t].abs().max()) for t in on) > 0
    # the knobs: a burn-in longer than the history scores nothing (timing off); the penalty moves the gains
    dates = dates[:1]
    late = _ridge_started(cfg, data, split, **GATE | {"skip_timing_gate_burn_in": 10**4})
    none = timing_statistics(late, data, dates)
    assert all(np.isnan(none.gate[t][0][0]) for t in dates)
    assert all(timed_skip_deltas(late, data, dates, none)[t].abs().max() == 0 for t in dates)
    stiff = timing_statistics(
        _ridge_started(cfg, data, split, **GATE | {"skip_timing_gate_penalty": 30.0}), data, dates
    )
    assert all(stiff.gate[t][0][0] != stats.gate[t][0][0] for t in dates)
    strict = _ridge_started(cfg, data, split, **GATE | {"skip_timing_gate_min_t": 1e9})  # never clear enough
    assert all(timed_skip_deltas(strict, data, on, stats)[t].abs().max() == 0 for t in on)


@pytest.mark.parametrize("gate", [False, True])
def test_the_gated_timing_reads_no_label_that_has_not_ended(setup, gate):  # noqa: F811
    cfg, data, _, split, _ = setup
    model = _ridge_started(cfg, data, split, **GATE | {"skip_timing_gate": gate})
    t = split.selection[-1]
    before = predict(model, data, [t], cfg.batch_dates)
    leaked = copy.copy(data)
    y = data.y.clone()
    late = (torch.arange(y.shape[0])[:, None] + cfg.horizons[0] > t).expand(-1, y.shape[1])
    y[:, :, 0] = torch.where(late, torch.randn_like(y[:, :, 0]), y[:, :, 0])
    leaked.y = y
    after = predict(model, leaked, [t], cfg.batch_dates)
    np.testing.assert_array_equal(before["pred_1d"].to_numpy(), after["pred_1d"].to_numpy())


def test_a_gated_daily_prediction_reads_the_whole_history_and_matches_it(setup, tmp_path):  # noqa: F811
    from atft_dagster.training.daily import predict_day
    from atft_dagster.training.ensemble import rank_average
    from atft_dagster.training.skip_timing import WHOLE_HISTORY, timing_history, timing_statistics
    from atft_dagster.training.train import load_model, train

    cfg, data, reg, split, feats = setup
    gated = cfg.model_copy(update={"epochs": 1, "skip_ridge_penalties": [1.0]} | GATE)
    best = train(data, gated, split, tmp_path, {}).best_checkpoint
    assert timing_history(gated) == WHOLE_HISTORY
    model = load_model(best)[0]
    dates = split.selection + split.test
    stats = timing_statistics(model, data, dates)
    t = max(t for t in dates if stats.gate[t][0][1] > gated.skip_timing_gate_min_t)  # a day the gate times
    member = predict(model, data, [t], cfg.batch_dates, "fp32", stats)
    want = rank_average([member], cfg.horizons).sort("code")  # as predict_day ranks its members
    got = predict_day([str(best)], feats, reg, _fixture_graph(), data.dates[t]).sort("code")
    for h in cfg.horizons:
        np.testing.assert_allclose(got[f"pred_{h}d"], want[f"pred_{h}d"], rtol=1e-3, atol=1e-4)


def _assert_same_statistics(got, want, t):
    for a, b in zip(got.per_date[t], want.per_date[t], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.array(got.gate[t]), np.array(want.gate[t]), rtol=1e-9, atol=1e-12)


def test_a_timing_pass_continues_from_its_kept_state_to_the_whole_passs_figures(setup, tmp_path):  # noqa: F811
    from atft_dagster.training.data import PanelTensors
    from atft_dagster.training.skip_timing import ResumeRefused, TimingState, timing_statistics

    cfg, data, reg, split, feats = setup
    model = _ridge_started(cfg, data, split, **GATE)
    early, late = split.selection[-1], split.test[-1]
    whole = timing_statistics(model, data, [late])
    assert np.isfinite(whole.gate[late][0][1])  # the backtest has scored by then
    kept = timing_statistics(model, data, [early]).state
    assert kept.last == data.dates[early] and kept.pending and any(kept.gate["waiting"])
    torch.save(kept.to_dict(), tmp_path / "s.pt")  # plain tensors, lists and strings
    kept = TimingState.from_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    _assert_same_statistics(timing_statistics(model, data, [late], kept), whole, late)
    # on a daily prediction's short panel: only the dates the state still reads, and those after it
    oldest = min([kept.last, *kept.checks])
    short, t = PanelTensors.for_day(
        feats,
        reg,
        _fixture_graph(),
        data.dates[late],
        cfg.horizons,
        cfg.seq_len,
        cfg.input_clip,
        history=late - data.dates.index(oldest),
    )
    assert len(short.dates) < len(data.dates)
    again = timing_statistics(model, short, [t], kept)
    for a, b in zip(again.per_date[t], whole.per_date[late], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.array(again.gate[t]), np.array(whole.gate[late]), rtol=1e-6)
    # refused: another timing config, a date the state has passed, other inputs
    other = _ridge_started(cfg, data, split, **GATE | {"skip_timing_half_life": 5.0})
    with pytest.raises(ResumeRefused, match="another timing config"):
        timing_statistics(other, data, [late], kept)
    with pytest.raises(ResumeRefused, match="passed"):
        timing_statistics(model, data, [early], kept)
    changed = copy.copy(data)
    changed.x = data.x.clone()
    changed.x[data.dates.index(oldest)] += 0.5
    with pytest.raises(ResumeRefused, match="features changed"):
        timing_statistics(model, changed, [late], kept)


def test_daily_predictions_keep_the_timing_pass_and_continue_it(setup, tmp_path, monkeypatch):  # noqa: F811
    import polars as pl

    from atft_dagster.training.checkpoint import save_checkpoint
    from atft_dagster.training.daily import predict_day
    from atft_dagster.training.timing_state import history_fingerprint, latest_state, state_dir

    cfg, data, reg, split, feats = setup
    model = _ridge_started(cfg, data, split, **GATE)
    ck = tmp_path / "m.pt"
    save_checkpoint(
        {"config": model.cfg.model_dump(), "state_dict": model.state_dict(), "n_features": data.n_features},
        ck,
    )
    graph, timing_dir = _fixture_graph(), tmp_path / "timing"
    d0, d1, d2, d3, d4 = (data.dates[t] for t in split.test[-13::3])

    def daily(day, frame=feats):
        notes: list[str] = []
        got = predict_day([str(ck)], frame, reg, graph, day, timing_dir=timing_dir, notes=notes)
        if "continued" not in notes[0]:
            return notes[0]  # it read the whole history itself
        want = predict_day([str(ck)], frame, reg, graph, day)  # the whole history, nothing kept
        for h in cfg.horizons:
            np.testing.assert_allclose(
                got.sort("code")[f"pred_{h}d"], want.sort("code")[f"pred_{h}d"], atol=0, rtol=0
            )
        return notes[0]

    assert f"whole history (no kept state before {d1})" in daily(d1)
    folder = state_dir(timing_dir, model.cfg)
    assert [p.name for p in folder.iterdir()] == [f"{d1}.pt"]
    assert daily(d2) == f"skip timing continued the state of {d1}"
    # the continued pass extends the fingerprint by the new rows: as if read whole
    timed = model.cfg.skip_timing_horizons
    assert latest_state(folder, d3).fingerprint == history_fingerprint(
        feats, graph, reg.names, d2, None, timed
    )
    assert f"no kept state before {d0}" in daily(d0)  # an earlier day: the whole history, kept as well
    assert daily(d1) == f"skip timing continued the state of {d0}"  # a backfill continues its own
    assert daily(d3) == f"skip timing continued the state of {d2}"  # the latest state before the day
    # the three most recently written stay (d2's went when d3's was written)
    assert sorted(p.name for p in folder.iterdir()) == [f"{d}.pt" for d in (d0, d1, d3)]
    old = feats.with_columns(
        pl.when(pl.col("date") == data.dates[split.train[3]])
        .then(pl.col(reg.names[0]) + 1.0)
        .otherwise(pl.col(reg.names[0]))
        .alias(reg.names[0])
    )
    assert "changed since the state was kept" in daily(d4, old)  # a revised old date is caught

    # each member's checkpoint is read once, the first one's serving its config and the timing pass too
    import shutil

    from atft_dagster.training import train as train_module

    second, reads, real = tmp_path / "m2.pt", [], train_module.load_checkpoint
    shutil.copy(ck, second)
    monkeypatch.setattr(train_module, "load_checkpoint", lambda p, *a: reads.append(p) or real(p, *a))
    predict_day([str(ck), str(second)], feats, reg, graph, d4, timing_dir=timing_dir)
    assert reads == [ck, second]
    label = f"target_{timed[0]}d"

    def revised(day):
        bumped = pl.when(pl.col("date") == day).then(pl.col(label) + 1.0).otherwise(pl.col(label))
        return feats.with_columns(bumped.alias(label))

    # a label still running at the state's last date is read when it ends: the pass continues
    assert daily(d4, revised(d3)) == f"skip timing continued the state of {d3}"
    # a label the kept pass had taken in (ended long before) is caught, although no input changed
    assert "changed since the state was kept" in daily(d4, revised(data.dates[split.train[3]]))
    for p in folder.iterdir():
        p.write_bytes(b"damaged")
    assert "no kept state" in daily(d4)


def test_the_gates_t_statistic_allows_for_overlapping_labels(setup):  # noqa: F811
    """At h days, the gains of dates under h days apart share label days: Newey-West with lag h - 1."""
    from atft_dagster.evaluation.metrics import newey_west_t
    from atft_dagster.training.skip_timing import timing_statistics

    cfg, data, _, split, _ = setup
    model = _ridge_started(cfg, data, split, **GATE | {"skip_timing_horizons": cfg.horizons[:2]})
    j, h = 1, cfg.horizons[1]
    t = split.selection[-1]
    stats = timing_statistics(model, data, [t])
    gains = _numpy_gate_gains(data, model, t, model.cfg, j)
    ended = np.array([g for s, g in sorted(gains.items()) if s + h <= t])
    mean, t_stat = stats.gate[t][j]
    np.testing.assert_allclose(mean, ended.mean(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(t_stat, newey_west_t(ended, h - 1), rtol=1e-6)
    plain = ended.mean() / (ended.std(ddof=1) / np.sqrt(len(ended)))
    assert abs(t_stat - plain) > 0.05 * abs(plain)  # the lag matters here
