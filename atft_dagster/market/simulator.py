"""A deterministic synthetic Tokyo Stock Exchange market with a known oracle.

Returns follow a factor model (market beta, sector factors, hidden peer-cluster factors, GARCH-style
idiosyncratic noise with Student-t tails, volatility regimes) plus a predictable component whose
strengths are set in :class:`~atft_dagster.market.config.EffectStrengths`. The oracle is the true
conditional expected return of that model; the hidden peer network is exposed for graph-recovery tests.

Every trading day draws from its own random stream ``SeedSequence([seed, 1, day])``, so the market is
prefix-stable: the first n days are the same whatever the total length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

import numpy as np
import polars as pl

from atft_dagster.calendar import trading_days_from
from atft_dagster.market.config import SyntheticMarketConfig
from atft_dagster.sectors import SECTOR17, SECTOR33, SECTOR33_CODES

SPLIT_RATIOS = np.array([2.0, 3.0, 4.0, 5.0, 10.0])
SPLIT_RATIO_PROBS = np.array([0.55, 0.15, 0.1, 0.1, 0.1])
RETURN_CLIP = (-0.35, 0.6)
MOMENTUM_WINDOW = 20
GARCH_CAP = 25.0
STRESS_REGIME = 2
# What the oracle means, for logs that record oracle figures: 1 until 2026-12-06 (without the beta premium
# beta * E[m]), 2 until 2026-12-07 (h > 1 ignoring the regime's effect on momentum), 3 since.
ORACLE_VERSION = 3


@dataclass(frozen=True)
class Reclassification:
    day: int
    stock: int
    old_sector: int
    new_sector: int


@dataclass
class SyntheticMarket:
    """Arrays are (days, stocks); prices are raw (unadjusted) unless named otherwise."""

    config: SyntheticMarketConfig
    days: list[date]
    codes: np.ndarray
    sector: np.ndarray  # (T, N) index into SECTOR33_CODES
    segment: np.ndarray  # (N,) "Prime" / "Standard" / "Growth"
    cluster: np.ndarray  # (N,) hidden peer cluster
    beta: np.ndarray
    observed: np.ndarray  # (T, N) bool: listed and not halted => a row exists
    listed: np.ndarray  # (T, N) bool
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    turnover: np.ndarray
    adj_factor: np.ndarray  # J-Quants convention: 1/ratio on the ex-date, else 1
    shares: np.ndarray  # raw shares outstanding
    returns: np.ndarray  # latent daily returns (all stocks, every day)
    oracle: np.ndarray  # (T, N, H): E[return over the next h days | information at close of day t]
    effect_parts: dict[str, np.ndarray]  # (T, N) each: the parts of the 1-day oracle
    topix: np.ndarray  # (T, 4) open, high, low, close
    regime: np.ndarray  # (T,)
    reclassifications: list[Reclassification] = field(default_factory=list)
    strength_drift: np.ndarray | None = None  # (T, 4) a_t of reversal, momentum, volume shock, peers
    market_factor: np.ndarray | None = None  # (T,) the market factor's return m_t (excess = returns - m_t)

    @property
    def n_days(self) -> int:
        return len(self.days)

    # ---- tables -------------------------------------------------------------------------------
    def _row_index(self) -> tuple[np.ndarray, np.ndarray]:
        t_idx, i_idx = np.nonzero(self.observed)
        return t_idx, i_idx

    def _date_series(self, t_idx: np.ndarray) -> pl.Series:
        return pl.Series("date", np.array(self.days, dtype="datetime64[D]")).gather(t_idx)

    def quotes_frame(self, with_adjusted: bool = False) -> pl.DataFrame:
        """Daily bars in the canonical schema, one row per observed (date, code), sorted."""
        t_idx, i_idx = self._row_index()
        cols: dict[str, pl.Series | np.ndarray] = {
            "date": self._date_series(t_idx),
            "code": pl.Series("code", self.codes).gather(i_idx),
        }
        for name in ("open", "high", "low", "close", "volume", "turnover", "adj_factor"):
            cols[name] = getattr(self, name)[t_idx, i_idx]
        cols["shares_outstanding"] = self.shares[t_idx, i_idx]
        if with_adjusted:
            # Latest-basis adjustment as J-Quants publishes it: raw x product of later factors.
            later = self._later_factor_product()
            for name in ("open", "high", "low", "close"):
                cols[f"adj_{name}"] = getattr(self, name)[t_idx, i_idx] * later[t_idx, i_idx]
            cols["adj_volume"] = self.volume[t_idx, i_idx] / later[t_idx, i_idx]
        return pl.DataFrame(cols)

    def _later_factor_product(self) -> np.ndarray:
        rev = np.cumprod(self.adj_factor[::-1], axis=0)[::-1]  # product over s >= t
        return rev / self.adj_factor  # product over s > t

    def sector_master_frame(self) -> pl.DataFrame:
        """Sector membership with validity intervals [valid_from, valid_to) per code."""
        rows = []
        first_listed = np.argmax(self.listed, axis=0)
        ever = self.listed.any(axis=0)
        changes: dict[int, list[Reclassification]] = {}
        for ev in self.reclassifications:
            changes.setdefault(ev.stock, []).append(ev)
        for i in np.nonzero(ever)[0]:
            start = self.days[0]
            sector_now = int(self.sector[first_listed[i], i])
            for ev in sorted(changes.get(int(i), []), key=lambda e: e.day):
                if ev.day <= first_listed[i]:
                    sector_now = ev.new_sector
                    continue
                rows.append(self._master_row(i, sector_now, start, self.days[ev.day]))
                start, sector_now = self.days[ev.day], ev.new_sector
            rows.append(self._master_row(i, sector_now, start, None))
        return pl.DataFrame(
            rows,
            schema={
                "code": pl.String,
                "name": pl.String,
                "sector33_code": pl.String,
                "sector33_name": pl.String,
                "sector17_code": pl.String,
                "sector17_name": pl.String,
                "market_segment": pl.String,
                "valid_from": pl.Date,
                "valid_to": pl.Date,
            },
            orient="row",
        ).sort("code", "valid_from")

    def _master_row(self, i: int, sector: int, start: date, end: date | None) -> tuple:
        s33 = SECTOR33_CODES[sector]
        name33, s17 = SECTOR33[s33]
        code = str(self.codes[i])
        return (
            code,
            f"Synthetic Co. {code}",
            s33,
            name33,
            s17,
            SECTOR17[s17],
            str(self.segment[i]),
            start,
            end,
        )

    def topix_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "date": pl.Series(np.array(self.days, dtype="datetime64[D]")),
                "open": self.topix[:, 0],
                "high": self.topix[:, 1],
                "low": self.topix[:, 2],
                "close": self.topix[:, 3],
            }
        )

    def oracle_frame(self) -> pl.DataFrame:
        """True expected forward return per observed (date, code) and horizon."""
        t_idx, i_idx = self._row_index()
        cols: dict[str, pl.Series | np.ndarray] = {
            "date": self._date_series(t_idx),
            "code": pl.Series("code", self.codes).gather(i_idx),
        }
        for k, h in enumerate(self.config.horizons):
            cols[f"oracle_{h}d"] = self.oracle[t_idx, i_idx, k]
        return pl.DataFrame(cols)

    def peer_network_frame(self) -> pl.DataFrame:
        """Undirected edges (src < dst) of the hidden peer network, plus each code's cluster."""
        order = np.argsort(self.cluster, kind="stable")
        src, dst = [], []
        bounds = np.flatnonzero(np.diff(self.cluster[order])) + 1
        for members in np.split(order, bounds):
            m = np.sort(members)
            a, b = np.triu_indices(len(m), k=1)
            src.append(m[a])
            dst.append(m[b])
        s, d = np.concatenate(src), np.concatenate(dst)
        return pl.DataFrame(
            {
                "src": self.codes[s].astype(str),
                "dst": self.codes[d].astype(str),
                "cluster": self.cluster[s].astype(np.int32),
            }
        ).sort("src", "dst")


def _day_rng(seed: int, day: int, stream: int = 1) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream, day])))


DYNAMICS_STREAM = 2  # the effect dynamics draw from their own stream: switching them on changes nothing else
N_DYNAMIC_EFFECTS = 4  # reversal, momentum, volume shock, peer lead-lag


def _cross_z(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Cross-sectional z-score over ``mask`` (0 elsewhere)."""
    if mask.sum() < 2:
        return np.zeros_like(x)
    m, sd = x[mask].mean(), x[mask].std()
    return np.where(mask, (x - m) / sd, 0.0) if sd > 0 else np.zeros_like(x)


def _next_regime(regime: int, u: float, stay: tuple[float, float, float], to_stress: float) -> int:
    if u < stay[regime]:
        return regime
    if regime != 1:
        return 1
    return STRESS_REGIME if (u - stay[1]) / (1 - stay[1]) < to_stress else 0


def regime_transition(stay: tuple[float, float, float], to_stress: float) -> np.ndarray:
    """P[i, j] = P(regime_{t+1} = j | regime_t = i) of the chain ``_next_regime`` draws (0 calm, 1 normal,
    2 stress): calm and stress return to normal, normal leaves to stress with share ``to_stress``."""
    s0, s1, s2 = stay
    return np.array(
        [
            [s0, 1 - s0, 0.0],
            [(1 - s1) * (1 - to_stress), s1, (1 - s1) * to_stress],
            [0.0, 1 - s2, s2],
        ]
    )


def expected_stress_multiplier(
    regime: np.ndarray, transition: np.ndarray, multiplier: float, steps: int
) -> np.ndarray:
    """(T, steps + 1): column j is E[m(regime_{t+j}) | regime_t] with m = ``multiplier`` in stress and 1
    elsewhere, i.e. ``1 + (multiplier - 1) P^j[regime_t, stress]`` (exactly 1 when ``multiplier`` is 1)."""
    out = np.empty((len(regime), steps + 1))
    pj = np.eye(3)
    for j in range(steps + 1):
        out[:, j] = 1.0 + (multiplier - 1.0) * pj[regime, STRESS_REGIME]
        pj = pj @ transition
    return out


def _student_t(rng: np.random.Generator, dof: float, size: int | tuple[int, ...]) -> np.ndarray:
    """Student-t draws scaled to unit variance."""
    return rng.standard_t(dof, size) / np.sqrt(dof / (dof - 2.0))


def _assign_clusters(
    rng: np.random.Generator, sector: np.ndarray, size: int, affinity: float, n_sectors: int
) -> np.ndarray:
    """Peer cliques of ``size``: a share ``affinity`` of stocks are grouped by their own sector, the rest
    by a random one, so clusters overlap sectors without equalling them."""
    n = len(sector)
    key = np.where(rng.random(n) < affinity, sector, rng.integers(0, n_sectors, n))
    order = np.lexsort((rng.random(n), key))
    cluster = np.empty(n, dtype=np.int64)
    cluster[order] = np.arange(n) // size
    return cluster


def simulate(config: SyntheticMarketConfig, n_days: int | None = None) -> SyntheticMarket:
    """Generate ``n_days`` (default ``config.n_days``) trading days of the market."""
    cfg = config
    T = cfg.n_days if n_days is None else n_days
    N = cfg.n_stocks
    eff = cfg.effects
    days = trading_days_from(cfg.start, T)
    n_sec = len(SECTOR33_CODES)

    # ---- static draws ----------------------------------------------------------------------------
    srng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, 0])))
    codes = np.sort(srng.choice(np.arange(1300, 10000), size=N, replace=False)).astype(str)
    sector_weights = srng.gamma(2.0, 1.0, n_sec)
    sector0 = srng.choice(n_sec, size=N, p=sector_weights / sector_weights.sum())
    beta = np.clip(srng.normal(cfg.beta_mean, cfg.beta_std, N), 0.2, 2.2)
    idio_vol = cfg.idio_vol_median * np.exp(cfg.idio_vol_dispersion * srng.standard_normal(N))
    price0 = np.maximum(cfg.price_median * np.exp(cfg.price_dispersion * srng.standard_normal(N)), 30.0)
    cap0 = cfg.market_cap_median * np.exp(cfg.market_cap_dispersion * srng.standard_normal(N))
    latent_shares = cap0 / price0
    base_volume = latent_shares * cfg.daily_turnover_rate * np.exp(0.5 * srng.standard_normal(N))
    cap_rank = np.argsort(np.argsort(-cap0 * np.exp(0.5 * srng.standard_normal(N)))) / N
    segment = np.where(cap_rank < 0.45, "Prime", np.where(cap_rank < 0.8, "Standard", "Growth"))
    cluster = _assign_clusters(srng, sector0, cfg.peer_cluster_size, cfg.peer_sector_affinity, n_sec)
    n_clusters = int(cluster.max()) + 1
    status = np.where(srng.random(N) < cfg.initial_listed_fraction, 1, 0)  # 0 pending, 1 listed, 2 gone
    vol_abn_mean = cfg.volume_abs_return_sensitivity * 0.8 + cfg.volume_spike_prob * cfg.volume_spike_scale

    # ---- outputs -----------------------------------------------------------------------------------
    f8 = np.float64
    out = {
        k: np.empty((T, N), f8)
        for k in ("open", "high", "low", "close", "volume", "turnover", "shares", "ret")
    }
    adj_factor = np.ones((T, N), f8)
    observed = np.zeros((T, N), bool)
    listed_arr = np.zeros((T, N), bool)
    sector_arr = np.empty((T, N), np.int16)
    regime_arr = np.empty(T, np.int8)
    excess = np.empty((T, N), f8)  # x_t = r_t - m_t, for the momentum part of the oracle
    market_arr = np.empty(T, f8)
    oracle1 = np.empty((T, N), f8)
    parts = {
        k: np.empty((T, N), f8)
        for k in ("reversal", "momentum", "volume_shock", "peer_lead_lag", "beta_drift")
    }
    topix = np.empty((T, 4), f8)
    reclass: list[Reclassification] = []

    # ---- state -------------------------------------------------------------------------------------
    regime = 1
    h = np.ones(N)
    price = price0.copy()  # latent split-free price
    split_mult = np.ones(N)  # cumulative split ratio K_t
    sector = sector0.copy()
    halted = np.zeros(N, bool)
    mom_buf = np.zeros((MOMENTUM_WINDOW, N))
    mom_sum = np.zeros(N)
    market_premium = beta * cfg.market_drift  # beta * E[m]; mu carries the same beta drift on top
    mu_next = market_premium
    topix_level = cfg.topix_base
    regime_vol = np.asarray(cfg.regime_vol)
    dyn = cfg.dynamics
    phi = 0.5 ** (1.0 / dyn.strength_half_life)
    drift_state = np.zeros(N_DYNAMIC_EFFECTS)  # a_t of reversal, momentum, volume shock, peer lead-lag
    drift_arr = np.zeros((T, N_DYNAMIC_EFFECTS))
    mom_coef = np.full(T, eff.momentum)  # the momentum strength in force at each close (for the h-day oracle)
    listed_prev = np.ones(N, bool)

    for t in range(T):
        rng = _day_rng(cfg.seed, t)
        u = rng.random((7, N))
        regime = _next_regime(regime, rng.random(), cfg.regime_stay_prob, cfg.regime_normal_to_stress)
        rv = regime_vol[regime]

        # listing events (before today's rows)
        status = np.where((status == 0) & (u[0] < cfg.listing_prob), 1, status)
        status = np.where((status == 1) & (u[1] < cfg.delisting_prob), 2, status)
        listed = status == 1
        halted = np.where(halted, u[2] < cfg.halt_continue_prob, u[2] < cfg.halt_prob) & listed
        moved = listed & (u[3] < cfg.reclassification_prob)
        for i in np.nonzero(moved)[0]:
            new = int((sector[i] + 1 + rng.integers(0, n_sec - 1)) % n_sec)
            reclass.append(Reclassification(t, int(i), int(sector[i]), new))
            sector[i] = new
        split = listed & ~halted & (u[4] < cfg.split_prob)
        ratio = np.where(split, rng.choice(SPLIT_RATIOS, size=N, p=SPLIT_RATIO_PROBS), 1.0)
        split_mult *= ratio
        adj_factor[t] = 1.0 / ratio

        # returns
        mu = mu_next
        m = cfg.market_drift + cfg.market_vol * rv * _student_t(rng, cfg.t_dof, 1)[0]
        s = cfg.sector_vol * rv * _student_t(rng, cfg.t_dof, n_sec)
        c = cfg.cluster_vol * rv * _student_t(rng, cfg.t_dof, n_clusters)
        z = _student_t(rng, cfg.t_dof, N)
        eps = idio_vol * np.sqrt(h) * rv * z
        crash = 0.0
        if not dyn.is_off():
            drng = _day_rng(cfg.seed, t, DYNAMICS_STREAM)
            shocks = drng.standard_normal(N_DYNAMIC_EFFECTS)
            drift_state = (
                shocks * dyn.strength_drift_vol
                if t == 0
                else phi * drift_state + np.sqrt(1 - phi**2) * dyn.strength_drift_vol * shocks
            )
            g = dyn.signal_factor_vol * rv * _student_t(drng, cfg.t_dof, 1)[0]
            crash = g * _cross_z(mu, listed_prev)
        r = np.clip(mu + beta * m + s[sector] + c[cluster] + eps + crash, *RETURN_CLIP)
        h = np.minimum(
            (1 - cfg.garch_alpha - cfg.garch_beta) + cfg.garch_alpha * h * z**2 + cfg.garch_beta * h,
            GARCH_CAP,
        )
        e = r - beta * m - s[sector]
        x = r - m

        # prices (latent, then raw = latent / K)
        prev = price
        price = prev * (1.0 + r)
        logret = np.log1p(r)
        sig = idio_vol * rv
        gap = cfg.overnight_share * logret + 0.3 * sig * rng.standard_normal(N)
        o_lat = prev * np.exp(gap)
        hi_lat = np.maximum(o_lat, price) * np.exp(np.abs(cfg.intraday_range * sig * rng.standard_normal(N)))
        lo_lat = np.minimum(o_lat, price) * np.exp(-np.abs(cfg.intraday_range * sig * rng.standard_normal(N)))
        o = np.maximum(np.round(o_lat / split_mult, 1), 0.1)
        cl = np.maximum(np.round(price / split_mult, 1), 0.1)
        out["open"][t], out["close"][t] = o, cl
        out["high"][t] = np.maximum(np.round(hi_lat / split_mult, 1), np.maximum(o, cl))
        out["low"][t] = np.maximum(np.minimum(np.round(lo_lat / split_mult, 1), np.minimum(o, cl)), 0.1)

        # volume: correlated with |return|, occasional spikes; abnormal log volume drives an effect
        spike = (u[5] < cfg.volume_spike_prob) * rng.exponential(cfg.volume_spike_scale, N)
        abn = (
            cfg.volume_abs_return_sensitivity * np.abs(r - mu) / (idio_vol * rv)
            + spike
            + cfg.volume_noise * rng.standard_normal(N)
            - vol_abn_mean
        )
        vol_latent = base_volume * np.exp(abn)
        out["volume"][t] = np.round(vol_latent * split_mult)
        typical = (out["open"][t] + out["high"][t] + out["low"][t] + out["close"][t]) / 4.0
        out["turnover"][t] = np.round(out["volume"][t] * typical)
        out["shares"][t] = latent_shares * split_mult
        out["ret"][t] = r

        # TOPIX: cap-weighted over listed stocks, weights at the previous close
        w = np.where(listed, prev * latent_shares, 0.0)
        w = w / w.sum() if w.sum() > 0 else w
        prev_level = topix_level
        topix_level = prev_level * (1.0 + float(w @ r))
        t_open = prev_level * (1.0 + float(w @ (o_lat / prev - 1.0)))
        t_rng = abs(topix_level / prev_level - 1.0) * 0.3 + 0.002 * rv
        topix[t] = (
            t_open,
            max(t_open, topix_level) * (1 + t_rng),
            min(t_open, topix_level) * (1 - t_rng),
            topix_level,
        )

        observed[t] = listed & ~halted
        listed_arr[t] = listed
        sector_arr[t] = sector
        regime_arr[t] = regime
        excess[t] = x
        market_arr[t] = m

        # expected return of tomorrow given today's close (the 1-day oracle)
        mom_sum += x - mom_buf[t % MOMENTUM_WINDOW]
        mom_buf[t % MOMENTUM_WINDOW] = x
        lw = listed.astype(f8)
        csum = np.bincount(cluster, weights=e * lw, minlength=n_clusters)
        ccnt = np.bincount(cluster, weights=lw, minlength=n_clusters)
        denom = ccnt[cluster] - lw
        peer_mean = np.divide(csum[cluster] - e * lw, denom, out=np.zeros(N), where=denom > 0)
        stress = eff.reversal_stress_multiplier if regime == STRESS_REGIME else 1.0
        k_rev, k_mom, k_vs, k_peer = 1.0 + drift_state
        if regime == STRESS_REGIME:
            k_mom *= dyn.momentum_stress_multiplier
        drift_arr[t] = drift_state
        mom_coef[t] = eff.momentum * k_mom
        p_rev = -eff.reversal * k_rev * stress * e
        p_mom = mom_coef[t] * mom_sum / MOMENTUM_WINDOW
        p_vs = eff.volume_shock * k_vs * np.maximum(abn, 0.0) * np.where(e > 0, e, eff.volume_shock_down * e)
        p_peer = eff.peer_lead_lag * k_peer * peer_mean
        p_drift = market_premium
        for name, val in (
            ("reversal", p_rev),
            ("momentum", p_mom),
            ("volume_shock", p_vs),
            ("peer_lead_lag", p_peer),
            ("beta_drift", p_drift + market_premium),  # mu's beta drift and beta * E[m]
        ):
            parts[name][t] = val
        mu_next = p_rev + p_mom + p_vs + p_peer + p_drift
        oracle1[t] = mu_next + market_premium  # E_t[r_t+1] = mu_t+1 + beta * E[m]
        listed_prev = listed

    oracle = horizon_oracle(cfg, oracle1, excess, beta, drift_arr[:, 1], regime_arr)
    return SyntheticMarket(
        config=cfg,
        days=days,
        codes=codes,
        sector=sector_arr,
        segment=segment,
        cluster=cluster,
        beta=beta,
        observed=observed,
        listed=listed_arr,
        open=out["open"],
        high=out["high"],
        low=out["low"],
        close=out["close"],
        volume=out["volume"],
        turnover=out["turnover"],
        adj_factor=adj_factor,
        shares=out["shares"],
        returns=out["ret"],
        oracle=oracle,
        effect_parts=parts,
        topix=topix,
        regime=regime_arr,
        reclassifications=reclass,
        strength_drift=drift_arr,
        market_factor=market_arr,
    )


def _horizon_oracle(
    oracle1: np.ndarray,
    excess: np.ndarray,
    drift: np.ndarray,
    momentum: float,
    momentum_drift: np.ndarray,
    phi: float,
    horizons: tuple[int, ...],
    stress_mult: np.ndarray,
) -> np.ndarray:
    """E_t[sum of the next h daily returns]: exact for h = 1; for h > 1 first order in the effect
    strengths. Day t+k (k >= 2) adds ``drift`` (the beta drift and the beta premium of the market's own
    drift) and the known part of its momentum window at the momentum strength expected at close t+k-1,
    ``momentum · (1 + phi^(k-1) a_t) · E[m(regime_{t+k-1}) | regime_t]`` (the strength drift and the regime
    are independent; ``stress_mult[:, k-1]`` holds the regime's expectation). Reversal, volume and peer
    terms of days t+2.. act on returns not yet known and are second order."""
    T, N = oracle1.shape
    cs = np.vstack([np.zeros((1, N)), np.cumsum(excess, axis=0)])  # cs[t+1] = sum_{s<=t} x_s
    tt = np.arange(T)
    out = np.empty((T, N, len(horizons)))
    for j, hz in enumerate(horizons):
        acc = oracle1.copy()
        for k in range(2, hz + 1):
            a = np.maximum(tt + k - MOMENTUM_WINDOW, 0)  # first known day in the window of day t+k
            known = cs[tt + 1] - cs[a]
            known = np.where((tt + k - MOMENTUM_WINDOW <= tt)[:, None], known, 0.0)
            coef = momentum * ((1.0 + phi ** (k - 1) * momentum_drift) * stress_mult[:, k - 1])[:, None]
            acc = acc + drift + coef * known / MOMENTUM_WINDOW
        out[:, :, j] = acc
    return out


def horizon_oracle(
    cfg: SyntheticMarketConfig,
    oracle1: np.ndarray,
    excess: np.ndarray,
    beta: np.ndarray,
    momentum_drift: np.ndarray,
    regime: np.ndarray,
    regime_aware: bool = True,
) -> np.ndarray:
    """(T, N, H) from the 1-day oracle, the excess returns ``r - m``, the betas, the momentum strength's
    drift a_t and the regimes: each later day's momentum strength as expected at t (the drift decays
    towards 1, the regime follows its chain), plus both beta terms. ``regime_aware=False``: the oracle this
    simulator had until 2026-12-07, every later day's momentum at its calm/normal sign."""
    steps = max(cfg.horizons) - 1
    stress_mult = (
        expected_stress_multiplier(
            regime,
            regime_transition(cfg.regime_stay_prob, cfg.regime_normal_to_stress),
            cfg.dynamics.momentum_stress_multiplier,
            steps,
        )
        if regime_aware
        else np.ones((len(regime), steps + 1))
    )
    return _horizon_oracle(
        oracle1,
        excess,
        2.0 * beta * cfg.market_drift,  # each later day: mu's beta drift and beta * E[m]
        cfg.effects.momentum,
        momentum_drift,
        0.5 ** (1.0 / cfg.dynamics.strength_half_life),
        cfg.horizons,
        stress_mult,
    )


def rebuild_horizon_oracle(market: SyntheticMarket, regime_aware: bool = True) -> np.ndarray:
    """The market's (T, N, H) oracle rebuilt from its own arrays (equal to ``market.oracle``);
    ``regime_aware=False`` gives the regime-ignoring one (benchmarks compare the two)."""
    return horizon_oracle(
        market.config,
        market.oracle[:, :, 0],
        market.returns - market.market_factor[:, None],
        market.beta,
        market.strength_drift[:, 1],
        market.regime,
        regime_aware,
    )


@lru_cache(maxsize=4)
def cached_market(config_json: str, n_days: int) -> SyntheticMarket:
    """Process-wide cache keyed by the config's JSON (sources call this)."""
    return simulate(SyntheticMarketConfig.model_validate_json(config_json), n_days)
