"""The retrain policy: retrain when enough trading days have landed since the champion's data ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from atft_dagster.calendar import trading_days


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reason: str
    new_trading_days: int | None = None


def retrain_decision(
    latest_data: date | None,
    champion_data_end: date | None,
    min_new_trading_days: int,
    active_retrain: str | None = None,
) -> RetrainDecision:
    """``latest_data``: last day of the market panel; ``champion_data_end``: last day the champion saw
    (None: no champion); ``active_retrain``: the status of a queued or running retrain, if any."""
    if latest_data is None:
        return RetrainDecision(False, "market_panel has not been materialised yet")
    if active_retrain:
        return RetrainDecision(False, f"a retrain is already {active_retrain}")
    if champion_data_end is None:
        return RetrainDecision(True, "no champion yet")
    new = len(trading_days(champion_data_end, latest_data)) - 1 if latest_data > champion_data_end else 0
    if new < min_new_trading_days:
        return RetrainDecision(
            False,
            f"{new} new trading day(s) since the champion's data ({champion_data_end}); need {min_new_trading_days}",
            new,
        )
    return RetrainDecision(True, f"{new} new trading days since {champion_data_end}", new)
