"""How hard a synthetic market is: what the oracle itself achieves on it, day by day.

The oracle's 1-day expected return at the close of day t is scored against the return of day t + 1 over
the stocks trading on both days, with the same daily metrics as the evaluation report (Spearman RankIC and
the JPX competition's daily spread). No model can beat these numbers on average, so they set the scale of
every other figure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from atft_dagster.evaluation.metrics import jpx_spread, spearman
from atft_dagster.market.simulator import SyntheticMarket

WARM_UP_DAYS = 60  # the oracle's momentum window and the GARCH state settle first


@dataclass(frozen=True)
class OracleQuality:
    days: int
    stocks: float  # mean stocks per day
    rank_ic: float  # mean daily RankIC
    rank_ic_sd: float
    rank_icir: float  # mean / sd (not annualised)
    jpx_sharpe: float  # mean / sd of the JPX daily spread (not annualised)
    share_negative_days: float  # days with a negative RankIC

    def as_dict(self) -> dict:
        return asdict(self)


def oracle_quality(market: SyntheticMarket, first_day: int = WARM_UP_DAYS) -> OracleQuality:
    ric, jpx, n = [], [], []
    oracle = market.oracle[:, :, 0]
    for t in range(first_day, market.n_days - 1):
        ok = market.observed[t] & market.observed[t + 1]
        if ok.sum() < 20:
            continue
        p, y = oracle[t, ok], market.returns[t + 1, ok]
        ric.append(spearman(p, y))
        jpx.append(jpx_spread(p, y))
        n.append(ok.sum())
    r, j = np.asarray(ric), np.asarray(jpx)
    return OracleQuality(
        days=len(r),
        stocks=float(np.mean(n)),
        rank_ic=float(r.mean()),
        rank_ic_sd=float(r.std(ddof=1)),
        rank_icir=float(r.mean() / r.std(ddof=1)),
        jpx_sharpe=float(j.mean() / j.std(ddof=1)),
        share_negative_days=float((r < 0).mean()),
    )
