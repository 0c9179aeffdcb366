"""The learned baselines are tuned like the model: LightGBM stops on validation, ridge's penalty and
LightGBM's grid point are chosen on selection, and the test window's labels are never read."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import Ridge

from atft_dagster.evaluation.baselines import (
    BaselineConfig,
    DailyRankIC,
    grid_edge,
    label_z,
    learned_baselines,
    ridge_grid_edge,
)
from atft_dagster.evaluation.report import baseline_choices_md
from atft_dagster.features.normalise import NormaliserConfig, normalise, to_arrays
from atft_dagster.features.registry import Feature, FeatureRegistry

N_FEATURES, N_STOCKS, N_DATES = 6, 60, 100
REGISTRY = FeatureRegistry(tuple(Feature(f"f{i}", "test", 0, pl.lit(0.0)) for i in range(N_FEATURES)))
FAST = BaselineConfig(
    ridge_penalty_scales=[1e-5, 1e-2, 100.0],
    lightgbm_num_leaves=[3, 7],
    lightgbm_min_child_samples=[20],
    lightgbm_max_rounds=120,
    lightgbm_early_stopping=10,
)


def _frame(signal: float, seed: int = 0) -> pl.DataFrame:
    """Stocks x dates with features f0..f5; target_1d = signal * f0 - signal * f1^2 + noise."""
    rng = np.random.default_rng(seed)
    dates = [date(2024, 1, 1) + timedelta(days=i) for i in range(N_DATES)]
    x = rng.standard_normal((N_DATES * N_STOCKS, N_FEATURES))
    y = signal * (x[:, 0] - x[:, 1] ** 2) + rng.standard_normal(len(x))
    return pl.DataFrame(
        {
            "date": pl.Series([d for d in dates for _ in range(N_STOCKS)], dtype=pl.Date),
            "code": np.tile([f"{1000 + i}" for i in range(N_STOCKS)], N_DATES),
            **{f"f{i}": x[:, i] for i in range(N_FEATURES)},
            "target_1d": y,
        }
    )


def _windows(df: pl.DataFrame) -> tuple[dict[str, list[date]], list[date]]:
    d = df["date"].unique().sort().to_list()
    return {"train": d[:50], "val": d[50:65], "selection": d[65:80]}, d[80:]


def _fit(df: pl.DataFrame, cfg: BaselineConfig = FAST):
    windows, test = _windows(df)
    keys = df.filter(pl.col("date").is_in(windows["selection"] + test)).select("date", "code")
    return learned_baselines(df, REGISTRY, windows, keys, [1], cfg, min_stocks=10)


def test_ridge_penalty_is_the_selection_argmax_and_matches_sklearn():
    df = _frame(0.3)
    fit = _fit(df)
    windows, _ = _windows(df)
    z = normalise(df, REGISTRY, NormaliserConfig(clip=5.0))
    tr, sel = (z.filter(pl.col("date").is_in(windows[w])) for w in ("train", "selection"))
    x, _ = to_arrays(tr, REGISTRY.names)
    xs, _ = to_arrays(sel, REGISTRY.names)
    y = label_z(tr, "target_1d", 3.0)
    score = DailyRankIC(sel["date"].to_numpy(), sel["target_1d"].to_numpy(), 10)
    top = np.linalg.eigvalsh(x.T.astype(np.float64) @ x).max()  # the penalties are scales of it
    by_scale = {r: Ridge(alpha=r * top, fit_intercept=False).fit(x, y) for r in FAST.ridge_penalty_scales}
    scores = {r: score(xs @ m.coef_) for r, m in by_scale.items()}
    assert len(set(scores.values())) == 3  # the scales give different rankings
    chosen = next(c for c in fit.choices if c["model"] == "ridge")
    assert chosen["penalty_scale"] == max(scores, key=scores.get)
    assert chosen["penalty"] == pytest.approx(chosen["penalty_scale"] * top)
    assert chosen["selection_rank_ic"] == pytest.approx(scores[chosen["penalty_scale"]])
    got = sel.select("date", "code").join(fit.predictions, on=["date", "code"])["ridge_1d"].to_numpy()
    np.testing.assert_allclose(got, xs @ by_scale[chosen["penalty_scale"]].coef_, rtol=1e-4, atol=1e-6)


def test_a_choice_at_an_end_of_the_grid_is_flagged_in_the_report():
    assert [grid_edge(i, 4) for i in range(4)] == ["lower", None, None, "upper"]
    assert grid_edge(0, 2) is None and grid_edge(1, 2) is None  # two points: both are ends, nothing to say
    chosen = next(c for c in _fit(_frame(0.3)).choices if c["model"] == "ridge")
    assert chosen["penalty_scale"] in FAST.ridge_penalty_scales and "grid_edge" in chosen
    # an end at one of ridge's limits is no edge: nothing lies beyond it (eigenvalues of X'X 10 to 1e5)
    eig = (10.0, 1e5)
    assert ridge_grid_edge([1.0, 1e3, 1e6], 2, eig) == "upper"
    assert ridge_grid_edge([1.0, 1e3, 1e7], 2, eig) is None  # 100 x the largest: weights ∝ X'y
    assert ridge_grid_edge([1.0, 1e3, 1e7], 0, eig) == "lower"
    assert ridge_grid_edge([0.1, 1e3, 1e7], 0, eig) is None  # the smallest / 100: least squares
    one = {"fold": 0, "model": "ridge", "horizon": 1, "penalty": 1e5, "selection_rank_ic": 0.1}
    assert "grid's upper end" in baseline_choices_md([{**one, "grid_edge": "upper"}])
    assert "grid's" not in baseline_choices_md([{**one, "grid_edge": None}])


def test_lightgbm_stops_on_validation_and_learns_the_nonlinear_term():
    noise = next(c for c in _fit(_frame(0.0)).choices if c["model"] == "lightgbm")
    assert noise["rounds"] < FAST.lightgbm_max_rounds  # stopped early on validation
    df = _frame(0.5)
    fit = _fit(df)
    lgbm = next(c for c in fit.choices if c["model"] == "lightgbm")
    assert lgbm["num_leaves"] in FAST.lightgbm_num_leaves
    _, test = _windows(df)
    rows = df.filter(pl.col("date").is_in(test)).join(fit.predictions, on=["date", "code"])
    ic = DailyRankIC(rows["date"].to_numpy(), rows["target_1d"].to_numpy(), 10)
    # the f1^2 term is invisible to ridge; trees find it
    assert ic(rows["lightgbm_1d"].to_numpy()) > ic(rows["ridge_1d"].to_numpy()) + 0.1


def test_test_window_labels_are_never_read_and_selection_labels_are():
    df = _frame(0.3)
    _, test = _windows(df)
    base = _fit(df)
    rng = np.random.default_rng(5)
    in_test = pl.col("date").is_in(test)
    scrambled = df.with_columns(
        pl.when(in_test)
        .then(pl.lit(rng.standard_normal(df.height)))
        .otherwise(pl.col("target_1d"))
        .alias("target_1d")
    )
    again = _fit(scrambled)
    assert again.choices == base.choices
    assert again.predictions.equals(base.predictions)
    windows, _ = _windows(df)
    in_sel = pl.col("date").is_in(windows["selection"])
    sel_scrambled = df.with_columns(
        pl.when(in_sel)
        .then(pl.lit(rng.standard_normal(df.height)))
        .otherwise(pl.col("target_1d"))
        .alias("target_1d")
    )
    assert _fit(sel_scrambled).choices != base.choices  # the choice reads the selection labels


def test_zero_spread_day_gives_zero_labels_not_nan():
    df = _frame(0.3).with_columns(
        pl.when(pl.col("date") == date(2024, 1, 3))
        .then(0.01)
        .otherwise(pl.col("target_1d"))
        .alias("target_1d")
    )
    z = label_z(df, "target_1d", 3.0)
    assert np.isfinite(z).all()
    assert (z[df["date"].to_numpy() == np.datetime64("2024-01-03")] == 0).all()
    assert np.isfinite(_fit(df).predictions["ridge_1d"].to_numpy()).all()


def test_every_baseline_setting_changes_the_fit():
    df = _frame(0.3)
    base = _fit(df)
    for change in (
        {"ridge_penalty_scales": [1e-4]},
        {"lightgbm_num_leaves": [15]},
        {"lightgbm_max_rounds": 3},
        {"lightgbm_learning_rate": 0.2},
    ):
        other = _fit(df, FAST.model_copy(update=change))
        assert not other.predictions.equals(base.predictions), change


def test_lightgbm_threads_reach_lightgbm(monkeypatch):
    import lightgbm as lgb

    seen, train = [], lgb.train
    monkeypatch.setattr(
        lgb, "train", lambda params, *a, **k: seen.append(params["num_threads"]) or train(params, *a, **k)
    )
    _fit(_frame(0.3), FAST.model_copy(update={"lightgbm_threads": 1}))
    assert seen and set(seen) == {1}


def test_ridge_fits_on_the_refit_window_when_given_and_lightgbm_stays_on_train():
    df = _frame(0.3)
    windows, test = _windows(df)
    keys = df.filter(pl.col("date").is_in(windows["selection"] + test)).select("date", "code")
    refit = windows["train"] + windows["val"]
    with_refit = learned_baselines(df, REGISTRY, {**windows, "refit": refit}, keys, [1], FAST, min_stocks=10)
    plain = _fit(df)
    z = normalise(df, REGISTRY, NormaliserConfig(clip=5.0))
    rows = z.filter(pl.col("date").is_in(refit))
    x, _ = to_arrays(rows, REGISTRY.names)
    top = np.linalg.eigvalsh(x.T.astype(np.float64) @ x).max()
    chosen = next(c for c in with_refit.choices if c["model"] == "ridge")
    assert chosen["penalty"] == pytest.approx(chosen["penalty_scale"] * top)
    coef = Ridge(alpha=chosen["penalty"], fit_intercept=False).fit(x, label_z(rows, "target_1d", 3.0)).coef_
    sel = z.filter(pl.col("date").is_in(windows["selection"]))
    got = sel.select("date", "code").join(with_refit.predictions, on=["date", "code"])["ridge_1d"].to_numpy()
    np.testing.assert_allclose(got, to_arrays(sel, REGISTRY.names)[0] @ coef, rtol=1e-4, atol=1e-6)
    assert not np.allclose(with_refit.predictions["ridge_1d"], plain.predictions["ridge_1d"])
    lgbm = [c for c in with_refit.choices if c["model"] == "lightgbm"]
    assert lgbm == [c for c in plain.choices if c["model"] == "lightgbm"]
    assert with_refit.predictions["lightgbm_1d"].equals(plain.predictions["lightgbm_1d"])


def test_paired_rows_difference_the_models_day_by_day_on_common_days():
    from datetime import date, timedelta

    from atft_dagster.evaluation.metrics import newey_west_t
    from atft_dagster.evaluation.report import paired_md, paired_rows

    rng = np.random.default_rng(0)
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(60)]
    market = rng.normal(0, 0.05, 60)  # the day's difficulty, shared by every model

    def series(edge: float, drop: int = 0) -> pl.DataFrame:
        ric = market + edge + rng.normal(0, 0.01, 60)
        return pl.DataFrame({"date": days, "rank_ic": ric})[drop:]

    daily = {"m": series(0.02), "close": series(0.019), "far": series(-0.02, drop=10)}
    rows = {r["versus"]: r for r in paired_rows(daily, "m", 4)}
    assert set(rows) == {"close", "far"}
    diff = (daily["m"]["rank_ic"][10:] - daily["far"]["rank_ic"]).to_numpy()
    far = rows["far"]
    assert far["days"] == 50 and far["days_ahead"] == int((diff > 0).sum())  # the far model's 50 days only
    assert far["rank_ic_difference"] == pytest.approx(diff.mean())
    assert far["t"] == pytest.approx(newey_west_t(diff, 4)) and far["t"] > 10  # the shared noise cancels
    assert abs(rows["close"]["t"]) < 3
    text = paired_md(list(rows.values()), "m", 4)
    assert "(lag 4)" in text and f"| far | {far['rank_ic_difference']:+.4f} |" in text


def test_state_rows_split_each_models_days_into_turbulent_and_other():
    from datetime import date, timedelta

    from atft_dagster.evaluation.report import STATE_COLUMN, state_md, state_rows, turbulent_dates

    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(40)]
    hot = [i % 4 == 0 for i in range(40)]  # ten turbulent days
    features = pl.DataFrame(
        {"date": days * 2, "code": ["A"] * 40 + ["B"] * 40, STATE_COLUMN: [float(h) for h in hot] * 2}
    )
    turbulent = turbulent_dates(features)
    assert turbulent == {d for d, h in zip(days, hot, strict=True) if h}
    assert turbulent_dates(features.drop(STATE_COLUMN)) is None
    # a model that ranks well in calm days and against the truth in turbulent ones
    ric = [-0.05 if h else 0.08 for h in hot]
    daily = {
        "m": pl.DataFrame({"date": days, "rank_ic": ric}),
        "none": pl.DataFrame({"date": days[1:4], "rank_ic": [0.1] * 3}),
    }
    rows = {r["model"]: r for r in state_rows(daily, turbulent)}
    assert rows["m"]["turbulent_rank_ic"] == pytest.approx(-0.05) and rows["m"]["turbulent_days"] == 10
    assert rows["m"]["other_rank_ic"] == pytest.approx(0.08) and rows["m"]["other_days"] == 30
    assert rows["none"]["turbulent_days"] == 0 and np.isnan(rows["none"]["turbulent_rank_ic"])
    text = state_md(list(rows.values()))
    assert "| m | -0.0500 (10 d) | 0.0800 (30 d) |" in text and "| none | – (0 d) | 0.1000 (3 d) |" in text


def test_report_warns_when_a_window_holds_too_few_independent_labels():
    """120 days of 20-day labels hold 6 non-overlapping ones: the report must say its t is unreliable."""
    from datetime import date, timedelta

    from atft_dagster.evaluation.report import overlap_note, score_models, table_md

    rng = np.random.default_rng(1)
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(120)]
    frame = pl.DataFrame(
        {
            "date": pl.Series([d for d in days for _ in range(30)], dtype=pl.Date),
            "code": np.tile([str(1300 + i) for i in range(30)], 120),
            "p": rng.normal(size=3600),
            "label_20d": rng.normal(size=3600),
        }
    )
    reports, _ = score_models(frame, {"m": "p"}, "label_20d", 20, 19)
    assert "only 6 non-overlapping 20-day labels" in table_md(reports, 20)
    assert "non-overlapping" not in table_md(reports, 1)
    assert overlap_note(960, 20) == "" and overlap_note(120, 5) == ""  # 48 and 24 labels
    assert "12 non-overlapping" in overlap_note(120, 10)


def test_oracle_agreement_is_the_expected_share_of_the_oracle_read_without_return_noise():
    """Returns are the oracle plus noise; a prediction is the oracle plus its own error. Its agreement with
    the oracle must not move when the returns' noise is redrawn (it reads only the oracle) and must match
    its expected share of the oracle's RankIC, which the realised ratio estimates with far more noise."""
    from datetime import date, timedelta

    from atft_dagster.evaluation.report import agreement_md, oracle_agreement, score_models

    rng = np.random.default_rng(3)
    n_days, n = 400, 200
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(n_days)]
    oracle = rng.normal(size=n_days * n)
    pred = oracle + 1.0 * rng.normal(size=n_days * n)  # corr(pred, oracle) = 1 / sqrt(2)
    base = pl.DataFrame(
        {
            "date": pl.Series([d for d in days for _ in range(n)], dtype=pl.Date),
            "code": np.tile([str(1300 + i) for i in range(n)], n_days),
            "p": pred,
            "oracle_1d": oracle,
        }
    )
    models = {"m": "p", "coin": "coin"}
    shares = []
    for draw in range(2):
        noise = np.random.default_rng(10 + draw).normal(size=n_days * n)
        frame = base.with_columns(
            pl.Series("label_1d", oracle + 8.0 * noise),  # corr(oracle, r) ~ 0.12: a noisy market
            pl.Series("coin", np.random.default_rng(20 + draw).normal(size=n_days * n)),
        )
        agree = oracle_agreement(frame, models, "label_1d", "oracle_1d", 20)
        reports, _ = score_models(frame, {**models, "oracle": "oracle_1d"}, "label_1d", 20)
        shares.append(reports["m"].rank_ic / reports["oracle"].rank_ic)
        if draw == 0:
            first = agree
    assert agree["m"] == pytest.approx(first["m"], abs=1e-12)  # the returns' noise does not enter
    # Spearman's rho of a bivariate normal with Pearson r: (6 / pi) arcsin(r / 2)
    assert agree["m"] == pytest.approx(6 / np.pi * np.arcsin(np.sqrt(0.5) / 2), abs=0.02)
    assert abs(agree["coin"]) < 0.01  # an unrelated ranking agrees with nothing
    assert np.mean(shares) == pytest.approx(agree["m"], abs=0.1)  # what the realised ratio estimates
    assert "| agreement | " in agreement_md(agree) and f"{agree['m']:.3f}" in agreement_md(agree)


def test_a_deploy_window_refits_both_at_their_choices_and_changes_no_choice():
    """The benchmark's "deployed at the test start": after choosing, ridge is refitted at its chosen penalty
    scale and LightGBM at its grid point and rounds on the deploy dates; the choices and the evaluated
    columns are those of the plain fit."""
    df = _frame(0.3)
    windows, test = _windows(df)
    keys = df.filter(pl.col("date").is_in(windows["selection"] + test)).select("date", "code")
    deploy = windows["train"] + windows["val"] + windows["selection"]
    fit = learned_baselines(df, REGISTRY, {**windows, "deploy": deploy}, keys, [1], FAST, min_stocks=10)
    plain = _fit(df)
    assert fit.choices == plain.choices
    for col in ("ridge_1d", "lightgbm_1d"):
        assert fit.predictions[col].equals(plain.predictions[col])
    z = normalise(df, REGISTRY, NormaliserConfig(clip=5.0))
    rows = z.filter(pl.col("date").is_in(deploy))
    x, _ = to_arrays(rows, REGISTRY.names)
    chosen = next(c for c in fit.choices if c["model"] == "ridge")
    alpha = chosen["penalty_scale"] * np.linalg.eigvalsh(x.T.astype(np.float64) @ x).max()
    coef = Ridge(alpha=alpha, fit_intercept=False).fit(x, label_z(rows, "target_1d", 3.0)).coef_
    sel = z.filter(pl.col("date").is_in(windows["selection"]))
    got = sel.select("date", "code").join(fit.predictions, on=["date", "code"])["ridge_deployed_1d"]
    np.testing.assert_allclose(got.to_numpy(), to_arrays(sel, REGISTRY.names)[0] @ coef, rtol=1e-4, atol=1e-6)
    assert not np.allclose(fit.predictions["lightgbm_deployed_1d"], plain.predictions["lightgbm_1d"])
    assert fit.predictions["lightgbm_deployed_1d"].is_finite().all()
